public import ConveyorCore
public import SidekiqQueue
import Foundation
public import Redis

/// What Redis holds right now, read in two pipelined round trips: queue depths and latencies, the sorted sets,
/// the stat counters and the live processes. `conveyor stats` prints it; the metrics poller exports it.
public struct QueueSnapshot: Sendable, Equatable {
    public struct Queue: Sendable, Equatable {
        public var name: String
        /// `LLEN queue:<name>`: ready jobs.
        public var depth: Int
        /// Seconds since the oldest ready job was enqueued (0 when empty).
        public var latency: Double
        /// In `QueueKeys.pausedQueues`: workers do not fetch from it.
        public var paused: Bool

        public init(name: String, depth: Int, latency: Double, paused: Bool = false) {
            self.name = name
            self.depth = depth
            self.latency = latency
            self.paused = paused
        }
    }

    public struct Process: Sendable, Equatable {
        public var identity: String
        public var hostname: String?
        public var pid: Int?
        public var busy: Int
        public var concurrency: Int?
        /// Unix seconds of the last heartbeat.
        public var beat: Double?
        public var quiet: Bool
        public var queues: [String]
        public var tag: String? = nil
        /// Resident set size in kilobytes, as the process last reported it.
        public var rss: Int? = nil
        public var startedAt: Double? = nil
    }

    public var queues: [Queue]
    public var scheduled: Int
    public var retries: Int
    public var dead: Int
    public var processed: Int
    public var failed: Int
    public var processes: [Process]
    /// Unix seconds when it was read.
    public var readAt: Double

    public init(
        queues: [Queue], scheduled: Int, retries: Int, dead: Int, processed: Int, failed: Int, processes: [Process], readAt: Double
    ) {
        self.queues = queues
        self.scheduled = scheduled
        self.retries = retries
        self.dead = dead
        self.processed = processed
        self.failed = failed
        self.processes = processes
        self.readAt = readAt
    }

    /// Sums of what processes reported in Redis: saturating, so a corrupt heartbeat cannot overflow them.
    public var busy: Int { processes.reduce(0) { Saturating.add($0, max(0, $1.busy)) } }
    public var concurrency: Int { processes.reduce(0) { Saturating.add($0, max(0, $1.concurrency ?? 0)) } }

    /// At most this many queues are read (and exported as labels), in name order.
    public static let maximumQueues = 200

