public import ConveyorCore
public import SidekiqQueue
import Foundation
import Logging
public import Redis

/// Reads a `QueueSnapshot` from Redis every `interval` seconds on its own thread and connection, and feeds it to
/// the metrics. One per worker process.
public final class QueuePoller: @unchecked Sendable {
    private let endpoint: RedisEndpoint
    private let keys: QueueKeys
    private let metrics: ConveyorMetrics
    private let interval: Double
    private let condition = NSCondition()
    private var stopped = false
    private var last: QueueSnapshot?
    private let logger = Logger(label: "conveyor.metrics")
    private let outage = OutageLog("reading queue metrics from redis")

    public init(endpoint: RedisEndpoint, keys: QueueKeys, metrics: ConveyorMetrics, interval: Double = 5) {
        self.endpoint = endpoint
        self.keys = keys
        self.metrics = metrics
        self.interval = interval
        let thread = Thread { [self] in loop() }
        thread.name = "conveyor-queue-poller"
        thread.start()
    }

    /// The last snapshot read, if any.
    public var snapshot: QueueSnapshot? {
        condition.lock()
        defer { condition.unlock() }
        return last
    }

    public func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    private func loop() {
        var connection: RedisConnection?
        while true {
            do {
                if connection == nil || connection!.isBroken { connection = try RedisConnection(endpoint, connectTimeout: 2, commandTimeout: 5) }
                let s = try QueueSnapshot.read(connection!, keys: keys)
                metrics.update(from: s)
                outage.succeeded(logger: logger)
                condition.lock()
                last = s
                condition.unlock()
            } catch {
                metrics.redisError()
                if connection?.isBroken ?? true { connection = nil }
                outage.failed(error, logger: logger)
            }
            condition.lock()
            if !stopped { _ = condition.wait(until: Date(timeIntervalSinceNow: interval)) }
            let done = stopped
            condition.unlock()
            if done { return }
        }
    }
}
