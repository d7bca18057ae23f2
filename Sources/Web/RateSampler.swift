import ConveyorCore
import Foundation
import Logging
public import Redis
public import ServiceLifecycle
public import SidekiqQueue
import Synchronization

/// Samples Sidekiq's `stat:processed` / `stat:failed` totals every few seconds (two `GET`s in one round trip) and
/// keeps an hour of them, so the overview can draw processed and failed jobs per minute live. Redis keeps only
/// per-day counters; the minutes are this process's own observation, starting when it starts.
public final class RateSampler: Service, Sendable {
    public struct Sample: Sendable, Equatable {
        public var at: Double
        public var processed: Int
        public var failed: Int
    }

    private let redis: RedisThread
    private let keys: QueueKeys
    private let interval: Double
    private let samples = Mutex<[Sample]>([])
    private let logger = Logger(label: "conveyor.web")
    private let outage = OutageLog("sampling job counters for the dashboard")

    public init(redis: RedisThread, keys: QueueKeys, interval: Double = 5) {
        self.redis = redis
        self.keys = keys
        self.interval = interval
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await sample()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(Int(self.interval * 1000))) }
        }
    }

    /// Takes one sample now.
    public func sample() async {
        let keys = keys
        do {
            let replies = try await redis.run { connection in
                try connection.pipeline([RedisCommand("GET", keys.processed), RedisCommand("GET", keys.failed)])
            }
            let s = Sample(
                at: Date().timeIntervalSince1970, processed: replies[0].text.flatMap { Int($0) } ?? 0,
                failed: replies[1].text.flatMap { Int($0) } ?? 0)
            samples.withLock { all in
                all.append(s)
                let cutoff = s.at - 3700
                if let first = all.firstIndex(where: { $0.at >= cutoff }), first > 0 { all.removeFirst(first) }
            }
            outage.succeeded(logger: logger)
        } catch {
            outage.failed(error, logger: logger)
        }
    }

    /// Processed and failed per minute for the last `minutes` minutes, oldest first; nil where no two samples
    /// span that minute (before this process started).
    public func perMinute(minutes: Int = 60, now: Double? = nil) -> [(minute: Double, processed: Int?, failed: Int?)] {
        let all = samples.withLock { $0 }
        let now = now ?? Date().timeIntervalSince1970
        let end = (now / 60).rounded(.down) * 60 + 60
        return (0..<minutes).reversed().map { back in
            let from = end - Double(back + 1) * 60
            let to = from + 60
            // The last sample at or before each edge, or the first after the start edge if the sampler began mid-minute.
            let before = all.last { $0.at <= from } ?? all.first { $0.at > from && $0.at < to }
            let after = all.last { $0.at <= to }
            guard let a = before, let b = after, b.at > a.at else { return (from, nil, nil) }
            return (from, Self.delta(b.processed, a.processed), Self.delta(b.failed, a.failed))
        }
    }

    /// Jobs per second over the last two samples.
    public var currentRate: (processed: Double, failed: Double)? {
        let all = samples.withLock { $0 }
        guard all.count >= 2 else { return nil }
        let a = all[all.count - 2]
        let b = all[all.count - 1]
        let dt = b.at - a.at
        guard dt > 0 else { return nil }
        return (Double(Self.delta(b.processed, a.processed)) / dt, Double(Self.delta(b.failed, a.failed)) / dt)
    }

    /// `later - earlier` for two readings of a Redis counter anyone can overwrite: never negative, saturating.
    static func delta(_ later: Int, _ earlier: Int) -> Int {
        let (d, overflow) = later.subtractingReportingOverflow(earlier)
        return overflow ? (later > earlier ? Int.max : 0) : max(0, d)
    }
}