    public static func read(_ connection: RedisConnection, keys: QueueKeys, now: Double? = nil) throws -> QueueSnapshot {
        let now = now ?? Date().timeIntervalSince1970
        let first = try connection.pipeline([
            RedisCommand("SMEMBERS", keys.queues),
            RedisCommand("ZCARD", keys.schedule),
            RedisCommand("ZCARD", keys.retry),
            RedisCommand("ZCARD", keys.dead),
            RedisCommand("GET", keys.processed),
            RedisCommand("GET", keys.failed),
            RedisCommand("SMEMBERS", keys.processes),
            RedisCommand("SMEMBERS", keys.pausedQueues),
        ])
        for reply in first { try reply.check() }
        let names = (first[0].array ?? []).compactMap(\.text).sorted().prefix(maximumQueues)
        let identities = (first[6].array ?? []).compactMap(\.text).sorted()
        let paused = Set((first[7].array ?? []).compactMap(\.text))
        var commands: [RedisCommand] = []
        for name in names {
            commands.append(RedisCommand("LLEN", keys.queue(name)))
            commands.append(RedisCommand("LINDEX", keys.queue(name), "-1"))
        }
        for identity in identities {
            commands.append(RedisCommand("HMGET", keys.process(identity), "info", "busy", "beat", "quiet", "rss"))
        }
        let second = commands.isEmpty ? [] : try connection.pipeline(commands)
        var queues: [Queue] = []
        for (i, name) in names.enumerated() {
            let depth = try second[2 * i].check().int ?? 0
            var latency = 0.0
            if let oldest = second[2 * i + 1].bytes, let job = try? JSONValue(parsing: oldest),
                let enqueued = Self.timestamp(job["enqueued_at"]) ?? Self.timestamp(job["created_at"])
            {
                latency = max(0, now - enqueued)
            }
            queues.append(Queue(name: name, depth: depth, latency: latency, paused: paused.contains(name)))
        }
        var processes: [Process] = []
        for (j, identity) in identities.enumerated() {
            let fields = second[2 * names.count + j].array ?? []
            // A process whose hash expired is gone (its heartbeat stopped), even if still listed in the set.
            guard fields.count == 5, let infoText = fields[0].text else { continue }
            let info = try? JSONValue(parsing: infoText)
            processes.append(
                Process(
                    identity: identity, hostname: info?["hostname"]?.stringValue, pid: info?["pid"]?.intValue,
                    busy: fields[1].int ?? 0, concurrency: info?["concurrency"]?.intValue,
                    beat: fields[2].text.flatMap { Self.timestamp(.number($0)) }, quiet: fields[3].text == "true",
                    queues: info?["queues"]?.arrayValue?.compactMap(\.stringValue) ?? [], tag: info?["tag"]?.stringValue,
                    rss: fields[4].text.flatMap { Int($0) }, startedAt: Self.timestamp(info?["started_at"])))
        }
        var totals = (1...5).map { first[$0].int ?? 0 }
        if keys.cluster {
            // Each queue keeps its own sets and counters on its shard: the totals are their sums.
            let perQueue = names.filter(QueueKeys.isClusterSafe(queue:)).flatMap { name in
                [
                    RedisCommand("ZCARD", keys.schedule(queue: name)), RedisCommand("ZCARD", keys.retry(queue: name)),
                    RedisCommand("ZCARD", keys.dead(queue: name)), RedisCommand("GET", keys.processed(queue: name)),
                    RedisCommand("GET", keys.failed(queue: name)),
                ]
            }
            let replies = perQueue.isEmpty ? [] : try connection.pipeline(perQueue)
            for (i, reply) in replies.enumerated() { totals[i % 5] = Saturating.add(totals[i % 5], max(0, try reply.check().int ?? 0)) }
        }
        return QueueSnapshot(
            queues: queues, scheduled: totals[0], retries: totals[1], dead: totals[2],
            processed: totals[3], failed: totals[4], processes: processes, readAt: now)
    }

    /// The jobs one process is running now, from its Sidekiq `<identity>:workers` hash (rewritten every heartbeat).
    public static func running(_ connection: RedisConnection, keys: QueueKeys, identity: String) throws -> [RunningJob] {
        let items = try connection.command("HGETALL", keys.workers(identity)).check().array ?? []
        var jobs: [RunningJob] = []
        var i = 0
        while i + 1 < items.count {
            let entry = items[i + 1].bytes.flatMap { try? JSONValue(parsing: $0) }
            let payload = entry?["payload"]?.stringValue.flatMap { try? JSONValue(parsing: Array($0.utf8)) }
            jobs.append(RunningJob(
                thread: items[i].text ?? "", queue: entry?["queue"]?.stringValue ?? "", runAt: timestamp(entry?["run_at"]),
                payload: payload?.objectValue))
            i += 2
        }
        return jobs.sorted { ($0.runAt ?? 0) < ($1.runAt ?? 0) }
    }

    /// Sidekiq timestamps: float seconds (6/7) or integer milliseconds (8); nil for anything that is not a time from
    /// 1970 to 9999 once read (`1e308`, nanoseconds, negatives), so no age computed from one can be infinite.
    public static func timestamp(_ value: JSONValue?) -> Double? {
        guard let v = value?.doubleValue, v.isFinite else { return nil }
        let seconds = v > 100_000_000_000 ? v / 1000 : v
        return (0...253_402_300_799).contains(seconds) ? seconds : nil
    }
}

/// One job a process is running, as its heartbeat last reported it.
public struct RunningJob: Sendable, Equatable {
    public var thread: String
    public var queue: String
    public var runAt: Double?
    public var payload: JSONObject?

    public var jid: String? { payload?["jid"]?.stringValue }
    public var jobClass: String? { payload?["class"]?.stringValue }
}
