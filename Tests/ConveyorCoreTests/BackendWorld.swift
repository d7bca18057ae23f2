import Foundation
import Redis
import Testing

@testable import ConveyorCore
import ConveyorTesting
import SidekiqQueue

/// The backends the worker's contract suite (`WorkerTests`) runs over: in memory, a single Redis in Sidekiq's layout,
/// and a Redis Cluster in the cluster layout (when the cluster of scripts/services.sh runs).
enum BackendKind: String, Sendable, CaseIterable, CustomTestStringConvertible {
    case memory, redis, cluster

    static var available: [BackendKind] { ClusterWorkerTests.url != nil ? allCases : [.memory, .redis] }

    var testDescription: String { rawValue }
}

/// One test's world behind a backend: how the test pushes jobs and reads what the workers did, whatever the layout.
/// Every queue a contract test uses is one of `queues`.
final class BackendWorld: Sendable {
    static let queues = ["critical", "default", "low"]

    let kind: BackendKind
    let memory = MemoryStore()
    /// Nil for the memory backend.
    let redis: TestRedis?

    init(_ kind: BackendKind, _ name: String = #function) throws {
        self.kind = kind
        switch kind {
        case .memory: redis = nil
        case .redis: redis = try TestRedis(name)
        case .cluster: redis = try TestRedis(name, url: ClusterWorkerTests.url, cluster: true)
        }
    }

    var keys: QueueKeys { redis?.keys ?? QueueKeys() }

    /// The backend of one worker process.
    func backend(_ configuration: WorkerConfiguration, deadSet: DeadSetLimits = DeadSetLimits()) -> any QueueBackend {
        guard let redis else { return MemoryBackend(identity: configuration.identity, store: memory) }
        return SidekiqBackend(
            redis: redis.endpoint, keys: redis.keys, identity: configuration.identity, queues: configuration.queues.names, deadSet: deadSet)
    }

    /// Enqueues as a Sidekiq client would; `at` in the future schedules it.
    @discardableResult
    func enqueue(_ jobClass: String, arguments: JSONObject = JSONObject(), queue: String = "default", at: Double? = nil) async throws -> String {
        if let redis { return try await redis.client.enqueue(jobClass, arguments: arguments, queue: queue, at: at) }
        let payload = Job.envelope(jobClass: jobClass, arguments: arguments, queue: queue, at: at)
        if let at {
            var scheduled = payload
            scheduled["at"] = nil
            memory.withLock { $0.schedule.append((at, scheduled.bytes)) }
        } else {
            memory.withLock { $0.queues[queue, default: []].insert(payload.bytes, at: 0) }
        }
        return payload["jid"]!.stringValue!
    }

    /// Pushes bytes onto a queue as they are.
    func push(raw: [UInt8], queue: String = "default") async throws {
        if let redis {
            try await redis.command("LPUSH", redis.keys.queue(queue), raw)
        } else {
            memory.withLock { $0.queues[queue, default: []].insert(raw, at: 0) }
        }
    }

    /// Sidekiq's `stat:processed` (on a cluster, summed over the queues' own counters).
    func processed() async throws -> Int {
        guard let redis else { return memory.withLock { $0.processed } }
        return try await sum(redis.keys.cluster ? Self.queues.map { redis.keys.processed(queue: $0) } : [redis.keys.processed])
    }

    func failed() async throws -> Int {
        guard let redis else { return memory.withLock { $0.failed } }
        return try await sum(redis.keys.cluster ? Self.queues.map { redis.keys.failed(queue: $0) } : [redis.keys.failed])
    }

    /// The retry set's members with their scores.
    func retries() async throws -> [(at: Double, job: JSONObject)] {
        guard let redis else {
            return try memory.withLock { $0.retry }.map { ($0.at, try JSONValue(parsing: $0.raw).objectValue!) }
        }
        var out: [(Double, JSONObject)] = []
        for set in redis.keys.cluster ? Self.queues.map({ redis.keys.retry(queue: $0) }) : [redis.keys.retry] {
            let items = try await redis.command("ZRANGE", set, 0, -1, "WITHSCORES").array ?? []
            var i = 0
            while i + 1 < items.count {
                out.append((Double(items[i + 1].text!)!, try JSONValue(parsing: items[i].bytes!).objectValue!))
                i += 2
            }
        }
        return out
    }

