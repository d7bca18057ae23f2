import Foundation
import Synchronization
import Testing

@testable import ConveyorCore

/// What every `MemoryBackend` of one test shares, as processes share a Redis.
final class MemoryStore: Sendable {
    struct State: Sendable {
        /// Ready jobs per queue, newest first (pushed at 0, taken from the end).
        var queues: [String: [[UInt8]]] = [:]
        /// Each process's in-flight store, newest first.
        var inflight: [String: [FetchedJob]] = [:]
        var retry: [(at: Double, raw: [UInt8])] = []
        var schedule: [(at: Double, raw: [UInt8])] = []
        var dead: [[UInt8]] = []
        var processed = 0
        var failed = 0
        var beats = 0
        var appliedBatches: [String: Set<UInt64>] = [:]
        /// Registered processes and when their lease ends.
        var leases: [String: ContinuousClock.Instant] = [:]
        var reaping: Set<String> = []

        /// Jobs in every process's in-flight store.
        var inflightCount: Int { inflight.values.reduce(0) { $0 + $1.count } }
    }

    private let state = Mutex(State())

    func withLock<T: Sendable>(_ body: (inout State) -> T) -> T { state.withLock { body(&$0) } }
}

/// The worker needs no Redis: a second `QueueBackend`, in memory, runs jobs, retries and dead ends through the same
/// worker, so a backend of another layout or topology plugs in without touching it. This one is the smallest
/// complete backend: processes sharing one `MemoryStore`, moves applied under its lock.
final class MemoryBackend: QueueBackend {
    let identity: String
    var journalName: String { "memory:\(identity)" }
    let store: MemoryStore

    init(identity: String, store: MemoryStore = MemoryStore()) {
        self.identity = identity
        self.store = store
    }

    func push(_ payload: JSONObject, queue: String = "default") {
        store.withLock { $0.queues[queue, default: []].insert(payload.bytes, at: 0) }
    }

    func fetch(from order: [String], count: Int) async throws -> [FetchedJob] {
        let me = identity
        return store.withLock { s in
            var out: [FetchedJob] = []
            for queue in order {
                while out.count < count, let raw = s.queues[queue]?.popLast() {
                    let job = FetchedJob(raw: raw, queue: queue)
                    s.inflight[me, default: []].insert(job, at: 0)
                    out.append(job)
                }
            }
            return out
        }
    }

