public import ConveyorCore
public import Foundation
public import Redis
public import ServiceLifecycle

/// Evaluates the schedules in one process. There is no leader: every worker runs one, and `ScheduleStore.claim`
/// makes the push of each tick happen once however many evaluate it.
///
/// At each evaluation the ticks since the last one are due. A tick at most `lateAfter` seconds old is on time and
/// always pushed; older ones were missed (an outage, a stall) and follow the schedule's `catch_up`: `skip` drops
/// them, `latest` pushes the newest of them when no on-time tick is due, `all` pushes each. Only ticks within
/// `catch_up_window` are considered. A process that starts picks up from the schedule's last claimed tick in Redis
/// (a schedule never run starts now).
public final class Scheduler: @unchecked Sendable {
    public let schedules: [Schedule]
    public let store: ScheduleStore
    /// Key of a queue's ready list, and of the queues set (Sidekiq's layout, with the deployment's namespace).
    public let queueKey: @Sendable (String) -> String
    public let queuesKey: String
    public let lateAfter: Int64
    /// Per schedule, the last instant evaluated.
    private var evaluatedThrough: [String: Int64] = [:]
    private let redis: RedisConnection
    /// Called for every job this process pushed: schedule, tick, lateness in seconds.
    public var onPush: (@Sendable (Schedule, Int64, Double) -> Void)?
    /// Due and claimed ticks and lateness, for `/metrics`.
    public var metrics: ScheduleMetrics?

    public init(
        schedules: [Schedule], store: ScheduleStore, redis: RedisConnection, queueKey: @escaping @Sendable (String) -> String,
        queuesKey: String, lateAfter: Int64 = 10
    ) {
        self.schedules = schedules
        self.store = store
        self.redis = redis
        self.queueKey = queueKey
        self.queuesKey = queuesKey
        self.lateAfter = lateAfter
    }

    /// One pushed job.
    public struct Pushed: Sendable, Equatable {
        public let name: String
        public let tick: Int64
        public let jid: String
    }

    /// Evaluates every schedule at `now` (epoch seconds, fractional) and returns what this call pushed.
    @discardableResult
    public func evaluate(now: Double) throws(RedisError) -> [Pushed] {
        let second = Int64(now.rounded(.down))
        var pushed: [Pushed] = []
        for schedule in schedules {
            let from: Int64
            if let seen = evaluatedThrough[schedule.name] {
                from = seen
            } else {
                from = try store.lastTick(schedule.name, on: redis) ?? (second - 1)
            }
            let earliest = second - schedule.catchUpWindow - 1
            let due = schedule.cron.firings(after: max(from, earliest), through: second, limit: Schedule.maximumReplay)
            evaluatedThrough[schedule.name] = max(from, second)
            let onTime = due.filter { second - $0 <= lateAfter }
            let late = due.filter { second - $0 > lateAfter }
            var ticks: [Int64]
            switch schedule.catchUp {
            case .skip: ticks = onTime
            case .latest: ticks = onTime.isEmpty ? Array(late.suffix(1)) : onTime
            case .all: ticks = late + onTime
            }
            if let newest = due.last { metrics?.record(name: schedule.name, due: newest) }
            for tick in ticks {
                let claim = try store.claim(schedule, tick: tick, now: now, queueKey: queueKey(schedule.queue), queuesKey: queuesKey, on: redis)
                switch claim {
                case .pushed(let jid):
                    pushed.append(Pushed(name: schedule.name, tick: tick, jid: jid))
                    metrics?.record(name: schedule.name, claimed: tick, lateness: now - Double(tick))
                    onPush?(schedule, tick, now - Double(tick))
                case .alreadyClaimed:
                    metrics?.record(name: schedule.name, claimed: tick, lateness: nil)
                case .disabled:
                    metrics?.disabled(name: schedule.name)
                }
            }
        }
        return pushed
    }

    /// Seconds until the next tick of any schedule after `now`, at most `cap`.
    public func sleepInterval(now: Double, cap: Double = 1) -> Double {
        let second = Int64(now.rounded(.down))
        let next = schedules.compactMap { $0.cron.next(after: second) }.min()
        guard let next else { return cap }
        return min(cap, max(0.01, Double(next) - now))
    }

    /// Runs until the task is cancelled: evaluates at each tick (and at least every second), on the caller's clock.
    /// Redis failures are reported to `onError` and retried at the next evaluation with a fresh connection.
    public static func run(
        schedules: [Schedule], store: ScheduleStore, connect: @escaping @Sendable () throws -> RedisConnection,
        queueKey: @escaping @Sendable (String) -> String, queuesKey: String, onPush: (@Sendable (Schedule, Int64, Double) -> Void)?,
        metrics: ScheduleMetrics? = nil, onError: @escaping @Sendable (any Error) -> Void
    ) async {
        guard !schedules.isEmpty else { return }
        var scheduler: Scheduler?
        while !Task.isCancelled {
            let now = Date().timeIntervalSince1970
            do {
                if scheduler == nil {
                    let s = Scheduler(schedules: schedules, store: store, redis: try connect(), queueKey: queueKey, queuesKey: queuesKey)
                    s.onPush = onPush
                    s.metrics = metrics
                    scheduler = s
                }
                try scheduler?.evaluate(now: now)
            } catch {
                onError(error)
                scheduler = nil
            }
            let wait = scheduler?.sleepInterval(now: Date().timeIntervalSince1970) ?? 1
            try? await Task.sleep(nanoseconds: UInt64(wait * 1e9))
        }
    }
}

/// The scheduler as a service of the worker's group: evaluates until the group shuts down.
public struct SchedulerService: Service {
    let body: @Sendable () async -> Void

    public init(
        schedules: [Schedule], store: ScheduleStore, connect: @escaping @Sendable () throws -> RedisConnection,
        queueKey: @escaping @Sendable (String) -> String, queuesKey: String, onPush: (@Sendable (Schedule, Int64, Double) -> Void)?,
        metrics: ScheduleMetrics? = nil, onError: @escaping @Sendable (any Error) -> Void
    ) {
        body = {
            await Scheduler.run(
                schedules: schedules, store: store, connect: connect, queueKey: queueKey, queuesKey: queuesKey, onPush: onPush, metrics: metrics,
                onError: onError)
        }
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown { await body() }
    }
}