    func dead() async throws -> [JSONObject] {
        guard let redis else { return try memory.withLock { $0.dead }.map { try JSONValue(parsing: $0).objectValue! } }
        var out: [JSONObject] = []
        for set in redis.keys.cluster ? Self.queues.map({ redis.keys.dead(queue: $0) }) : [redis.keys.dead] {
            out += try await redis.jobs(inSet: set)
        }
        return out
    }

    func scheduled() async throws -> Int {
        guard let redis else { return memory.withLock { $0.schedule.count } }
        return try await count("ZCARD", redis.keys.cluster ? Self.queues.map { redis.keys.schedule(queue: $0) } : [redis.keys.schedule])
    }

    /// A queue's ready jobs, newest first.
    func queued(_ queue: String = "default") async throws -> [JSONObject] {
        guard let redis else {
            return try memory.withLock { $0.queues[queue] ?? [] }.map { try JSONValue(parsing: $0).objectValue! }
        }
        return try await redis.jobs(inList: redis.keys.queue(queue))
    }

    /// Jobs in one process's in-flight store (on a cluster, its list of every queue).
    func inflight(_ identity: String) async throws -> Int {
        guard let redis else { return memory.withLock { $0.inflight[identity]?.count ?? 0 } }
        let lists = redis.keys.cluster ? Self.queues.map { redis.keys.inflight(identity, queue: $0) } : [redis.keys.inflight(identity)]
        return try await count("LLEN", lists)
    }

    /// Whether a process is registered for reapers (Conveyor's process set, or the memory backend's leases).
    func knows(process identity: String) async throws -> Bool {
        guard let redis else { return memory.withLock { $0.leases[identity] != nil } }
        return try await redis.int("SISMEMBER", redis.keys.conveyorProcesses, identity) == 1
    }

    /// A process that died holding `jobs`: registered, its jobs in flight, no heartbeat.
    func plantDeadProcess(_ identity: String, holding jobs: [JSONObject]) async throws {
        guard let redis else {
            memory.withLock { s in
                s.leases[identity] = .now
                for job in jobs { s.inflight[identity, default: []].insert(FetchedJob(raw: job.bytes, queue: job["queue"]!.stringValue!), at: 0) }
            }
            return
        }
        try await redis.command("SADD", redis.keys.conveyorProcesses, identity)
        for job in jobs {
            let queue = job["queue"]!.stringValue!
            try await redis.command("LPUSH", redis.keys.cluster ? redis.keys.inflight(identity, queue: queue) : redis.keys.inflight(identity), job.bytes)
        }
    }

    func clean() async throws {
        if let redis, !redis.keys.cluster { try await redis.clean() }
    }

    private func sum(_ keys: [String]) async throws -> Int {
        var total = 0
        for key in keys { total += try await redis!.int("GET", key) }
        return total
    }

    private func count(_ command: String, _ keys: [String]) async throws -> Int {
        var total = 0
        for key in keys { total += try await redis!.int(command, key) }
        return total
    }
}

/// A worker on `world`'s backend running in this test process, stopped (gracefully) at the end of `body`.
func withWorker<T>(
    _ world: BackendWorld, registry: JobRegistry, queues: String = "default", concurrency: Int = 4,
    shutdownTimeout: Duration = .seconds(5), heartbeatTTL: Int = 30, identity: String? = nil,
    deadSet: DeadSetLimits = DeadSetLimits(),
    _ body: (Worker) async throws -> T
) async throws -> T {
    let configuration = WorkerConfiguration(
        queues: try QueueSelection(parsing: queues), concurrency: concurrency, shutdownTimeout: shutdownTimeout,
        heartbeatInterval: .milliseconds(200), heartbeatTTL: heartbeatTTL, pollInterval: .milliseconds(50),
        identity: identity)
    let worker = Worker(backend: world.backend(configuration, deadSet: deadSet), registry: registry, configuration: configuration)
    let running = Task { try await worker.run() }
    do {
        let result = try await body(worker)
        worker.shutdown()
        try await running.value
        return result
    } catch {
        worker.shutdown()
        _ = try? await running.value
        throw error
    }
}
