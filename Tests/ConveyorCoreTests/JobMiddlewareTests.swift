import Foundation
import Logging
import Synchronization
import Testing

@testable import ConveyorCore
import ConveyorTesting

/// The middleware seam around `perform`: order, context passed on, failing a job before its handler, outcomes seen
/// once per run, a deadline that holds whatever a middleware does, and the worker's own log lines coming from it.
@Suite struct JobMiddlewareTests {
    /// Records what one middleware saw, by jid.
    final class Trace: Sendable {
        private let events = Mutex<[String: [String]]>([:])
        func add(_ jid: String, _ event: String) { events.withLock { $0[jid, default: []].append(event) } }
        subscript(jid: String) -> [String] { events.withLock { $0[jid] ?? [] } }
    }

    struct Named: JobMiddleware {
        let name: String
        let trace: Trace
        func handle(_ job: Job, context: JobContext, next: JobMiddlewareNext) async throws -> JSONValue {
            trace.add(job.jid, "\(name)>")
            var context = context
            context.logger[metadataKey: "seen.by"] = "\(context.logger[metadataKey: "seen.by"].map { "\($0)," } ?? "")\(name)"
            defer { trace.add(job.jid, "<\(name)") }
            return try await next(job, context)
        }
        func completed(_ job: Job, outcome: JobOutcome, context: JobContext) {
            trace.add(job.jid, "\(name):\(outcome.status.rawValue)\(outcome.retryAt == nil ? "" : "@retry")")
        }
    }

    /// Refuses class `guarded` before its handler runs, as a limit or uniqueness middleware would.
    struct Guard: JobMiddleware {
        func handle(_ job: Job, context: JobContext, next: JobMiddlewareNext) async throws -> JSONValue {
            if job.jobClass == "guarded" { throw JobFailure.permanent("OverLimit", "guarded jobs may not run here") }
            return try await next(job, context)
        }
    }

    static func configuration(concurrency: Int = 4) throws -> WorkerConfiguration {
        WorkerConfiguration(
            queues: try QueueSelection(parsing: "default"), concurrency: concurrency, heartbeatInterval: .milliseconds(50),
            pollInterval: .milliseconds(20))
    }

    static func run(
        _ backend: MemoryBackend, _ registry: JobRegistry, _ configuration: WorkerConfiguration, middleware: [any JobMiddleware],
        observers: [any JobObserver] = [], logger: Logger = Logger(label: "conveyor.worker"), until done: () throws -> Bool
    ) async throws {
        let worker = Worker(
            backend: backend, registry: registry, configuration: configuration, observers: observers, middleware: middleware, logger: logger)
        let running = Task { try await worker.run() }
        do {
            try await eventually("the jobs ended", timeout: .seconds(20), done)
        } catch {
            worker.shutdown()
            _ = try? await running.value
            throw error
        }
        worker.shutdown()
        try await running.value
    }

