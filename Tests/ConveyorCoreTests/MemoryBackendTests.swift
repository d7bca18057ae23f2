import Foundation
import Synchronization
import Testing

@testable import ConveyorCore
import ConveyorTesting

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
