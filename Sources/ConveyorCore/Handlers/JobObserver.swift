/// How a job's run ended.
public enum JobStatus: String, Sendable {
    case succeeded
    /// Failed; scheduled in the `retry` set.
    case retrying
    /// Failed for good; parked in the `dead` set.
    case dead
    /// Stopped by shutdown and pushed back to its queue without counting an attempt.
    case requeued
    /// Its destination asked to wait (a 429 with `Retry-After`): scheduled again in the `retry` set without counting
    /// an attempt.
    case deferred
    /// Not run: a middleware refused it for good without it being a failure (a duplicate of a unique job still held).
    case skipped
    /// Cancelled by an operator before or while it ran; not retried.
    case cancelled
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
    /// When a `retrying` job runs next, in Unix seconds.
    public var retryAt: Double?

    public init(
        jid: String, jobClass: String, queue: String, status: JobStatus, attempts: Int, result: JSONValue?,
        failure: JobFailure?, enqueuedAt: Double?, startedAt: Double, finishedAt: Double, payload: JSONObject,
        retryAt: Double? = nil
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
        self.retryAt = retryAt
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

/// Where terminal outcomes go durably: the worker keeps each one in Redis in the same script that takes its job
/// out of the in-flight list (the process's outcome journal, `conveyor:outcomes:<identity>`), and hands it on
/// only once Redis has applied that script. A process killed at any instant leaves every acknowledged outcome in
/// its journal, which the reaper of a live process marks orphaned for any result writer to store.
public protocol OutcomeJournal: Sendable {
    /// The record to keep for this outcome (its bytes, and the value they encode, handed back with `journaled`), or
    /// nil when none is kept (`retrying`, `requeued`).
    func journalValue(for outcome: JobOutcome) -> (value: [UInt8], record: JobResultRecord)?
    /// Redis applied the moves carrying these entries of journal `key`: store them, then remove them from it.
    func journaled(key: String, entries: [JobTransitions.Move.JournalEntry])
}
