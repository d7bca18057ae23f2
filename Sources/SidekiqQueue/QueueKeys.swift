/// The Redis keys of one deployment: Sidekiq's layout for what Sidekiq's clients and API read, `conveyor:` for
/// Conveyor's own, all behind an optional namespace prefix (`CONVEYOR_NAMESPACE`).
public struct QueueKeys: Sendable, Equatable {
    /// Prefix with its trailing colon, or empty.
    public let prefix: String
    /// The Redis Cluster layout (`QueueKeys+Cluster`): each queue's sets, counters and in-flight lists share the slot
    /// of its ready list. False: Sidekiq's layout, unchanged.
    public let cluster: Bool

    public init(namespace: String? = nil, cluster: Bool = false) {
        if let namespace, !namespace.isEmpty { prefix = namespace + ":" } else { prefix = "" }
        self.cluster = cluster
    }

    /// LIST of ready jobs, pushed on the left, taken from the right.
    public func queue(_ name: String) -> String { prefix + "queue:" + name }
    /// SET of queue names.
    public var queues: String { prefix + "queues" }
    /// ZSET of jobs to run later, scored by Unix seconds.
    public var schedule: String { prefix + "schedule" }
    /// ZSET of failed jobs waiting for their next attempt, scored by Unix seconds.
    public var retry: String { prefix + "retry" }
    /// ZSET of jobs that will not run again, scored by when they died.
    public var dead: String { prefix + "dead" }
    public var processed: String { prefix + "stat:processed" }
    public var failed: String { prefix + "stat:failed" }
    /// Per-day counters, `stat:processed:2026-11-22`, as Sidekiq keeps them.
    public func processed(day: String) -> String { prefix + "stat:processed:" + day }
    public func failed(day: String) -> String { prefix + "stat:failed:" + day }
    /// SET of live process identities, read by Sidekiq's `ProcessSet`.
    public var processes: String { prefix + "processes" }
    /// HASH of one process (`info`, `busy`, `beat`, `quiet`), expiring when its heartbeat stops.
    public func process(_ identity: String) -> String { prefix + identity }
    /// HASH of one process's running jobs in Sidekiq's format (thread id -> `{queue, payload, run_at}`), read by
    /// Sidekiq's `Workers` API and the Web UI's Busy page; rewritten with each heartbeat.
    public func workers(_ identity: String) -> String { prefix + identity + ":workers" }
    /// LIST of signals (`TSTP`, `TERM`) sent to one process, as Sidekiq's Web UI sends them.
    public func signals(_ identity: String) -> String { prefix + identity + "-signals" }

    /// SET of Conveyor process identities whose in-flight lists the reaper watches.
    public var conveyorProcesses: String { prefix + "conveyor:processes" }
    /// LIST of jobs one process has taken and not yet finished.
    public func inflight(_ identity: String) -> String { prefix + "conveyor:inflight:" + identity }
    /// HASH of the terminal outcomes one process acknowledged and its result writer has not yet stored
    /// (field `<jid>:<sequence>`, value the outcome record): written in the same script as the ack.
    public func outcomes(_ identity: String) -> String { prefix + "conveyor:outcomes:" + identity }
    /// STRING: the number of the last batch of completions one process's acknowledger applied, so a batch whose
    /// reply was lost is not applied (or counted) twice.
    public func acknowledged(_ identity: String) -> String { prefix + "conveyor:acked:" + identity }
    /// SET of outcome journals whose process is gone (reaped or stopped with outcomes unwritten): any result
    /// writer stores and empties them.
    public var orphanedOutcomes: String { prefix + "conveyor:outcomes-orphaned" }
    /// STRING that exists while a process is alive (its TTL is the heartbeat lease).
    public func heartbeat(_ identity: String) -> String { prefix + "conveyor:heartbeat:" + identity }
    /// Lock held while one process reaps another's in-flight list.
    public func reapLock(_ identity: String) -> String { prefix + "conveyor:reap:" + identity }
    /// SET of paused queue names (`conveyor queue pause NAME`): workers stop fetching from them at once.
    public var pausedQueues: String { prefix + "conveyor:paused-queues" }
    /// HASH Sidekiq 7.3's `cancel!` sets `cancelled` (Unix seconds) in, for 30 days: `it-<jid>`. Running jobs
    /// with it are stopped; `conveyor cancel` sets it too.
    public func cancelFlag(_ jid: String) -> String { prefix + "it-" + jid }
    /// ZSET of jids `conveyor cancel` cancelled (score: when), the last day and at most 10,000: a worker checks a
    /// job against it before starting it.
    public var cancelled: String { prefix + "conveyor:cancelled" }
    /// STRING counter bumped by every `conveyor cancel`: workers reread `cancelled` when it changes.
    public var cancelVersion: String { prefix + "conveyor:cancel-version" }
    /// Namespace for feature keys (caches, locks, rate limits): `conveyor:<name>`.
    public func conveyor(_ name: String) -> String { prefix + "conveyor:" + name }
}
