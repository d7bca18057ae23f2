public import ConveyorCore
import Synchronization

/// What every `MemoryBackend` of one test shares, as processes share a Redis.
public final class MemoryStore: Sendable {
    public struct State: Sendable {
        /// Ready jobs per queue, newest first (pushed at 0, taken from the end).
        public var queues: [String: [[UInt8]]] = [:]
        /// Each process's in-flight store, newest first.
        public var inflight: [String: [FetchedJob]] = [:]
        public var retry: [(at: Double, raw: [UInt8])] = []
        public var schedule: [(at: Double, raw: [UInt8])] = []
        public var dead: [[UInt8]] = []
        public var processed = 0
        public var failed = 0
        public var beats = 0
        public var appliedBatches: [String: Set<UInt64>] = [:]
        /// Registered processes and when their lease ends.
        public var leases: [String: ContinuousClock.Instant] = [:]
        public var reaping: Set<String> = []

        /// Jobs in every process's in-flight store.
        public var inflightCount: Int { inflight.values.reduce(0) { $0 + $1.count } }
    }

    private let state = Mutex(State())

    public init() {}

    public func withLock<T: Sendable>(_ body: (inout State) -> T) -> T { state.withLock { body(&$0) } }
}

/// The worker needs no Redis: a second `QueueBackend`, in memory, runs jobs, retries and dead ends through the same
/// worker, so a backend of another layout or topology plugs in without touching it. This one is the smallest
/// complete backend: processes sharing one `MemoryStore`, moves applied under its lock.
public final class MemoryBackend: QueueBackend {
    public let identity: String
    public var journalName: String { "memory:\(identity)" }
    public let store: MemoryStore

    public init(identity: String, store: MemoryStore = MemoryStore()) {
        self.identity = identity
        self.store = store
    }

    /// Pushes a job onto `queue`, as a producer's `LPUSH` does.
    public func push(_ payload: JSONObject, queue: String = "default") {
        store.withLock { $0.queues[queue, default: []].insert(payload.bytes, at: 0) }
    }

    public func fetch(from order: [String], count: Int) async throws -> [FetchedJob] {
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
    public func waitForJob(on queue: String, timeout: Double) async throws -> FetchedJob? {
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

    public func complete(_ moves: [JobTransitions.Move], batch: UInt64, resent: Bool) async throws -> Bool {
        let me = identity
        store.withLock { s in
            guard s.appliedBatches[me, default: []].insert(batch).inserted else { return }
            for move in moves { _ = Self.apply(move, from: me, to: &s) }
        }
        return true
    }

    public func apply(_ moves: [JobTransitions.Move], fromInflightOf process: String, journalField: String) async throws -> [Bool] {
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

    public func inflightJobs(of process: String, limit: Int?) async throws -> [FetchedJob] {
        store.withLock { s in
            let list = s.inflight[process] ?? []
            return limit.map { Array(list.suffix($0)) } ?? list
        }
    }

    public func heartbeat(_ beat: ProcessBeat) async throws -> ProcessSignal? {
        let me = identity
        store.withLock { s in
            s.beats += 1
            s.leases[me] = .now + .seconds(beat.lease)
        }
        return nil
    }

    public func deadProcesses() async throws -> [String] {
        let now = ContinuousClock.now
        return store.withLock { s in s.leases.filter { $0.value <= now }.map(\.key) }
    }

    public func claim(deadProcess process: String) async throws -> Bool {
        store.withLock { $0.reaping.insert(process).inserted }
    }

    public func forget(deadProcess process: String) async throws {
        store.withLock { s in
            s.leases[process] = nil
            s.reaping.remove(process)
        }
    }

    public func deregister() async throws {
        let me = identity
        store.withLock { s in
            // Known to reapers while anything is left in flight.
            if s.inflight[me]?.isEmpty ?? true { s.leases[me] = nil } else { s.leases[me] = .now }
        }
    }

    public func promoteDueJobs() async throws {
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

    public func close() {}
}
