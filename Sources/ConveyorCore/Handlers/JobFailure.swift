/// A job failure with the error class recorded on the job (`error_class`) and whether retrying can help.
///
/// Permanent failures (bad input, unknown class) skip retries and go straight to the dead set.
public struct JobFailure: Error, Sendable, CustomStringConvertible, Equatable {
    /// Short CamelCase name recorded as `error_class`: `InvalidArguments`, `ImageTooLarge`, `SMTPRejected`.
    public var errorClass: String
    public var message: String
    public var isPermanent: Bool
    /// Seconds the next run must wait at least (a server's `Retry-After`); the back-off still applies when longer.
    public var retryAfter: Double?
    /// The job was not run and is done: acknowledged and recorded `skipped` with this error class, not retried.
    public var skipsJob = false
    /// The job was cancelled: acknowledged and recorded `cancelled`, not retried.
    public var cancelsJob = false
    /// The destination asked to wait (a 429 with `Retry-After`): the job runs again after `retryAfter` without
    /// spending an attempt, `JobTransitions.maximumDeferrals` times at most.
    public var defersJob = false

    public init(errorClass: ErrorClass, message: String, isPermanent: Bool) {
        self.errorClass = errorClass.rawValue
        self.message = message
        self.isPermanent = isPermanent
    }

    public static func permanent(_ errorClass: ErrorClass, _ message: String) -> JobFailure {
        JobFailure(errorClass: errorClass, message: message, isPermanent: true)
    }

    public static func transient(_ errorClass: ErrorClass, _ message: String) -> JobFailure {
        JobFailure(errorClass: errorClass, message: message, isPermanent: false)
    }

    /// The job is done without running (recorded `skipped`): `DuplicateJob` while another jid holds its unique key.
    public static func skipped(_ errorClass: ErrorClass, _ message: String) -> JobFailure {
        var failure = JobFailure(errorClass: errorClass, message: message, isPermanent: true)
        failure.skipsJob = true
        return failure
    }

    /// The job was cancelled by an operator, before or while it ran (recorded `cancelled`, error class `JobCancelled`).
    public static func cancelled(_ message: String) -> JobFailure {
        var failure = JobFailure(errorClass: .jobCancelled, message: message, isPermanent: true)
        failure.cancelsJob = true
        return failure
    }

    /// The destination asked to wait (a 429 with `Retry-After`, or another job's 429 still cooling down): the job
    /// runs again after `after` seconds (none: its back-off) and spends no attempt, up to
    /// `JobTransitions.maximumDeferrals` times; after that the wait is an attempt like any failure.
    public static func deferred(_ errorClass: ErrorClass, _ message: String, after: Double?) -> JobFailure {
        var failure = JobFailure(errorClass: errorClass, message: message, isPermanent: false)
        failure.defersJob = true
        failure.retryAfter = after
        return failure
    }

    /// The job's arguments do not match its class's schema.
    public static func invalidArguments(_ message: String) -> JobFailure { .permanent(.invalidArguments, message) }

    /// The same failure (class and permanence) with another message, usually the job named in front of it.
    public func with(message: String) -> JobFailure {
        var failure = self
        failure.message = message
        return failure
    }

    public var description: String { "\(errorClass): \(message)" }
}

extension JobFailure {
    /// How any error thrown by a handler is recorded: a `JobFailure` as it is, anything else as transient.
    public init(_ error: any Error) {
        if let failure = error as? JobFailure {
            self = failure
        } else {
            self = .transient(ErrorClass(rawValue: String(describing: type(of: error))), String(describing: error))
        }
    }
}
