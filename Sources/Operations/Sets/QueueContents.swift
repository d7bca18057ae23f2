public import ConveyorCore
import Foundation
public import Redis
public import SidekiqQueue

/// The ready jobs of one queue (`queue:<name>`, a LIST pushed on the left): paged, newest first, and deleted one
/// exact member at a time, safe while workers fetch from it.
public struct QueueContents {
    public let name: String
    public let keys: QueueKeys
    private let connection: RedisConnection

    public init(_ name: String, keys: QueueKeys, connection: RedisConnection) {
        self.name = name
        self.keys = keys
        self.connection = connection
    }

    /// The largest page, and the deepest offset, a page read uses whatever it is asked (offsets come from URLs).
    public static let maximumPageSize = 1000
    public static let maximumOffset = 1_000_000_000

    /// One page of jobs, newest (next-to-last to run) first: `LRANGE offset offset+count`, with `offset` kept in
    /// 0...`maximumOffset` and `count` in 1...`maximumPageSize`.
    public func page(offset: Int, count: Int) throws -> (jobs: [QueuedJob], depth: Int, more: Bool) {
        let offset = min(Self.maximumOffset, max(0, offset))
        let count = min(Self.maximumPageSize, max(1, count))
        let replies = try connection.pipeline([
            RedisCommand("LRANGE", keys.queue(name), offset, offset + count),
            RedisCommand("LLEN", keys.queue(name)),
        ])
        let items = try replies[0].check().array ?? []
        let depth = try replies[1].check().int ?? 0
        let jobs = items.prefix(count).map { QueuedJob(member: $0.bytes ?? []) }
        return (jobs, depth, items.count > count)
    }

    /// Deletes every ready job of the queue and drops it from `queues` (Sidekiq's `Queue#clear`); returns how many
    /// jobs were deleted. The jobs get no outcome rows: they never ran. The unique jobs among them give up their locks:
    /// the list is first renamed aside in one step (so no worker takes a job after it was counted), then read in
    /// chunks for the locks to release, then dropped. A clear cut short leaves the aside list to expire in a day; its
    /// locks then end at their `unique_for`.
    public func clear() throws -> Int {
        let aside = keys.queue(name) + ":clearing:" + Job.newJID()
        let reply = try connection.command(
            "EVAL", """
                local n = redis.call('LLEN', KEYS[1])
                if n > 0 then redis.call('RENAME', KEYS[1], KEYS[3]) redis.call('EXPIRE', KEYS[3], 86400) end
                redis.call('SREM', KEYS[2], ARGV[1])
                return n
                """, 3,
            keys.queue(name), keys.queues, aside, name
        ).check()
        let count = reply.int ?? 0
        guard count > 0 else { return 0 }
        let chunk = 1000
        var start = 0
        while start < count {
            let items = try connection.command("LRANGE", aside, start, start + chunk - 1).check().array ?? []
            let releases = items.compactMap { item -> RedisCommand? in
                guard let member = item.bytes, Self.mayHoldALock(member) else { return nil }
                return RedisUniqueLocks.releaseCommand(member: member, keys: keys)
            }
            if !releases.isEmpty { for r in try connection.pipeline(releases) { _ = try r.check() } }
            if items.count < chunk { break }
            start += chunk
        }
        _ = try connection.command("UNLINK", aside).check()
        return count
    }

    /// Whether a stored job can hold a unique lock (it names `unique_for`), before it is parsed.
    static func mayHoldALock(_ member: [UInt8]) -> Bool {
        let needle = Array("\"unique_for\"".utf8)
        guard member.count >= needle.count else { return false }
        return (0...(member.count - needle.count)).contains { i in member[i..<(i + needle.count)].elementsEqual(needle) }
    }

    /// Removes one exact job, and gives up its unique lock if it holds one; false when it was gone (a worker took it).
    public func delete(_ member: [UInt8]) throws -> Bool {
        guard (try connection.command("LREM", keys.queue(name), 1, member).check().int ?? 0) > 0 else { return false }
        if let release = RedisUniqueLocks.releaseCommand(member: member, keys: keys) { _ = try connection.command(release).check() }
        return true
    }

