public import ConveyorCore
import Digest
public import Foundation
public import Redis

/// The schedules in Redis, in sidekiq-cron's layout so Sidekiq Web's Cron tab and `Sidekiq::Cron::Job.all` list them:
/// `cron_jobs` (SET of `cron_job:<name>`), `cron_job:<name>` (HASH: name, klass, cron, args, message, status,
/// last_enqueue_time, ...), `cron_job:<name>:enqueued` (ZSET of claimed ticks: member the tick's ISO-8601 UTC time, as
/// sidekiq-cron writes it, score the tick) and `cron_job:<name>:jid_history` (LIST of the last 10 enqueues).
/// Conveyor adds `conveyor_file` and `catch_up` fields to the hash; sidekiq-cron ignores them.
public struct ScheduleStore: Sendable {
    /// Key prefix (a namespace with its colon, or empty), as the queue keys use.
    public let prefix: String

    public init(prefix: String = "") { self.prefix = prefix }

    public var jobsKey: String { prefix + "cron_jobs" }
    public func jobKey(_ name: String) -> String { prefix + "cron_job:" + name }
    public func enqueuedKey(_ name: String) -> String { prefix + "cron_job:" + name + ":enqueued" }
    public func historyKey(_ name: String) -> String { prefix + "cron_job:" + name + ":jid_history" }

    /// The jid of a schedule's tick: the first 12 bytes of SHA-256("<name>\n<tick>") as hex, so every process
    /// derives the same one.
    public static func jid(name: String, tick: Int64) -> String {
        SHA256Digest.hash(Array("\(name)\n\(tick)".utf8)).prefix(12).map { String(format: "%02x", $0) }.joined()
    }

