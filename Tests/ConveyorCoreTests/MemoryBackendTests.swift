import Foundation
import Synchronization
import Testing

@testable import ConveyorCore

/// The worker needs no Redis: a second `QueueBackend`, in memory, runs jobs, retries and dead ends through the same
/// worker, so a backend of another layout or topology plugs in without touching it. This one is the smallest
/// complete backend: one process, moves applied under one lock.
final class MemoryBackend: QueueBackend {
    struct Store {
        var queues: [String: [[UInt8]]] = [:]
        var inflight: [[UInt8]] = []
        var retry: [(at: Double, raw: [UInt8])] = []
        var dead: [[UInt8]] = []
        var processed = 0
        var failed = 0
        var beats = 0
        var appliedBatches: Set<UInt64> = []
    }

    let identity: String
    var journalName: String { "memory:\(identity)" }
    let store = Mutex(Store())

    init(identity: String) { self.identity = identity }

    func push(_ payload: JSONObject, queue: String = "default") {
        store.withLock { $0.queues[queue, default: []].insert(payload.bytes, at: 0) }
    }

    func fetch(from order: [String], count: Int) async throws -> [FetchedJob] {
        store.withLock { s in
            var out: [FetchedJob] = []
            for queue in order {
                while out.count < count, let raw = s.queues[queue]?.popLast() {
                    s.inflight.insert(raw, at: 0)
                    out.append(FetchedJob(raw: raw, queue: queue))
                }
            }
            return out
        }
    }

    /// Polls (a server-side backend blocks instead): up to `timeout`, every 10 ms.
    func waitForJob(on queue: String, timeout: Double) async throws -> [UInt8]? {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ContinuousClock.now < deadline {
            let raw = store.withLock { s -> [UInt8]? in
                guard let raw = s.queues[queue]?.popLast() else { return nil }
                s.inflight.insert(raw, at: 0)
                return raw
            }
            if let raw { return raw }
            try await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    func complete(_ moves: [JobTransitions.Move], batch: UInt64, resent: Bool) async throws -> Bool {
        store.withLock { s in
            guard s.appliedBatches.insert(batch).inserted else { return }
            for move in moves { _ = Self.apply(move, to: &s) }
        }
        return true
    }

    func apply(_ moves: [JobTransitions.Move], fromInflightOf process: String, journalField: String) async throws -> [Bool] {
        store.withLock { s in moves.map { Self.apply($0, to: &s) } }
    }

    private static func apply(_ move: JobTransitions.Move, to s: inout Store) -> Bool {
        guard let index = s.inflight.firstIndex(of: move.raw) else { return false }
        s.inflight.remove(at: index)
        switch move.target {
        case .ack: break
        case .retry(let payload, let at): s.retry.append((at, payload))
        case .dead(let payload): s.dead.append(payload)
        case .queue(let queue, let payload, let head):
            if head { s.queues[queue, default: []].append(payload) } else { s.queues[queue, default: []].insert(payload, at: 0) }
        case .replace(let payload): s.inflight.insert(payload, at: index)
        }
        switch move.counts {
        case .none: break
        case .processed: s.processed += 1
        case .processedAndFailed: s.processed += 1; s.failed += 1
        case .failed: s.failed += 1
        }
        return true
    }

    func inflightJobs(of process: String, limit: Int?) async throws -> [[UInt8]] {
        store.withLock { s in limit.map { Array(s.inflight.suffix($0)) } ?? s.inflight }
    }

    func heartbeat(_ beat: ProcessBeat) async throws -> ProcessSignal? {
        store.withLock { $0.beats += 1 }
        return nil
    }

    func deadProcesses() async throws -> [String] { [] }
    func claim(deadProcess process: String) async throws -> Bool { false }
    func forget(deadProcess process: String) async throws {}
    func deregister() async throws {}

    func promoteDueJobs() async throws {
        let now = JobTime.now()
        store.withLock { s in
            let due = s.retry.filter { $0.at <= now }
            s.retry.removeAll { $0.at <= now }
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
        #expect(s.inflight.isEmpty)
        #expect(s.queues.values.allSatisfy { $0.isEmpty })
        #expect(s.failed == 3, "flaky twice, the unknown class once")
        #expect(attempts.load(ordering: .relaxed) == 2)
        let dead = try s.dead.map { try JSONValue(parsing: $0)["error_class"]?.stringValue }
        #expect(Set(dead.compactMap { $0 }) == ["UpstreamDown", "UnknownJobClass"])
        #expect(s.beats >= 1)
    }
}
