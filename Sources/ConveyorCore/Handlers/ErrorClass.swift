/// The name a failed job records as `error_class`: short CamelCase, stable, what operators filter on.
///
/// Each family declares its own as constants (`ErrorClass.imageCorrupt`), in an `ErrorClass+<Family>.swift`
/// of its folder; docs/jobs.md lists them all.
public struct ErrorClass: RawRepresentable, Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let rawValue: String

    public init(rawValue: String) {
        self.rawValue = rawValue
    }

    public init(stringLiteral value: String) {
        self.rawValue = value
    }

    public var description: String { rawValue }
}

/// The worker's own error classes, and those of configuration and argument checks every family shares.
extension ErrorClass {
    /// A setting is malformed or out of range; the worker refuses to start.
    public static let invalidConfiguration: ErrorClass = "InvalidConfiguration"
    /// The job's arguments do not match its class's schema.
    public static let invalidArguments: ErrorClass = "InvalidArguments"
    /// A queue entry is not a Sidekiq job (not JSON, no class, args not an array) or a field is outside its range
    /// (`JobEnvelope`).
    public static let malformedJob: ErrorClass = "MalformedJob"
    /// No handler is registered for the job's class.
    public static let unknownJobClass: ErrorClass = "UnknownJobClass"
    /// The job ran past its class's time limit.
    public static let jobTimeout: ErrorClass = "JobTimeout"
    /// The worker running the job stopped heartbeating (crash, kill -9, OOM); the reaper requeued it.
    public static let workerLost: ErrorClass = "WorkerLost"
    /// The worker shut down before the job finished.
    public static let workerShutdown: ErrorClass = "WorkerShutdown"
    /// An operator cancelled the job (`conveyor cancel`, the dashboard, `Sidekiq::Client#cancel!`): recorded
    /// `cancelled`, never retried.
    public static let jobCancelled: ErrorClass = "JobCancelled"
}
