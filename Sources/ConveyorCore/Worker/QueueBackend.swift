/// Where a worker's jobs live: queues to fetch from with a reliable fetch, an in-flight store per process, the
/// retry, schedule and dead sets, and the liveness records other processes reap by. The worker decides what
/// happens to each job (`JobTransitions`); a backend only applies those decisions, atomically, in its own layout.
///
/// One backend value serves one worker process (`identity`). Its methods may be called concurrently: fetching,
/// one waiter per queue, completions and housekeeping each run from their own task, and a backend that talks to a
/// server over blocking connections gives each of them its own.
///
/// Every method that throws throws for an outage (the server is unreachable, a reply was lost); the worker keeps
/// what it holds and calls again. Nothing a call did before its error is assumed undone: a fetch whose reply was
/// lost may have moved jobs into the in-flight store (the worker reconciles), a batch of completions may have
/// applied (`complete` is told so on its next send).
public protocol QueueBackend: Sendable {
    /// The process this backend serves.
    var identity: String { get }
    /// Where this process's outcome journal lives, as the `OutcomeJournal` names it.
    var journalName: String { get }

    // MARK: Fetching

    /// Moves up to `count` ready jobs into this process's in-flight store, taking from the queues in `order`
    /// (earlier queues first), and returns them with their receipts. Empty when every queue is empty.
    func fetch(from order: [String], count: Int) async throws -> [FetchedJob]

    /// Waits up to `timeout` seconds for a job on `queue` and moves it into this process's in-flight store.
    /// Called while `fetch` finds nothing, concurrently for each served queue.
    func waitForJob(on queue: String, timeout: Double) async throws -> FetchedJob?

    // MARK: Leaving the in-flight store

    /// Applies one batch of moves out of this process's in-flight store (each names its job by its receipt), all or none, with their counters and
    /// journal entries (field `JobTransitions.ackJournalField(batch)`). `resent` says an earlier send of the same
    /// batch failed and may have applied: then it must not apply again. Returns false when the backend refused
    /// the batch as a whole (a bug, logged; retrying would fail again).
    func complete(_ moves: [JobTransitions.Move], batch: UInt64, resent: Bool) async throws -> Bool

    /// Applies moves out of the in-flight store of `process` (this one, or a dead one being reaped), each only if
    /// that store still holds the job; journal entries go to this process's journal under `journalField`.
    /// Returns which moves were applied.
    func apply(_ moves: [JobTransitions.Move], fromInflightOf process: String, journalField: String) async throws -> [Bool]

    /// The journal this process's entry for a move of the job holding `receipt` goes to (out of this process's
    /// in-flight store or a reaped one's). A backend with one journal per process (the default) names `journalName`;
    /// one with a journal per queue (a Redis Cluster's layout) names the journal of the receipt's queue.
    func journal(for receipt: DeliveryReceipt) -> String

    /// The journal field a move of the job holding `receipt` writes its entry to, for a batch whose field is
    /// `batchField`: the batch's own, unless the backend splits one batch across stores that each write a field of
    /// their own (`QueueRouter`: a BullMQ job's outcome goes in with BullMQ's script, beside the Sidekiq side's).
    func journalField(_ batchField: String, for receipt: DeliveryReceipt) -> String

    /// Gives the backend the worker's way to stop a running job with a failure (its task cancelled, the failure
    /// recorded): a backend that learns a job must not go on (BullMQ: its lock was lost to another worker) calls it.
    /// Called once, when the worker is made.
    func setJobStopper(_ stop: @escaping @Sendable (_ jid: String, _ failure: JobFailure) -> Void)

    /// Jobs in the in-flight store of `process`, with their receipts: the `limit` oldest (nil: all), listed newest
    /// first, so that moving them back to the head of their queues in this order runs the oldest first.
    func inflightJobs(of process: String, limit: Int?) async throws -> [FetchedJob]

    // MARK: Liveness

    /// Records this process alive until `beat.lease` seconds from now, with what it runs; returns a signal an
    /// operator sent it (Sidekiq's Web UI: quiet or stop), if any.
    func heartbeat(_ beat: ProcessBeat) async throws -> ProcessSignal?

