public import ConveyorCore
import Foundation
public import Redis

/// What an operator sees of one BullMQ queue beyond its counts, and the one thing done to it: failed jobs listed
/// newest first and retried, active jobs with their locks (an active job without a lock is stalled: the next stalled
/// check moves it back to wait, or fails it past `maxStalledCount`). Every read is bounded; a retry is BullMQ's own
/// `reprocessJob` script, what `Job.retry('failed')` and bull-board run, so a job can only leave the failed set once.
public struct BullMQInspection: Sendable {
    public let keys: BullMQKeys

    /// The most jobs one read lists, and the most one `retryAll` retries.
    public static let maximumListed = 1000
    public static let maximumRetriedAtOnce = 100_000
    /// The longest job id accepted from an operator.
    public static let maximumIDBytes = 256

    public init(prefix: String, queue: String) {
        keys = BullMQKeys(prefix: prefix, queue: queue)
    }

    public struct FailedJob: Sendable, Equatable {
        public var id: String
        public var name: String
        public var failedReason: String
        public var attemptsMade: Int
        public var attempts: Int?
        /// Seconds since the epoch.
        public var finishedAt: Double?
        /// The job's `data`, cut to 300 bytes.
        public var data: String
    }

    public struct ActiveJob: Sendable, Equatable {
        public var id: String
        public var name: String
        public var startedAt: Double?
        public var lock: Lock
        /// The worker that took it (`pb`), when it says.
        public var worker: String
    }

    /// An active job's lock: held for so many more milliseconds, held without expiry, or gone (the job is stalled).
    public enum Lock: Sendable, Equatable {
        case expiresIn(milliseconds: Int)
        case noExpiry
        case none

        public var isStalled: Bool { self == .none }
    }

    public enum RetryResult: Sendable, Equatable {
        case retried
        /// No such job.
        case missing
        /// The job exists but is not failed (already retried, or never failed).
        case notFailed
        case refused(Int)
    }