    /// Polls (a server-side backend blocks instead): up to `timeout`, every 10 ms.
    func waitForJob(on queue: String, timeout: Double) async throws -> FetchedJob? {
        let deadline = ContinuousClock.now + .seconds(timeout)
        let me = identity
        while ContinuousClock.now < deadline {
            let job = store.withLock { s -> FetchedJob? in
                guard let raw = s.queues[queue]?.popLast() else { return nil }
                let job = FetchedJob(raw: raw, queue: queue)
                s.inflight[me, default: []].insert(job, at: 0)
                return job
            }
            if let job { return job }
            try await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    func complete(_ moves: [JobTransitions.Move], batch: UInt64, resent: Bool) async throws -> Bool {
        let me = identity
        store.withLock { s in
            guard s.appliedBatches[me, default: []].insert(batch).inserted else { return }
            for move in moves { _ = Self.apply(move, from: me, to: &s) }
        }
        return true
    }

    func apply(_ moves: [JobTransitions.Move], fromInflightOf process: String, journalField: String) async throws -> [Bool] {
        store.withLock { s in moves.map { Self.apply($0, from: process, to: &s) } }
    }

    private static func apply(_ move: JobTransitions.Move, from process: String, to s: inout MemoryStore.State) -> Bool {
        guard let index = s.inflight[process]?.firstIndex(where: { $0.receipt.member == move.receipt.member }) else { return false }
        s.inflight[process]?.remove(at: index)
        switch move.target {
        case .ack: break
        case .retry(let payload, let at): s.retry.append((at, payload))
        case .dead(let payload): s.dead.append(payload)
        case .queue(let queue, let payload, let head):
            if head { s.queues[queue, default: []].append(payload) } else { s.queues[queue, default: []].insert(payload, at: 0) }
        case .replace(let payload): s.inflight[process]?.insert(FetchedJob(raw: payload, queue: move.receipt.queue), at: index)
        }
        switch move.counts {
        case .none: break
        case .processed: s.processed += 1
        case .processedAndFailed: s.processed += 1; s.failed += 1
        case .failed: s.failed += 1
        }
        return true
    }

    func inflightJobs(of process: String, limit: Int?) async throws -> [FetchedJob] {
        store.withLock { s in
            let list = s.inflight[process] ?? []
            return limit.map { Array(list.suffix($0)) } ?? list
        }
    }

    func heartbeat(_ beat: ProcessBeat) async throws -> ProcessSignal? {
        let me = identity
        store.withLock { s in
            s.beats += 1
            s.leases[me] = .now + .seconds(beat.lease)
        }
        return nil
    }

    func deadProcesses() async throws -> [String] {
        let now = ContinuousClock.now
        return store.withLock { s in s.leases.filter { $0.value <= now }.map(\.key) }
    }

    func claim(deadProcess process: String) async throws -> Bool {
        store.withLock { $0.reaping.insert(process).inserted }
    }

    func forget(deadProcess process: String) async throws {
        store.withLock { s in
            s.leases[process] = nil
            s.reaping.remove(process)
        }
    }

    func deregister() async throws {
        let me = identity
        store.withLock { s in
            // Known to reapers while anything is left in flight.
            if s.inflight[me]?.isEmpty ?? true { s.leases[me] = nil } else { s.leases[me] = .now }
        }
    }

    func promoteDueJobs() async throws {
        let now = JobTime.now()
        store.withLock { s in
            let due = s.retry.filter { $0.at <= now } + s.schedule.filter { $0.at <= now }
            s.retry.removeAll { $0.at <= now }
            s.schedule.removeAll { $0.at <= now }
            for entry in due {
                let job = try? Job(raw: entry.raw)
                let payload = job.map { JobTransitions.enqueued($0.payload, now: now).bytes } ?? entry.raw
                s.queues[job?.queue ?? "default", default: []].insert(payload, at: 0)
            }
        }
    }

    func close() {}
}

@Suite struct MemoryBackendTests {
    @Test func theWorkerRunsRetriesAndBuriesJobsThroughAnyBackend() async throws {
        let configuration = WorkerConfiguration(
            queues: try QueueSelection(parsing: "default"), concurrency: 4, heartbeatInterval: .milliseconds(50),
            pollInterval: .milliseconds(20))
        let backend = MemoryBackend(identity: configuration.identity)
        var registry = JobRegistry()
        BuiltinJobs.register(into: &registry)
        let attempts = Atomic<Int>(0)
        registry.register(JobClass(
            "flaky", retry: RetryPolicy(maxAttempts: 2, backoff: .exponential(base: 0.01, factor: 1, cap: 0.01, jitter: 0)),
            handler: ClosureHandler { _ in
                attempts.add(1, ordering: .relaxed)
                throw JobFailure.transient("UpstreamDown", "no")
            }))
        for _ in 0..<20 { backend.push(Job.envelope(jobClass: "noop", arguments: JSONObject(), queue: "default", retry: nil, at: nil, now: JobTime.now())) }
        backend.push(Job.envelope(jobClass: "flaky", arguments: JSONObject(), queue: "default", retry: nil, at: nil, now: JobTime.now()))
        backend.push(Job.envelope(jobClass: "nobody.knows", arguments: JSONObject(), queue: "default", retry: nil, at: nil, now: JobTime.now()))
        let outcomes = Outcomes()
        let worker = Worker(backend: backend, registry: registry, configuration: configuration, observers: [outcomes])
        let running = Task { try await worker.run() }
        try await eventually("every job ended", timeout: .seconds(20)) { backend.store.withLock { $0.processed == 23 && $0.dead.count == 2 } }
        worker.shutdown()
        try await running.value
        let s = backend.store.withLock { $0 }
        #expect(s.inflightCount == 0)
        #expect(s.queues.values.allSatisfy { $0.isEmpty })
        #expect(s.failed == 3, "flaky twice, the unknown class once")
        #expect(attempts.load(ordering: .relaxed) == 2)
        let dead = try s.dead.map { try JSONValue(parsing: $0)["error_class"]?.stringValue }
        #expect(Set(dead.compactMap { $0 }) == ["UpstreamDown", "UnknownJobClass"])
        #expect(s.beats >= 1)
    }
}

/// A `MemoryBackend` whose every call, once `hang()` is called, waits until `release()`: a Redis that accepts the
/// connection and never answers.
final class HangingBackend: QueueBackend {
    let inner: MemoryBackend
    private let hanging = Atomic<Bool>(false)
    private let waiters = Mutex<[CheckedContinuation<Void, any Error>]>([])
    struct Released: Error {}

    init(identity: String) { inner = MemoryBackend(identity: identity) }

    var identity: String { inner.identity }
    var journalName: String { inner.journalName }

    func hang() { hanging.store(true, ordering: .sequentiallyConsistent) }

    /// Fails every waiting call, and every later one.
    func release() {
        let all = waiters.withLock { w in
            defer { w.removeAll() }
            return w
        }
        for w in all { w.resume(throwing: Released()) }
    }

    private func gate() async throws {
        guard hanging.load(ordering: .sequentiallyConsistent) else { return }
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in waiters.withLock { $0.append(c) } }
    }

    var waiting: Int { waiters.withLock { $0.count } }

    func fetch(from order: [String], count: Int) async throws -> [FetchedJob] {
        try await gate()
        return try await inner.fetch(from: order, count: count)
    }
    func waitForJob(on queue: String, timeout: Double) async throws -> FetchedJob? {
        try await gate()
        return try await inner.waitForJob(on: queue, timeout: timeout)
    }
    func complete(_ moves: [JobTransitions.Move], batch: UInt64, resent: Bool) async throws -> Bool {
        try await gate()
        return try await inner.complete(moves, batch: batch, resent: resent)
    }
    func apply(_ moves: [JobTransitions.Move], fromInflightOf process: String, journalField: String) async throws -> [Bool] {
        try await gate()
        return try await inner.apply(moves, fromInflightOf: process, journalField: journalField)
    }
    func inflightJobs(of process: String, limit: Int?) async throws -> [FetchedJob] {
        try await gate()
        return try await inner.inflightJobs(of: process, limit: limit)
    }
    func heartbeat(_ beat: ProcessBeat) async throws -> ProcessSignal? {
        try await gate()
        return try await inner.heartbeat(beat)
    }
    func deadProcesses() async throws -> [String] {
        try await gate()
        return []
    }
    func claim(deadProcess process: String) async throws -> Bool { false }
    func forget(deadProcess process: String) async throws {}
    func deregister() async throws { try await gate() }
    func promoteDueJobs() async throws { try await gate() }
    func close() {}
}

@Suite struct StopDeadlineTests {
    /// The backend stops answering (no error, no reply) while a job runs: the stop still returns by
    /// `shutdownTimeout + Worker.stopWriteAllowance`, counts the completion it could not write, and leaves the job in
    /// the in-flight list for a reaper.
    @Test func aStopEndsByItsDeadlineWhenTheBackendNeverAnswers() async throws {
        let configuration = WorkerConfiguration(
            queues: try QueueSelection(parsing: "default"), concurrency: 2, shutdownTimeout: .milliseconds(500),
            heartbeatInterval: .milliseconds(50), pollInterval: .milliseconds(20))
        let backend = HangingBackend(identity: configuration.identity)
        var registry = JobRegistry()
        BuiltinJobs.register(into: &registry)
        backend.inner.push(Job.envelope(jobClass: "sleep", arguments: ["ms": 300], queue: "default"))
        let worker = Worker(backend: backend, registry: registry, configuration: configuration)
        let returned = Atomic<Bool>(false)
        let running = Task {
            try await worker.run()
            returned.store(true, ordering: .sequentiallyConsistent)
        }
        try await eventually("the job taken") { backend.inner.store.withLock { $0.inflightCount == 1 } }
        backend.hang()
        let stopped = ContinuousClock.now
        worker.shutdown()
        // Bounded: a stop that waits for the backend forever fails here instead of hanging the suite.
        try await eventually("run() returned", timeout: .milliseconds(500) + Worker.stopWriteAllowance + .seconds(2)) {
            returned.load(ordering: .sequentiallyConsistent)
        }
        try await running.value
        let took = ContinuousClock.now - stopped
        #expect(took >= .milliseconds(500) + Worker.stopWriteAllowance - .milliseconds(100), "it waited for the backend: \(took)")
        #expect(took < .milliseconds(500) + Worker.stopWriteAllowance + .seconds(2), "the stop took \(took)")
        #expect(worker.stopLeftJobsInFlight)
        #expect(worker.unwrittenCompletions == 1)
        #expect(backend.inner.store.withLock { $0.inflightCount } == 1, "the job stays in flight for a reaper")
        #expect(backend.waiting > 0, "calls were still hanging when the stop gave up")
        backend.release()
    }

    @Test func aStopWithAnAnsweringBackendLeavesNothing() async throws {
        let configuration = WorkerConfiguration(
            queues: try QueueSelection(parsing: "default"), concurrency: 2, shutdownTimeout: .seconds(5),
            heartbeatInterval: .milliseconds(50), pollInterval: .milliseconds(20))
        let backend = HangingBackend(identity: configuration.identity)
        var registry = JobRegistry()
        BuiltinJobs.register(into: &registry)
        backend.inner.push(Job.envelope(jobClass: "sleep", arguments: ["ms": 200], queue: "default"))
        let worker = Worker(backend: backend, registry: registry, configuration: configuration)
        let running = Task { try await worker.run() }
        try await eventually("the job taken") { backend.inner.store.withLock { $0.inflightCount == 1 } }
        worker.shutdown()
        try await running.value
        #expect(!worker.stopLeftJobsInFlight)
        #expect(worker.unwrittenCompletions == 0)
        #expect(backend.inner.store.withLock { $0.inflightCount == 0 && $0.processed == 1 })
    }
}