    /// The queued job with this jid among the first `scanLimit` (newest), read in chunks.
    public func find(jid: String, scanLimit: Int = 100_000) throws -> QueuedJob? {
        var start = 0
        let chunk = 1000
        while start < scanLimit {
            let items = try connection.command("LRANGE", keys.queue(name), start, start + chunk - 1).check().array ?? []
            for item in items {
                let job = QueuedJob(member: item.bytes ?? [])
                if job.jid == jid { return job }
            }
            if items.count < chunk { return nil }
            start += chunk
        }
        return nil
    }
}

/// One ready job with its exact bytes (needed to delete exactly it).
public struct QueuedJob: Sendable {
    public var member: [UInt8]
    /// Nil when the member is not a JSON object.
    public var job: JSONObject?

    public init(member: [UInt8]) {
        self.member = member
        if case .object(let o)? = try? JSONValue(parsing: member) { job = o }
    }

    public var jid: String? { job?["jid"]?.stringValue }
    public var jobClass: String? { job?["class"]?.stringValue }
    public var enqueuedAt: Double? { QueueSnapshot.timestamp(job?["enqueued_at"]) ?? QueueSnapshot.timestamp(job?["created_at"]) }
}

/// Pausing a queue (`conveyor queue pause NAME`, the dashboard's Pause button): its name goes into
/// `QueueKeys.pausedQueues`; workers read that set at most once a second and stop fetching from the queue. Jobs
/// keep arriving and wait; resume lets them run.
public struct QueuePauses {
    public let keys: QueueKeys
    private let connection: RedisConnection

    public init(keys: QueueKeys, connection: RedisConnection) {
        self.keys = keys
        self.connection = connection
    }

    /// True when it was not paused before.
    @discardableResult
    public func pause(_ queue: String) throws -> Bool {
        try Self.check(queue)
        return try connection.command("SADD", keys.pausedQueues, queue).check().int == 1
    }

    /// True when it was paused before.
    @discardableResult
    public func resume(_ queue: String) throws -> Bool {
        try Self.check(queue)
        return try connection.command("SREM", keys.pausedQueues, queue).check().int == 1
    }

    /// The queues anyone has used: those in `queues` (producers add theirs) and those a live process serves.
    public func known() throws -> Set<String> {
        var names = Set((try connection.command("SMEMBERS", keys.queues).check().array ?? []).compactMap(\.text))
        for process in try QueueSnapshot.read(connection, keys: keys).processes { names.formUnion(process.queues) }
        return names
    }

    public func paused() throws -> Set<String> {
        Set((try connection.command("SMEMBERS", keys.pausedQueues).check().array ?? []).compactMap(\.text))
    }

    /// Queue names as Sidekiq allows them: no empty name, nothing a key or a log line could be forged with.
    static func check(_ queue: String) throws {
        guard !queue.isEmpty, queue.count <= 200, queue.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7f }) else {
            throw JobSetError.usage("\(queue.debugDescription) is not a queue name")
        }
    }
}

/// Signals to a worker process in Sidekiq's way (`LPUSH <identity>-signals`): its next heartbeat pops it. `quiet`
/// stops it fetching; `stop` shuts it down gracefully (its running jobs finish or go back).
public struct ProcessSignals {
    public enum Signal: String, Sendable {
        case quiet = "TSTP"
        case stop = "TERM"
    }

    public let keys: QueueKeys
    private let connection: RedisConnection

    public init(keys: QueueKeys, connection: RedisConnection) {
        self.keys = keys
        self.connection = connection
    }

    /// The identities of the live processes (those with a heartbeat), sorted.
    public func live() throws -> [String] {
        (try connection.command("SMEMBERS", keys.processes).check().array ?? []).compactMap(\.text).sorted()
    }

    /// False when no live process has this identity.
    public func send(_ signal: Signal, to identity: String) throws -> Bool {
        guard try connection.command("SISMEMBER", keys.processes, identity).check().int == 1 else { return false }
        let replies = try connection.pipeline([
            RedisCommand("LPUSH", keys.signals(identity), signal.rawValue),
            RedisCommand("EXPIRE", keys.signals(identity), 60),
        ])
        for reply in replies { try reply.check() }
        return true
    }
}