    /// An id from an operator: 1 to 256 bytes, no `:` (BullMQ refuses custom ids with one), no control characters.
    public static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= maximumIDBytes && !id.contains(":") && !Job.containsControlCharacters(id)
    }

    /// Failed jobs, newest first (the failed set is scored by finish time), `count` from `offset`; and how many there are.
    public func failed(offset: Int, count: Int, on connection: RedisConnection) throws(RedisError) -> (total: Int, jobs: [FailedJob]) {
        let count = min(max(1, count), Self.maximumListed)
        let offset = min(max(0, offset), 1_000_000_000)
        let head = try connection.pipeline([
            RedisCommand("ZCARD", keys.failed), RedisCommand("ZREVRANGE", keys.failed, offset, offset + count - 1),
        ])
        let total = max(0, try head[0].check().int ?? 0)
        let ids = (try head[1].check().array ?? []).compactMap(\.text)
        guard !ids.isEmpty else { return (total, []) }
        let fields = ["name", "failedReason", "atm", "finishedOn", "data", "opts"]
        let replies = try connection.pipeline(ids.map { RedisCommand(["HMGET", keys.job($0)] + fields.map { $0 as any RedisArgument }) })
        var jobs: [FailedJob] = []
        for (id, reply) in zip(ids, replies) {
            let v = (try? reply.check().array)?.map(\.text) ?? []
            func field(_ i: Int) -> String? { i < v.count ? v[i] : nil }
            let options = field(5).flatMap { try? JSONValue(parsing: Array($0.utf8)) }
            jobs.append(FailedJob(
                id: id, name: Self.cut(field(0) ?? "", 200), failedReason: Self.cut(field(1) ?? "", 1000),
                attemptsMade: max(0, field(2).flatMap { Int($0) } ?? 0), attempts: options?["attempts"]?.intValue.map { max(0, $0) },
                finishedAt: Self.seconds(field(3)), data: Self.cut(field(4) ?? "", 300)))
        }
        return (total, jobs)
    }

    /// Active jobs (the first `limit` of the active list, the oldest taken last) with their locks; and how many there are.
    public func active(limit: Int, on connection: RedisConnection) throws(RedisError) -> (total: Int, jobs: [ActiveJob]) {
        let limit = min(max(1, limit), Self.maximumListed)
        let head = try connection.pipeline([RedisCommand("LLEN", keys.active), RedisCommand("LRANGE", keys.active, 0, limit - 1)])
        let total = max(0, try head[0].check().int ?? 0)
        let ids = (try head[1].check().array ?? []).compactMap(\.text)
        guard !ids.isEmpty else { return (total, []) }
        let replies = try connection.pipeline(ids.flatMap { id in
            [RedisCommand("HMGET", keys.job(id), "name", "processedOn", "pb"), RedisCommand("PTTL", keys.job(id) + ":lock")]
        })
        var jobs: [ActiveJob] = []
        for (i, id) in ids.enumerated() {
            let v = (try? replies[2 * i].check().array)?.map(\.text) ?? []
            let ttl = (try? replies[2 * i + 1].check().int) ?? -2
            jobs.append(ActiveJob(
                id: id, name: Self.cut((v.first ?? nil) ?? "", 200), startedAt: Self.seconds(v.count > 1 ? v[1] : nil),
                lock: ttl >= 0 ? .expiresIn(milliseconds: ttl) : (ttl == -1 ? .noExpiry : .none), worker: Self.cut((v.count > 2 ? v[2] : nil) ?? "", 200)))
        }
        return (total, jobs)
    }

    /// Moves failed jobs back to wait with BullMQ's `reprocessJob` (LIFO jobs to the front, as BullMQ does), each
    /// keeping its attempts made unless `resetAttempts`. Ids are checked by the caller (`isValidID`).
    public func retry(
        _ ids: [String], resetAttempts: Bool, scripts: BullMQScripts, on connection: RedisConnection
    ) throws(RedisError) -> [(id: String, result: RetryResult)] {
        var results: [(id: String, result: RetryResult)] = []
        var start = 0
        while start < ids.count {
            let chunk = Array(ids[start..<min(ids.count, start + 500)])
            start += chunk.count
            let options = try connection.pipeline(chunk.map { RedisCommand("HGET", keys.job($0), "opts") })
            let commands = zip(chunk, options).map { id, reply -> RedisCommand in
                let lifo = reply.text.flatMap { try? JSONValue(parsing: Array($0.utf8)) }?["lifo"]?.boolValue == true
                return scripts.command(
                    .reprocessJob,
                    keys: [keys.job(id), keys.events, keys.failed, keys.wait, keys.meta, keys.active, keys.marker, keys.prioritized, keys.pc],
                    arguments: [id, lifo ? "RPUSH" : "LPUSH", "failedReason", "failed", resetAttempts ? "1" : "0", resetAttempts ? "1" : "0"])
            }
            for (id, reply) in zip(chunk, try scripts.pipeline(commands, on: connection)) {
                let code = try reply.check().int ?? 0
                let result: RetryResult =
                    switch code {
                    case 1: .retried
                    case -1: .missing
                    case -3: .notFailed
                    default: .refused(code)
                    }
                results.append((id, result))
            }
        }
        return results
    }

    /// Retries every failed job, oldest first, up to `maximumRetriedAtOnce`; how many were retried.
    public func retryAll(resetAttempts: Bool, scripts: BullMQScripts, on connection: RedisConnection) throws(RedisError) -> Int {
        var retried = 0
        while retried < Self.maximumRetriedAtOnce {
            let batch = min(500, Self.maximumRetriedAtOnce - retried)
            let ids = (try connection.command("ZRANGE", keys.failed, 0, batch - 1).check().array ?? []).compactMap(\.text)
            if ids.isEmpty { break }
            let done = try retry(ids, resetAttempts: resetAttempts, scripts: scripts, on: connection).filter { $0.result == .retried }.count
            retried += done
            // Nothing moved (each one refused): another pass would read the same ids.
            if done == 0 { break }
        }
        return retried
    }

    static func cut(_ text: String, _ limit: Int) -> String {
        text.utf8.count <= limit ? text : String(decoding: Array(text.utf8.prefix(limit)), as: UTF8.self) + "…"
    }

    /// BullMQ's millisecond timestamps as seconds; nil when missing or not a plausible time.
    static func seconds(_ text: String?) -> Double? {
        guard let text, let ms = Int64(text), ms > 0, ms < 253_402_300_799_000 else { return nil }
        return Double(ms) / 1000
    }
}