    /// sidekiq-cron's member for a tick: `Time#iso8601` in UTC.
    public static func iso(_ tick: Int64) -> String {
        let days = CronExpression.floorDiv(tick, 86400)
        let rest = tick - days * 86400
        let (y, m, d) = CronExpression.civil(fromDays: days)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d, Int(rest / 3600), Int(rest % 3600 / 60), Int(rest % 60))
    }

    /// sidekiq-cron's `last_enqueue_time` format, `%Y-%m-%d %H:%M:%S %z`, in UTC.
    public static func enqueueTime(_ instant: Int64) -> String {
        let s = iso(instant)
        return String(s.prefix(10)) + " " + String(s.dropFirst(11).prefix(8)) + " +0000"
    }

    /// The Sidekiq payload of a tick.
    public static func payload(_ schedule: Schedule, tick: Int64, now: Double) -> JSONValue {
        let at = JSONValue(now)
        return .object(
            JSONObject([
                ("class", .string(schedule.className)), ("queue", .string(schedule.queue)), ("args", .array(schedule.args)),
                ("jid", .string(jid(name: schedule.name, tick: tick))), ("retry", .bool(true)), ("created_at", at), ("enqueued_at", at),
                ("cron", .object(JSONObject([("name", .string(schedule.name)), ("tick", JSONValue(Int(tick)))]))),
            ]))
    }

    /// Writes the file's schedules and removes those the file no longer has (the file is the truth); a schedule's
    /// status (enabled/disabled) and run history survive a restart.
    public func sync(_ schedules: [Schedule], on redis: RedisConnection) throws(RedisError) {
        let existing = (try redis.command("SMEMBERS", jobsKey).check().array ?? []).compactMap(\.text)
        let wanted = Set(schedules.map { jobKey($0.name) })
        var commands: [RedisCommand] = []
        for key in existing where !wanted.contains(key) {
            let name = String(key.dropFirst(jobKey("").count))
            commands.append(RedisCommand("SREM", jobsKey, key))
            commands.append(RedisCommand("DEL", key, enqueuedKey(name), historyKey(name)))
        }
        for s in schedules {
            let key = jobKey(s.name)
            commands.append(RedisCommand("SADD", jobsKey, key))
            commands.append(
                RedisCommand([
                    "HSET", key, "name", s.name, "klass", s.className, "cron", s.cron.source, "description", "", "args",
                    JSONValue.array(s.args).text, "message", Self.message(s).text, "active_job", "false", "date_as_argument", "false",
                    "symbolize_args", "false", "queue_name_prefix", "", "queue_name_delimiter", "", "catch_up", s.catchUp.rawValue,
                    "catch_up_window", String(s.catchUpWindow), "conveyor_file", s.origin,
                ] as [any RedisArgument]))
            commands.append(RedisCommand("HSETNX", key, "status", "enabled"))
            commands.append(RedisCommand("HSETNX", key, "last_enqueue_time", ""))
        }
        for reply in try redis.pipeline(commands) { try reply.check() }
    }

    /// sidekiq-cron's `message` field: the job it pushes, without jid and times.
    static func message(_ s: Schedule) -> JSONValue {
        .object(JSONObject([("queue", .string(s.queue)), ("class", .string(s.className)), ("args", .array(s.args)), ("retry", .bool(true))]))
    }

    /// What `claim` did.
    public enum Claim: Sendable, Equatable {
        /// This call pushed the tick's job.
        case pushed(jid: String)
        /// Another process (or an earlier call) already had.
        case alreadyClaimed
        /// The schedule is disabled (or no longer in Redis): nothing pushed.
        case disabled
    }

    /// Claims `tick` and pushes its job in one script: ZADD NX of the tick into the schedule's `enqueued` set, and
    /// only when it was added, the push onto `queueKey`, `last_enqueue_time`, the jid history, and trimming claims
    /// older than the window plus a day. Any number of processes calling this for one tick push one job.
    public func claim(
        _ schedule: Schedule, tick: Int64, now: Double, queueKey: String, queuesKey: String, on redis: RedisConnection,
        force: Bool = false
    ) throws(RedisError) -> Claim {
        let jid = Self.jid(name: schedule.name, tick: tick)
        let keepFrom = tick - max(schedule.catchUpWindow, 86400) - 86400
        let reply = try redis.command(
            RedisCommand([
                "EVAL", Self.claimScript, "5", enqueuedKey(schedule.name), jobKey(schedule.name), historyKey(schedule.name), queueKey,
                queuesKey, String(tick), Self.iso(tick), Self.payload(schedule, tick: tick, now: now).text, schedule.queue,
                Self.enqueueTime(tick), jid, String(keepFrom), force ? "1" : "0",
            ] as [any RedisArgument])
        ).check()
        switch reply.int {
        case 1: return .pushed(jid: jid)
        case -1: return .disabled
        default: return .alreadyClaimed
        }
    }

    /// KEYS: enqueued, job hash, jid history, queue list, queues set. ARGV: tick, tick member, payload, queue name,
    /// last_enqueue_time, jid, oldest score kept, force (run now: skip the status check).
    static let claimScript = """
        if ARGV[8] ~= '1' then
          local status = redis.call('HGET', KEYS[2], 'status')
          if status ~= 'enabled' then return -1 end
        end
        if redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[2]) == 0 then return 0 end
        redis.call('SADD', KEYS[5], ARGV[4])
        redis.call('LPUSH', KEYS[4], ARGV[3])
        local last = redis.call('HGET', KEYS[2], 'last_enqueue_time')
        if not last or last < ARGV[5] then redis.call('HSET', KEYS[2], 'last_enqueue_time', ARGV[5]) end
        redis.call('HSET', KEYS[2], 'conveyor_last_jid', ARGV[6], 'conveyor_last_tick', ARGV[1])
        redis.call('LPUSH', KEYS[3], cjson.encode({jid = ARGV[6], enqueued = ARGV[5]}))
        redis.call('LTRIM', KEYS[3], 0, 9)
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[7])
        return 1
        """

    /// The highest tick claimed so far, or nil.
    public func lastTick(_ name: String, on redis: RedisConnection) throws(RedisError) -> Int64? {
        let reply = try redis.command("ZRANGE", enqueuedKey(name), "-1", "-1", "WITHSCORES").check()
        guard let items = reply.array, items.count == 2, let text = items[1].text, let score = Double(text) else { return nil }
        return Int64(exactly: score.rounded(.down))
    }

    /// Sets `status` (sidekiq-cron's `enabled` / `disabled`); false when no such schedule is in Redis.
    public func setEnabled(_ name: String, _ enabled: Bool, on redis: RedisConnection) throws(RedisError) -> Bool {
        let reply = try redis.command(
            "EVAL", "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end redis.call('HSET', KEYS[1], 'status', ARGV[1]) return 1", "1",
            jobKey(name), enabled ? "enabled" : "disabled"
        ).check()
        return reply.int == 1
    }

    /// The names of the schedules in Redis, sorted.
    public func names(on redis: RedisConnection) throws(RedisError) -> [String] {
        let prefix = jobKey("")
        return (try redis.command("SMEMBERS", jobsKey).check().array ?? []).compactMap(\.text)
            .filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }.sorted()
    }

    /// The schedule in Redis named `name`, rebuilt from its hash; nil when absent or unreadable.
    public func schedule(_ name: String, on redis: RedisConnection) throws(RedisError) -> Schedule? {
        Self.schedule(name, from: try info(name, on: redis))
    }

    /// A schedule rebuilt from its hash as `info` returns it; nil when a field it needs is missing or unreadable.
    public static func schedule(_ name: String, from h: [String: String]) -> Schedule? {
        guard let line = h["cron"], let cron = try? CronExpression(line), let klass = h["klass"], !klass.isEmpty else { return nil }
        let message = (try? JSONValue(parsing: h["message"] ?? "{}")) ?? .null
        let args = (try? JSONValue(parsing: h["args"] ?? "[]"))?.arrayValue ?? []
        return Schedule(
            name: name, cron: cron, className: klass, queue: message["queue"]?.stringValue ?? "default", args: args,
            catchUp: Schedule.CatchUp(rawValue: h["catch_up"] ?? "") ?? .latest)
    }

    /// One schedule's hash, as written (empty when absent).
    public func info(_ name: String, on redis: RedisConnection) throws(RedisError) -> [String: String] {
        let items = try redis.command("HGETALL", jobKey(name)).check().array ?? []
        var out: [String: String] = [:]
        var i = 0
        while i + 1 < items.count {
            if let k = items[i].text, let v = items[i + 1].text { out[k] = v }
            i += 2
        }
        return out
    }
}
