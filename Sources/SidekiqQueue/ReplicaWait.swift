public import ConveyorCore
public import Redis

/// `CONVEYOR_REDIS_WAIT_REPLICAS`: how many replicas must have a write before Conveyor goes on. Redis replicates
/// asynchronously: a write the master acknowledged and never passed on is gone after a failover. With a wait, each
/// batch of acknowledgements and each enqueue is followed by `WAIT replicas timeout` in the same round trip, so a
/// failover can only lose what the wait had not yet confirmed. A wait that times out is not an error (the write is
/// on the master); the count it reached is reported.
public struct ReplicaWait: Sendable, Equatable {
    public var replicas: Int
    /// Milliseconds `WAIT` may block.
    public var timeoutMilliseconds: Int

    public static let none = ReplicaWait(replicas: 0, timeoutMilliseconds: 0)

    public init(replicas: Int, timeoutMilliseconds: Int = 1000) {
        self.replicas = replicas
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    /// `CONVEYOR_REDIS_WAIT_REPLICAS` (0-16, default 0) and `CONVEYOR_REDIS_WAIT_TIMEOUT_MS` (1-60000, default 1000).
    public init(environment: [String: String]) throws(JobFailure) {
        self.init(
            replicas: try EnvironmentNumber.int("CONVEYOR_REDIS_WAIT_REPLICAS", in: environment, default: 0, range: 0...16),
            timeoutMilliseconds: try EnvironmentNumber.int("CONVEYOR_REDIS_WAIT_TIMEOUT_MS", in: environment, default: 1000, range: 1...60_000))
    }

    /// The commands to append to a write's pipeline: none, or one `WAIT`.
    public var commands: [RedisCommand] {
        replicas > 0 ? [RedisCommand("WAIT", replicas, timeoutMilliseconds)] : []
    }
}