    /// Processes whose lease expired while they were registered.
    func deadProcesses() async throws -> [String]

    /// Takes the right to reap `process`; false when another process has it.
    func claim(deadProcess process: String) async throws -> Bool

    /// Removes a reaped process: its registrations go, and outcomes it journaled but never stored are handed to
    /// any result writer.
    func forget(deadProcess process: String) async throws

    /// Removes this process's registrations at a clean exit; it stays known to reapers while its in-flight store
    /// holds anything.
    func deregister() async throws

    // MARK: Scheduled and retried jobs

    /// Moves every due scheduled and retried job onto its queue, each once across all processes.
    func promoteDueJobs() async throws

    /// Releases the backend's connections. Called once, after the worker stopped using it.
    func close()

    // MARK: Running jobs

    /// Writes `fields` into running job `jid`'s progress hash (`conveyor:job:<jid>`), expiring `expireSeconds` later.
    func writeProgress(jid: String, fields: [(String, String)], expireSeconds: Int) async throws

    /// Appends one line to running job `jid`'s own log, where its queue system keeps one (BullMQ's `job.log`).
    func appendJobLog(jid: String, line: String) async throws

    // MARK: Cancellation

    /// The cancellation requests this process must act on: which of `running` (jids) carry a cancel flag, and the
    /// list of recently cancelled jids unless its version is still `knownVersion`.
    func cancellations(running: [String], knownVersion: String?) async throws -> CancelRequests
}

/// What `QueueBackend.cancellations` read.
public struct CancelRequests: Sendable, Equatable {
    /// The running jobs with a cancel flag (`conveyor cancel`, or Sidekiq's `cancel!`).
    public var flagged: Set<String>
    /// The version of the recently-cancelled list (changes with every `conveyor cancel`).
    public var version: String?
    /// The recently cancelled jids, read because `version` differs from the one the caller knew; nil otherwise.
    public var recent: Set<String>?

    public init(flagged: Set<String> = [], version: String? = nil, recent: Set<String>? = nil) {
        self.flagged = flagged
        self.version = version
        self.recent = recent
    }
}

extension QueueBackend {
    public func journal(for receipt: DeliveryReceipt) -> String { journalName }

    public func journalField(_ batchField: String, for receipt: DeliveryReceipt) -> String { batchField }

    /// A backend that never stops a job itself keeps no stopper.
    public func setJobStopper(_ stop: @escaping @Sendable (_ jid: String, _ failure: JobFailure) -> Void) {}

    /// A backend without cancel flags has no requests.
    public func cancellations(running: [String], knownVersion: String?) async throws -> CancelRequests {
        CancelRequests(version: knownVersion)
    }

    /// A backend without a progress hash drops progress.
    public func writeProgress(jid: String, fields: [(String, String)], expireSeconds: Int) async throws {}

    /// A backend without per-job logs (Sidekiq's layout has none) keeps the line in the process's log only.
    public func appendJobLog(jid: String, line: String) async throws {}
}

/// What a heartbeat says about a process, in the terms Sidekiq's process list uses.
public struct ProcessBeat: Sendable {
    public struct Running: Sendable {
        /// Unique among this process's running jobs (Sidekiq's thread id).
        public var token: UInt64
        public var queue: String
        public var raw: [UInt8]
        /// Unix seconds.
        public var runAt: Int
    }

    public var identity: String
    public var hostname: String
    public var pid: Int
    public var startedAt: Double
    public var tag: String
    public var concurrency: Int
    public var queues: [String]
    public var busy: Int
    public var quiet: Bool
    public var residentKilobytes: Int
    public var running: [Running]
    /// Seconds without another beat after which this process counts as dead.
    public var lease: Int
}

/// A signal an operator sent one process.
public enum ProcessSignal: Sendable, Equatable {
    /// Fetch nothing more (Sidekiq's `TSTP`).
    case quiet
    /// Shut down gracefully (Sidekiq's `TERM`).
    case stop
}
