public import ConveyorCore
public import Foundation
public import Redis
public import SidekiqQueue

/// Cancels jobs wherever they are, for `conveyor cancel` and the dashboard.
///
/// A cancel first sets the durable flag Sidekiq 7.3's `Sidekiq::Client#cancel!` sets (`HSETNX it-<jid> cancelled
/// <unix seconds>`, kept 30 days) and adds the jid to the recently-cancelled list workers poll every 250 ms, then
/// removes the job from where it waits:
/// - queued, scheduled or retrying: one script removes that exact member and, only if it was there, journals a
///   `cancelled` outcome that any worker's result writer stores in `conveyor.job_results`, so the job never
///   starts and has one outcome row;
/// - taken by a worker (in a process's in-flight list): that worker stops it within a second (its task is
///   cancelled, which kills its helper) and records `cancelled` itself; one it has not started yet is recorded
///   `cancelled` without running.
/// A job in the dead set is over: it is left as it is, unflagged, so a later replay runs.
public struct JobCancellation {
    public let keys: QueueKeys
    private let connection: RedisConnection

    public init(keys: QueueKeys, connection: RedisConnection) {
        self.keys = keys
        self.connection = connection
    }

    /// Where a cancelled job was.
    public enum Place: Sendable, Equatable, CustomStringConvertible {
        /// Waiting in this queue; removed, and its outcome recorded.
        case queued(String)
        case scheduled
        case retrying
        /// Taken by this process (running, or fetched and about to start): it stops it, or never starts it.
        case taken(String)
        /// Already dead: left alone.
        case dead
        /// Nowhere to be found (finished, or never existed): flagged anyway, so it never starts if it shows up.
        case unknown

        public var description: String {
            switch self {
            case .queued(let queue): "queued in \(queue)"
            case .scheduled: "scheduled"
            case .retrying: "waiting for a retry"
            case .taken(let identity): "taken by \(identity)"
            case .dead: "dead"
            case .unknown: "not found"
            }
        }

        /// The word `--json` prints.
        public var word: String {
            switch self {
            case .queued: "queued"
            case .scheduled: "scheduled"
            case .retrying: "retry"
            case .taken: "taken"
            case .dead: "dead"
            case .unknown: "unknown"
            }
        }
    }

    /// How long the `it-<jid>` flag lives (Sidekiq's iterable-job state TTL) and how long a jid stays in the
    /// recently-cancelled list, and how many it holds.
    public static let flagSeconds = 30 * 86_400
    public static let recentSeconds = 86_400
    public static let recentLimit = 10_000

    /// Cancels `jid`; `who` goes into the outcome's message (`root@host`, `admin@127.0.0.1 via the dashboard`).
    public func cancel(_ jid: String, by who: String, now: Double = Date().timeIntervalSince1970) throws -> Place {
        guard !keys.cluster else { throw JobSetError.usage("cancel is not supported on a Redis Cluster yet") }
        guard Self.isPlausibleJID(jid) else { throw JobSetError.usage("\(jid.prefix(80)): not a jid (1-128 letters, digits, - or _)") }
        // A dead job is over; flagging it would cancel a later replay.
        let dead = try JobSet(.dead, keys: keys, connection: connection).find(jid: jid, score: nil)
        if let holder = try takenBy(jid) {
            try flag(jid, now: now)
            return .taken(holder)
        }
        for (set, place) in [(JobSetName.scheduled, Place.scheduled), (.retry, .retrying)] {
            if let entry = try JobSet(set, keys: keys, connection: connection).find(jid: jid, score: nil) {
                try flag(jid, now: now)
                if try remove(entry.member, from: set.key(keys), isList: false, job: entry.job, place: place, who: who, now: now) { return place }
            }
        }
        // The same bounds as a lookup: the newest 10,000 jobs of up to 20 queues (a job deeper is flagged and never starts).
        let queues = (try connection.command("SMEMBERS", keys.queues).check().array ?? []).compactMap(\.text).sorted()
            .prefix(JobLocator.maximumQueues)
        for queue in queues {
            if let hit = try QueueContents(queue, keys: keys, connection: connection).find(jid: jid, scanLimit: JobLocator.queueScanLimit) {
                try flag(jid, now: now)
                let job = (try? JSONValue(parsing: hit.member))?.objectValue
                if try remove(hit.member, from: keys.queue(queue), isList: true, job: job, place: .queued(queue), who: who, now: now) {
                    return .queued(queue)
                }
            }
        }
        if dead != nil { return .dead }
        try flag(jid, now: now)
        // Taken between the looks above: the flag stops it.
        if let holder = try takenBy(jid) { return .taken(holder) }
        return .unknown
    }

