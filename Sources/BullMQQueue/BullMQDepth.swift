public import ConveyorCore
import Foundation
public import Logging
public import Redis
public import ServiceLifecycle
import Synchronization

/// The BullMQ queues' sizes for `/metrics`, read every `interval` seconds on a connection of its own: what queue-depth
/// autoscaling (KEDA's Prometheus scaler) and alerts need, as the Sidekiq queues' `conveyor_queue_depth` is for those.
///
/// - `conveyor_bullmq_queue_jobs{queue,state}`: `waiting` (the wait list), `prioritized`, `delayed` (all of the
///   delayed set), `delayed_due` (delayed jobs whose time has come: BullMQ scores them `ms * 0x1000 + counter`),
///   `active`, `paused`, `completed` and `failed` (the finished jobs BullMQ keeps);
/// - `conveyor_bullmq_queue_depth{queue}`: waiting + prioritized + delayed_due + paused, the jobs ready to run.
public final class BullMQDepth: Service {
    public struct Counts: Sendable, Equatable {
        public var waiting = 0
        public var prioritized = 0
        public var delayed = 0
        public var delayedDue = 0
        public var active = 0
        public var paused = 0
        /// Kept finished jobs (what `removeOnComplete`/`removeOnFail` leave), and the stalled check's candidates.
        public var completed = 0
        public var failed = 0
        public var stalled = 0

        public init(
            waiting: Int = 0, prioritized: Int = 0, delayed: Int = 0, delayedDue: Int = 0, active: Int = 0, paused: Int = 0, completed: Int = 0,
            failed: Int = 0, stalled: Int = 0
        ) {
            self.waiting = waiting
            self.prioritized = prioritized
            self.delayed = delayed
            self.delayedDue = delayedDue
            self.active = active
            self.paused = paused
            self.completed = completed
            self.failed = failed
            self.stalled = stalled
        }

        /// The jobs ready to run.
        public var depth: Int {
            Saturating.add(Saturating.add(waiting, prioritized), Saturating.add(delayedDue, paused))
        }
    }

    private let endpoint: RedisEndpoint
    private let queues: [String: BullMQKeys]
    private let interval: Double
    private let counts = Mutex<[String: Counts]>([:])
    private let logger: Logger
    private let outage = OutageLog("reading BullMQ queue sizes")

    public init(endpoint: RedisEndpoint, queues: [String: BullMQKeys], interval: Double = 5, logger: Logger = Logger(label: "conveyor.bullmq")) {
        self.endpoint = endpoint
        self.queues = queues
        self.interval = min(3600, max(0.05, interval.isFinite ? interval : 5))
        self.logger = logger
    }

    /// The last read counts, by queue.
    public var last: [String: Counts] { counts.withLock { $0 } }

    public func run() async throws {
        let redis = RedisThread(endpoint, name: "conveyor-bullmq-depth", commandTimeout: 5)
        defer { redis.stop() }
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await read(on: redis)
                outage.succeeded(logger: logger)
            } catch {
                outage.failed(error, logger: logger)
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(self.interval)) }
        }
    }

    /// One read of every queue's sizes, in one pipeline.
    public func read(on redis: RedisThread) async throws {
        let queues = queues
        let read = try await redis.run { connection in try Self.counts(of: queues, on: connection) }
        counts.withLock { $0 = read }
    }

    /// Every queue's sizes, in one pipeline (also what `conveyor bullmq stats` shows).
    public static func counts(of queues: [String: BullMQKeys], on connection: RedisConnection, now: Double = JobTime.now()) throws -> [String: Counts] {
        let names = queues.keys.sorted()
        // Due: scored at most now's millisecond * 0x1000 + 0xfff.
        let due = String(Saturating.int((now * 1000).rounded(.down)).multipliedReportingOverflow(by: 0x1000).partialValue + 0xfff)
        let perQueue = 9
        let commands = names.flatMap { name -> [RedisCommand] in
            let k = queues[name]!
            return [
                RedisCommand("LLEN", k.wait), RedisCommand("ZCARD", k.prioritized), RedisCommand("ZCARD", k.delayed),
                RedisCommand("ZCOUNT", k.delayed, "-inf", due), RedisCommand("LLEN", k.active), RedisCommand("LLEN", k.paused),
                RedisCommand("ZCARD", k.key("completed")), RedisCommand("ZCARD", k.key("failed")), RedisCommand("SCARD", k.stalled),
            ]
        }
        let replies = try connection.pipeline(commands)
        var read: [String: Counts] = [:]
        for (i, name) in names.enumerated() {
            let r = replies[(i * perQueue)..<(i * perQueue + perQueue)].map { max(0, (try? $0.check().int) ?? 0) }
            read[name] = Counts(
                waiting: r[0], prioritized: r[1], delayed: r[2], delayedDue: r[3], active: r[4], paused: r[5], completed: r[6], failed: r[7],
                stalled: r[8])
        }
        return read
    }

    /// The gauges in Prometheus text.
    public func render() -> String {
        let all = last
        guard !all.isEmpty else { return "" }
        var out = "# HELP conveyor_bullmq_queue_jobs Jobs of each BullMQ queue by state, read every few seconds.\n"
        out += "# TYPE conveyor_bullmq_queue_jobs gauge\n"
        for (queue, c) in all.sorted(by: { $0.key < $1.key }) {
            for (state, n) in [("waiting", c.waiting), ("prioritized", c.prioritized), ("delayed", c.delayed), ("delayed_due", c.delayedDue),
                               ("active", c.active), ("paused", c.paused), ("completed", c.completed), ("failed", c.failed)] {
                out += "conveyor_bullmq_queue_jobs{queue=\"\(Self.label(queue))\",state=\"\(state)\"} \(n)\n"
            }
        }
        out += "# HELP conveyor_bullmq_queue_depth Jobs of each BullMQ queue ready to run (waiting, prioritized, due delayed, paused).\n"
        out += "# TYPE conveyor_bullmq_queue_depth gauge\n"
        for (queue, c) in all.sorted(by: { $0.key < $1.key }) {
            out += "conveyor_bullmq_queue_depth{queue=\"\(Self.label(queue))\"} \(c.depth)\n"
        }
        return out
    }

    /// A label value in Prometheus text: backslash, quote and line feed escaped.
    static func label(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}
