public import ConveyorCore
public import SidekiqQueue
import Foundation
import Logging
public import Redis
public import ServiceLifecycle
import Synchronization

/// Reads a `QueueSnapshot` from Redis every `interval` seconds on its own connection and feeds it to the metrics,
/// until its service group shuts down. One per worker process.
public final class QueuePoller: Service {
    private let endpoint: RedisEndpoint
    private let keys: QueueKeys
    private let metrics: ConveyorMetrics
    private let interval: Double
    private let last = Mutex<QueueSnapshot?>(nil)
    private let logger = Logger(label: "conveyor.metrics")
    private let outage = OutageLog("reading queue metrics from redis")

    public init(endpoint: RedisEndpoint, keys: QueueKeys, metrics: ConveyorMetrics, interval: Double = 5) {
        self.endpoint = endpoint
        self.keys = keys
        self.metrics = metrics
        self.interval = interval
    }

    /// The last snapshot read, if any.
    public var snapshot: QueueSnapshot? { last.withLock { $0 } }

    /// Polls until graceful shutdown or cancellation.
    public func run() async throws {
        let redis = RedisThread(endpoint, name: "conveyor-queue-poller", commandTimeout: 5)
        defer { redis.stop() }
        let keys = keys
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let s = try await redis.run { connection in try QueueSnapshot.read(connection, keys: keys) }
                metrics.update(from: s)
                outage.succeeded(logger: logger)
                last.withLock { $0 = s }
            } catch {
                metrics.redisError()
                outage.failed(error, logger: logger)
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(self.interval)) }
        }
    }
}
