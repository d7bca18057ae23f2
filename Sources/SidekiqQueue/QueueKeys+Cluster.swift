/// The Redis Cluster layout. Every key a script or transaction touches shares one slot: the slot of the queue's
/// Sidekiq ready list `queue:<q>` (hashed whole: it has no `{tag}`), because each of the queue's own keys carries
/// that list's name as its hash tag, `conveyor:{queue:<q>}:...`. A queue's retry, schedule and dead sets, its
/// counters, the in-flight lists and outcome journals of the processes working it all live on the queue's shard;
/// queues spread over the shards. Process records (heartbeats, Sidekiq's process hashes) stay where they are:
/// they are only ever touched one key per command.
extension QueueKeys {
    /// The hash tag of a queue's keys: its ready list's name, namespace included.
    public func tag(_ queue: String) -> String { "{" + self.queue(queue) + "}" }

    /// `conveyor:{queue:<q>}:<name>`.
    public func tagged(_ queue: String, _ name: String) -> String { prefix + "conveyor:" + tag(queue) + ":" + name }

    /// LIST of the jobs of `queue` one process has taken and not yet finished.
    public func inflight(_ identity: String, queue: String) -> String { tagged(queue, "inflight:" + identity) }
    /// HASH of one process's acknowledged outcomes of jobs from `queue` (see `outcomes(_:)`).
    public func outcomes(_ identity: String, queue: String) -> String { tagged(queue, "outcomes:" + identity) }
    /// STRING: the last batch of completions of `queue` one process applied (see `acknowledged(_:)`).
    public func acknowledged(_ identity: String, queue: String) -> String { tagged(queue, "acked:" + identity) }
    /// SET of the outcome journals on this queue's slot whose process is gone.
    public func orphanedOutcomes(queue: String) -> String { tagged(queue, "outcomes-orphaned") }
    /// ZSET of the queue's jobs to run later (Sidekiq's `schedule`, per queue).
    public func schedule(queue: String) -> String { tagged(queue, "schedule") }
    /// ZSET of the queue's failed jobs waiting for their next attempt (Sidekiq's `retry`, per queue).
    public func retry(queue: String) -> String { tagged(queue, "retry") }
    /// ZSET of the queue's jobs that will not run again (Sidekiq's `dead`, per queue).
    public func dead(queue: String) -> String { tagged(queue, "dead") }
    public func processed(queue: String) -> String { tagged(queue, "stat:processed") }
    public func failed(queue: String) -> String { tagged(queue, "stat:failed") }
    public func processed(queue: String, day: String) -> String { tagged(queue, "stat:processed:" + day) }
    public func failed(queue: String, day: String) -> String { tagged(queue, "stat:failed:" + day) }

    /// The queue whose slot `key` (a tagged key of this layout) lives in.
    public func queue(ofTagged key: String) -> String? {
        let open = prefix + "conveyor:{" + prefix + "queue:"
        guard key.hasPrefix(open), let close = key.dropFirst(open.count).firstIndex(of: "}") else { return nil }
        return String(key[key.index(key.startIndex, offsetBy: open.count)..<close])
    }

    /// Whether `queue` can be tagged: a brace in its name would change which part of the key is hashed.
    public static func isClusterSafe(queue: String) -> Bool { !queue.contains("{") && !queue.contains("}") }

    /// The slot of `queue`'s keys, which the backend and the transition commands use: Sidekiq's global keys (one slot for
    /// every queue), or the queue's tagged ones.
    func slot(_ queue: String) -> SlotKeys {
        guard cluster else { return SlotKeys(keys: self, queue: nil) }
        return SlotKeys(keys: self, queue: queue)
    }
}

/// One slot of the key layout: the keys one script or transaction may touch together. In Sidekiq's layout there is one
/// (Sidekiq's global sets and counters, one in-flight list per process); on a cluster one per queue (the queue's tagged
/// keys, where every target of a move is that queue itself).
struct SlotKeys {
    let keys: QueueKeys
    /// The queue of a cluster slot; nil in Sidekiq's layout.
    let queue: String?

    var retry: String { queue.map { keys.retry(queue: $0) } ?? keys.retry }
    var schedule: String { queue.map { keys.schedule(queue: $0) } ?? keys.schedule }
    var dead: String { queue.map { keys.dead(queue: $0) } ?? keys.dead }
    var processed: String { queue.map { keys.processed(queue: $0) } ?? keys.processed }
    var failed: String { queue.map { keys.failed(queue: $0) } ?? keys.failed }
    func processed(day: String) -> String { queue.map { keys.processed(queue: $0, day: day) } ?? keys.processed(day: day) }
    func failed(day: String) -> String { queue.map { keys.failed(queue: $0, day: day) } ?? keys.failed(day: day) }
    /// The `queues` set scripts add a queue to. On a cluster it cannot share a script's slot: scripts get a key of
    /// their own slot there and an empty queue name, which skips the `SADD` (the queue is known already: its jobs
    /// came from it).
    func queuesKey(sameSlotAs source: String) -> String { queue == nil ? keys.queues : source }
    func queueName(_ name: String) -> String { queue == nil ? name : "" }
    /// The list a job goes back to: its own queue's, or on a cluster the slot's queue (the list it was taken from).
    func list(_ name: String) -> String { keys.queue(queue ?? name) }

    /// One process's in-flight list in this slot: its only one in Sidekiq's layout, its list of the slot's queue on a
    /// cluster.
    func inflight(_ identity: String) -> String { queue.map { keys.inflight(identity, queue: $0) } ?? keys.inflight(identity) }
    /// One process's outcome journal in this slot.
    func outcomes(_ identity: String) -> String { queue.map { keys.outcomes(identity, queue: $0) } ?? keys.outcomes(identity) }
    /// One process's marker of its last applied batch of completions in this slot.
    func acknowledged(_ identity: String) -> String {
        queue.map { keys.acknowledged(identity, queue: $0) } ?? keys.acknowledged(identity)
    }
    /// The set of this slot's outcome journals whose process is gone.
    var orphanedOutcomes: String { queue.map { keys.orphanedOutcomes(queue: $0) } ?? keys.orphanedOutcomes }
}
