/// How a job's run ended.
public enum JobStatus: String, Sendable {
    case succeeded
    /// Failed; scheduled in the `retry` set.
    case retrying
    /// Failed for good; parked in the `dead` set.
    case dead
    /// Stopped by shutdown and pushed back to its queue without counting an attempt.
    case requeued
}

/// One finished run of a job, as the worker reports it to observers (result store, metrics).
public struct JobOutcome: Sendable {
    public var jid: String
    public var jobClass: String
    public var queue: String
    public var status: JobStatus
    /// Runs so far, this one included.
    public var attempts: Int
    public var result: JSONValue?
    public var failure: JobFailure?
    /// Unix seconds.
    public var enqueuedAt: Double?
    public var startedAt: Double
    public var finishedAt: Double
    /// The job as it was fetched.
    public var payload: JSONObject

    public init(
        jid: String, jobClass: String, queue: String, status: JobStatus, attempts: Int, result: JSONValue?,
        failure: JobFailure?, enqueuedAt: Double?, startedAt: Double, finishedAt: Double, payload: JSONObject
    ) {
        self.jid = jid
        self.jobClass = jobClass
        self.queue = queue
        self.status = status
        self.attempts = attempts
        self.result = result
        self.failure = failure
        self.enqueuedAt = enqueuedAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.payload = payload
    }

    public var duration: Double { finishedAt - startedAt }
}

/// Sees every job the worker runs. Calls come from the worker's tasks and must return quickly:
/// buffer slow work (database writes) and do it elsewhere.
public protocol JobObserver: Sendable {
    func jobStarted(jid: String, jobClass: String, queue: String)
    func jobFinished(_ outcome: JobOutcome)
    /// A process's in-flight jobs were reaped after its heartbeat expired.
    func jobsReaped(count: Int, requeued: Int, dead: Int)
}

extension JobObserver {
    public func jobStarted(jid: String, jobClass: String, queue: String) {}
    public func jobsReaped(count: Int, requeued: Int, dead: Int) {}
}