    @Test func middlewareRunsInOrderAroundPerformAndSeesEveryOutcomeOnce() async throws {
        let configuration = try Self.configuration()
        let backend = MemoryBackend(identity: configuration.identity)
        let trace = Trace()
        let seen = Mutex<[String: String]>([:])
        var registry = JobRegistry()
        registry.register(JobClass("ok", handler: ClosureHandler { job in
            trace.add(job.jid, "perform")
            seen.withLock { $0[job.jid] = job.logger[metadataKey: "seen.by"].map { "\($0)" } }
            return ["done": true]
        }))
        registry.register(JobClass(
            "flaky", retry: RetryPolicy(maxAttempts: 2, backoff: .exponential(base: 0.01, factor: 1, cap: 0.01, jitter: 0)),
            handler: ClosureHandler { job in
                trace.add(job.jid, "perform")
                throw JobFailure.transient("UpstreamDown", "no")
            }))
        let ok = Job.envelope(jobClass: "ok", arguments: [:], queue: "default")
        let flaky = Job.envelope(jobClass: "flaky", arguments: [:], queue: "default")
        let unknown = Job.envelope(jobClass: "nobody.knows", arguments: [:], queue: "default")
        for job in [ok, flaky, unknown] { backend.push(job) }
        let outcomes = Outcomes()
        try await Self.run(
            backend, registry, configuration, middleware: [Named(name: "a", trace: trace), Named(name: "b", trace: trace)],
            observers: [outcomes]
        ) { backend.store.withLock { $0.processed == 4 && $0.dead.count == 2 } }

        let okJID = ok["jid"]!.stringValue!
        #expect(trace[okJID] == ["a>", "b>", "perform", "<b", "<a", "a:succeeded", "b:succeeded"])
        #expect(seen.withLock { $0[okJID] } == "a,b", "each middleware passes its context on")
        // A retried job: one chain per run, the retry's time known to the middleware, then its end in the dead set.
        #expect(trace[flaky["jid"]!.stringValue!] == [
            "a>", "b>", "perform", "<b", "<a", "a:retrying@retry", "b:retrying@retry",
            "a>", "b>", "perform", "<b", "<a", "a:dead", "b:dead",
        ])
        // A job whose class is unknown never runs: the middleware learns its outcome all the same.
        #expect(trace[unknown["jid"]!.stringValue!] == ["a:dead", "b:dead"])
        // The observers still see every outcome (through the worker's observing middleware).
        #expect(outcomes[okJID]?.status == .succeeded && outcomes[okJID]?.result == ["done": true])
        #expect(outcomes[unknown["jid"]!.stringValue!]?.failure?.errorClass == "UnknownJobClass")
    }

    @Test func aMiddlewareCanFailAJobBeforeItsHandlerRuns() async throws {
        let configuration = try Self.configuration()
        let backend = MemoryBackend(identity: configuration.identity)
        let ran = Atomic<Int>(0)
        var registry = JobRegistry()
        registry.register(JobClass("guarded", handler: ClosureHandler { _ in
            ran.add(1, ordering: .relaxed)
            return nil
        }))
        BuiltinJobs.register(into: &registry)
        backend.push(Job.envelope(jobClass: "guarded", arguments: [:], queue: "default"))
        backend.push(Job.envelope(jobClass: "noop", arguments: [:], queue: "default"))
        try await Self.run(backend, registry, configuration, middleware: [Guard()]) {
            backend.store.withLock { $0.processed == 2 && $0.dead.count == 1 }
        }
        #expect(ran.load(ordering: .relaxed) == 0)
        let dead = try JSONValue(parsing: backend.store.withLock { $0.dead[0] })
        #expect(dead["error_class"]?.stringValue == "OverLimit")
        #expect(dead["error_message"]?.stringValue == "guarded jobs may not run here")
        #expect(backend.store.withLock { $0.failed } == 1)
    }

    /// A middleware that blocks without looking at cancellation cannot hold a job past its class's deadline: the
    /// timeout is recorded at the deadline and the outcome reaches `completed`.
    @Test func aJobsDeadlineHoldsWhateverItsMiddlewareDoes() async throws {
        struct Stuck: JobMiddleware {
            let returned: Trace
            func handle(_ job: Job, context: JobContext, next: JobMiddlewareNext) async throws -> JSONValue {
                // Ignores cancellation, like a blocking call without a deadline.
                try await BlockingPool.shared.run { Thread.sleep(forTimeInterval: 5) }
                returned.add(job.jid, "returned")
                return try await next(job, context)
            }
        }
        let configuration = try Self.configuration()
        let backend = MemoryBackend(identity: configuration.identity)
        let trace = Trace()
        let returned = Trace()
        var registry = JobRegistry()
        registry.register(JobClass("slow", retry: RetryPolicy(maxAttempts: 1), timeout: .milliseconds(300), handler: ClosureHandler { _ in nil }))
        let job = Job.envelope(jobClass: "slow", arguments: [:], queue: "default")
        let jid = job["jid"]!.stringValue!
        backend.push(job)
        let middlewareReturnedFirst = Atomic<Bool>(false)
        try await Self.run(backend, registry, configuration, middleware: [Named(name: "a", trace: trace), Stuck(returned: returned)]) {
            guard backend.store.withLock({ $0.dead.count == 1 }) else { return false }
            if !returned[jid].isEmpty || trace[jid].contains("<a") { middlewareReturnedFirst.store(true, ordering: .relaxed) }
            return true
        }
        let returnedFirst = middlewareReturnedFirst.load(ordering: .relaxed)
        #expect(!returnedFirst, "recorded at the deadline, not when the middleware returned")
        let dead = try JSONValue(parsing: backend.store.withLock { $0.dead[0] })
        #expect(dead["error_class"]?.stringValue == "JobTimeout")
        #expect(trace[jid].contains("a:dead"))
    }

    /// The worker's per-job log lines come from `LoggingJobMiddleware`, on the job's logger, with their metadata.
    @Test func theWorkersLogLinesComeFromItsLoggingMiddleware() async throws {
        let configuration = try Self.configuration(concurrency: 1)
        let backend = MemoryBackend(identity: configuration.identity)
        let lines = CapturedLog()
        var logger = Logger(label: "conveyor.worker") { _ in lines.handler }
        logger.logLevel = .debug
        var registry = JobRegistry()
        BuiltinJobs.register(into: &registry)
        registry.register(JobClass(
            "flaky", retry: RetryPolicy(maxAttempts: 2, backoff: .exponential(base: 0.01, factor: 1, cap: 0.01, jitter: 0)),
            handler: ClosureHandler { _ in throw JobFailure.transient("UpstreamDown", "no") }))
        let ok = Job.envelope(jobClass: "noop", arguments: [:], queue: "default")
        let flaky = Job.envelope(jobClass: "flaky", arguments: [:], queue: "default")
        let discarded = Job.envelope(jobClass: "flaky", arguments: [:], queue: "default", retry: .bool(false))
        for job in [ok, flaky, discarded] { backend.push(job) }
        try await Self.run(backend, registry, configuration, middleware: [], logger: logger) {
            backend.store.withLock { $0.processed == 4 }
        }
        func line(_ message: String, _ job: JSONObject) -> Logger.Metadata? {
            lines.entries.first { $0.message == message && $0.metadata["job.id"] == "\(job["jid"]!.stringValue!)" }?.metadata
        }
        #expect(line("job started", ok) != nil)
        let succeeded = try #require(line("job succeeded", ok))
        #expect(succeeded["duration_ms"] != nil && succeeded["latency_ms"] != nil && succeeded["queue"] == "default")
        let retried = try #require(line("job failed; will retry", flaky))
        #expect(retried["retry_in_s"] == "0" && retried["error_class"] == "UpstreamDown" && retried["attempt"] == "1")
        let buried = try #require(line("job failed; moved to the dead set", flaky))
        #expect(buried["reason"] == "out of attempts" && buried["attempt"] == "2")
        let dropped = try #require(line("job failed; discarded (retry: false)", discarded))
        #expect(dropped["reason"] == "out of attempts")
    }
}

/// Every entry logged through its `handler`s, for assertions.
final class CapturedLog: Sendable {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    private let kept = Mutex<[Entry]>([])
    var entries: [Entry] { kept.withLock { $0 } }

    func add(_ entry: Entry) { kept.withLock { $0.append(entry) } }

    /// A log handler (a value, as swift-log expects: each logger copy has its own metadata) that keeps into this log.
    var handler: Handler { Handler(log: self) }

    struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(
            level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String,
            line: UInt
        ) {
            log.add(Entry(level: level, message: message.description, metadata: self.metadata.merging(metadata ?? [:]) { _, new in new }))
        }
    }
}
