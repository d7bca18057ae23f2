import Foundation

/// How a worker process runs.
public struct WorkerConfiguration: Sendable {
    public var queues: QueueSelection
    /// Jobs running at once in this process.
    public var concurrency: Int
    /// On SIGTERM, how long running jobs may take before they are pushed back to their queues.
    public var shutdownTimeout: Duration
    /// How often this process proves it is alive.
    public var heartbeatInterval: Duration
    /// Seconds without a heartbeat after which another process reaps this one's in-flight jobs.
    public var heartbeatTTL: Int
    /// How often due jobs move from `schedule` and `retry` to their queues.
    public var pollInterval: Duration
    /// Seconds an idle fetch waits in the backend before checking for shutdown.
    public var blockTimeout: Double
    /// This process's name in `processes`, unique per process: `host:pid:hex`.
    public var identity: String
    /// Shown in Sidekiq's process list.
    public var tag: String

    public init(
        queues: QueueSelection, concurrency: Int = 10, shutdownTimeout: Duration = .seconds(25),
        heartbeatInterval: Duration = .seconds(5), heartbeatTTL: Int = 30, pollInterval: Duration = .seconds(1),
        blockTimeout: Double = 1, identity: String? = nil, tag: String = "conveyor"
    ) {
        self.queues = queues
        self.concurrency = max(1, concurrency)
        self.shutdownTimeout = shutdownTimeout
        self.heartbeatInterval = heartbeatInterval
        self.heartbeatTTL = max(2, heartbeatTTL)
        self.pollInterval = pollInterval
        self.blockTimeout = blockTimeout
        self.identity = identity ?? WorkerConfiguration.newIdentity()
        self.tag = tag
    }

    public static func newIdentity() -> String {
        let host = ProcessInfo.processInfo.hostName
        let suffix = String(Job.newJID().prefix(12))
        return "\(host):\(getpid()):\(suffix)"
    }
}