    /// Letters, digits, `-` and `_`, 1-128 characters: every jid Sidekiq, BullMQ or Conveyor makes.
    public static func isPlausibleJID(_ jid: String) -> Bool {
        !jid.isEmpty && jid.utf8.count <= 128 && jid.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "-" || $0 == "_") }
    }

    /// The process whose in-flight list holds `jid`, if any.
    public func takenBy(_ jid: String) throws -> String? {
        try JobLocator(keys: keys, connection: connection).taken(jid)?.0
    }

    /// Sidekiq's flag and the recently-cancelled list, in one script.
    private func flag(_ jid: String, now: Double) throws {
        _ = try connection.command(
            RedisCommand([
                "EVAL", Self.flagScript, "3", keys.cancelFlag(jid), keys.cancelled, keys.cancelVersion, jid, String(Int(now)),
                String(Self.flagSeconds), String(Int(now) - Self.recentSeconds), String(Self.recentLimit),
            ] as [any RedisArgument])
        ).check()
    }

    /// KEYS: it-<jid>, the recently-cancelled ZSET, its version. ARGV: jid, now, flag TTL, oldest kept, most kept.
    static let flagScript = """
        redis.call('HSETNX', KEYS[1], 'cancelled', ARGV[2])
        if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
        redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
        redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4])
        redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -1 - tonumber(ARGV[5]))
        redis.call('INCR', KEYS[3])
        return 1
        """

    /// Removes exactly `member` from the list or sorted set and, only if it was there, journals its `cancelled`
    /// outcome for the result writers. False when it was gone (a worker or another command took it).
    private func remove(_ member: [UInt8], from key: String, isList: Bool, job: JSONObject?, place: Place, who: String, now: Double) throws -> Bool {
        let record = JobResultRecord(
            jid: job?["jid"]?.stringValue ?? "", jobClass: job?["class"]?.stringValue ?? "?", queue: job?["queue"]?.stringValue ?? "default",
            status: "cancelled", attempts: job?["retry_count"]?.intValue.map { max(0, Saturating.add($0, 1)) } ?? 0,
            result: nil, errorClass: ErrorClass.jobCancelled.rawValue, errorMessage: "cancelled by \(who) while \(place)",
            correlationKey: job.flatMap { JobResultRecord.correlationKey(of: $0) }, enqueuedAt: job?["enqueued_at"]?.doubleValue,
            startedAt: now, finishedAt: now)
        let journal = keys.outcomes("cancel-" + (job?["jid"]?.stringValue ?? "job"))
        let reply = try connection.command(
            RedisCommand([
                "EVAL", Self.removeScript, "3", key, journal, keys.orphanedOutcomes, member, isList ? "1" : "0",
                "cancel:" + String(Int(now * 1000)), record.copyLine,
            ] as [any RedisArgument])
        ).check()
        guard reply.int == 1 else { return false }
        // Cancelled is its outcome: a unique job gives up its lock.
        if let release = RedisUniqueLocks.releaseCommand(member: member, keys: keys) { _ = try connection.command(release).check() }
        return true
    }

    /// KEYS: the queue or set, a journal, the orphaned-journals set. ARGV: member, is-list, journal field, record.
    static let removeScript = """
        local removed
        if ARGV[2] == '1' then removed = redis.call('LREM', KEYS[1], 1, ARGV[1]) else removed = redis.call('ZREM', KEYS[1], ARGV[1]) end
        if removed == 0 then return 0 end
        redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
        redis.call('SADD', KEYS[3], KEYS[2])
        return 1
        """
}
