public import ConveyorCore
import Foundation
public import Logging
public import Redis
import Synchronization

/// The queue backend in Sidekiq's job format, over either key layout of `QueueKeys`:
///
/// - a single Redis (or Sentinel): Sidekiq's keys, one slot for everything: one in-flight list per process, one
///   outcome journal, one batch marker, Sidekiq's global `schedule`, `retry` and `dead` sets and counters;
/// - a Redis Cluster (`QueueKeys(cluster: true)`, `QueueKeys+Cluster`): a slot per queue: each queue's in-flight lists,
///   outcome journals, batch markers, retry, schedule and dead sets and counters share the slot of its Sidekiq ready
///   list, so every script and transaction touches one slot, and queues spread over the shards.
///
/// Everything is written once, per slot (`SlotKeys`): a fetch takes from each slot's queues into that slot's
/// in-flight list (one script call for all queues on a single node), a batch of completions is one `MULTI`/`EXEC` per
/// slot (each with its own batch marker), the promoter walks each slot's schedule and retry sets. Which slot a job's
/// move goes to comes from its receipt (`DeliveryReceipt.queue`), so nothing is remembered between fetch and ack.
/// Completions are `MULTI`/`EXEC` batches with a numbered marker, the rarer moves (reaping, requeueing) one Lua script
/// per batch, and the process hash, its `:workers` hash and the signal list are Sidekiq's own, so Sidekiq's API and
/// Web UI see Conveyor's processes. On a cluster the connection routes every command to its slot's master and follows
/// `MOVED`/`ASK`; a batch resent after an outage reads each slot's marker and sends only the slots it had not applied.
///
/// Each kind of caller gets its own connection (fetching, completions, housekeeping, one waiter per queue), so a
/// slow reaper never delays an ack and a waiter blocked in `BLMOVE` never delays a fetch.
public final class SidekiqBackend: QueueBackend {
    public let identity: String
    public let keys: QueueKeys
    public let deadSet: DeadSetLimits
    /// Replicas each batch of completions waits for (`CONVEYOR_REDIS_WAIT_REPLICAS`): `WAIT` after each slot's
    /// transaction, asked of the master that took it.
    public let replicas: ReplicaWait
    /// The journal the worker knows this process by (on a cluster the journals themselves are per queue).
    public var journalName: String { keys.outcomes(identity) }

    private let endpoint: RedisEndpoint
    private let logger: Logger
    /// The queues this process serves (on a cluster their keys are watched even before they are in `queues`).
    private let served: [String]
    private let fetchRedis: RedisThread
    private let ackRedis: RedisThread
    private let housekeepingRedis: RedisThread
    private let waiters = Mutex<[String: RedisThread]>([:])
    /// Logs a run of batches that reached fewer replicas than wanted once, not once per batch.
    private let replicaShortfall = OutageLog("waiting for CONVEYOR_REDIS_WAIT_REPLICAS replicas after job completions")
    /// Paused queue names, refreshed at most once a second.
    private let paused: PausedQueues
    /// On a cluster, the queues known to be worked: the served ones plus the `queues` set, read again by housekeeping.
    private let known: Mutex<[String]>
    /// The config file's `limits:`, checked in the fetch (single node only; nil when there are none).
    public let flow: FlowLimitScripts?
    /// The slots this process's running jobs hold, renewed by each heartbeat.
    private let held = Mutex<[FlowLimitScripts.Lease: Int]>([:])

    /// - Parameter queues: the queues this process serves; on a cluster their slots are walked by housekeeping and
    ///   named in the `queues` set by each heartbeat.
    public init(
        redis endpoint: RedisEndpoint, keys: QueueKeys = QueueKeys(), identity: String, queues: [String] = [],
        deadSet: DeadSetLimits = DeadSetLimits(), replicas: ReplicaWait = .none, limits: [FlowLimit] = [],
        logger: Logger = Logger(label: "conveyor.worker")
    ) {
        self.endpoint = endpoint
        precondition(limits.isEmpty || !keys.cluster, "limits are refused on a Redis Cluster before a backend is made")
        self.flow = limits.isEmpty ? nil : FlowLimitScripts(limits: limits, keys: keys, identity: identity)
        self.keys = keys
        paused = PausedQueues(keys: keys)
        self.identity = identity
        self.deadSet = deadSet
        self.replicas = replicas
        self.logger = logger
        self.served = queues
        self.known = Mutex(queues)
        self.fetchRedis = RedisThread(endpoint, name: "conveyor-fetch")
        self.ackRedis = RedisThread(endpoint, name: "conveyor-ack")
        self.housekeepingRedis = RedisThread(endpoint, name: "conveyor-housekeeping")
    }

    deinit { close() }

    public func close() {
        fetchRedis.stop()
        ackRedis.stop()
        housekeepingRedis.stop()
        let all = waiters.withLock { w in
            defer { w.removeAll() }
            return Array(w.values)
        }
        for redis in all { redis.stop() }
    }

    // MARK: Running jobs

    /// `HSET conveyor:job:<jid> field value…` then `EXPIRE`, in one round trip (on a cluster, the key's own slot).
    public func writeProgress(jid: String, fields: [(String, String)], expireSeconds: Int) async throws {
        guard !fields.isEmpty else { return }
        let key = keys.conveyor("job:" + jid)
        var hset: [any RedisArgument] = ["HSET", key]
        for (field, value) in fields { hset += [field, value] }
        let commands = [RedisCommand(hset), RedisCommand("EXPIRE", key, expireSeconds)]
        let replies = try await housekeepingRedis.run { connection in try connection.pipeline(commands) }
        for reply in replies { try reply.check() }
    }

    public func cancellations(running: [String], knownVersion: String?) async throws -> CancelRequests {
        let keys = keys
        let commands = [RedisCommand("GET", keys.cancelVersion)] + running.map { RedisCommand("HGET", keys.cancelFlag($0), "cancelled") }
        let replies = try await housekeepingRedis.run { connection in try connection.pipeline(commands) }
        for reply in replies { try reply.check() }
        var requests = CancelRequests(version: replies[0].text)
        for (jid, reply) in zip(running, replies.dropFirst()) where reply.text != nil { requests.flagged.insert(jid) }
        if requests.version != knownVersion {
            let listed = try await housekeepingRedis.run { connection in
                try connection.command("ZRANGE", keys.cancelled, "0", "-1").check().array ?? []
            }
            requests.recent = Set(listed.compactMap(\.text))
        }
        return requests
    }

    // MARK: Slots

    /// The slots this process's keys live in: Sidekiq's one, or on a cluster one per known queue.
    private func slots() async throws -> [SlotKeys] {
        guard keys.cluster else { return [keys.slot("")] }
        return try await knownQueues().map { keys.slot($0) }
    }

    /// The served queues and those in the `queues` set (producers add theirs; every worker's heartbeat adds its own).
    private func knownQueues() async throws -> [String] {
        let keys = keys
        let listed = try await housekeepingRedis.run { connection in
            try connection.command("SMEMBERS", keys.queues).check().array?.compactMap(\.text) ?? []
        }
        return known.withLock { k in
            for queue in listed where !k.contains(queue) && QueueKeys.isClusterSafe(queue: queue) { k.append(queue) }
            return k
        }
    }

    /// Moves grouped by the slot of their receipt's queue, in first-seen order: one group on a single node.
    private func grouped(_ moves: [JobTransitions.Move]) -> [(slot: SlotKeys, moves: [JobTransitions.Move], indices: [Int])] {
        guard keys.cluster else { return [(keys.slot(""), moves, Array(moves.indices))] }
        var order: [String] = []
        var groups: [String: [Int]] = [:]
        for (i, move) in moves.enumerated() {
            let queue = move.receipt.queue
            if groups[queue] == nil { order.append(queue) }
            groups[queue, default: []].append(i)
        }
        return order.map { queue in
            let indices = groups[queue] ?? []
            return (keys.slot(queue), indices.map { moves[$0] }, indices)
        }
    }

    public func journal(for receipt: DeliveryReceipt) -> String { keys.slot(receipt.queue).outcomes(identity) }

    // MARK: Fetching

    /// One `fetch` script call per slot, in queue order: every queue in one call on a single node, one queue after
    /// another on a cluster until `count` jobs are taken.
    public func fetch(from order: [String], count: Int) async throws -> [FetchedJob] {
        let paused = try await self.paused.names(fetchRedis)
        let order = paused.isEmpty ? order : order.filter { !paused.contains($0) }
        if order.isEmpty { return [] }
        let keys = keys
        let me = identity
        if let flow { return try await fetchLimited(flow, order: order, count: count) }
        let groups = keys.cluster ? order.map { [$0] } : [order]
        return try await fetchRedis.run { connection -> [FetchedJob] in
            var jobs: [FetchedJob] = []
            jobs.reserveCapacity(count)
            for queues in groups where jobs.count < count {
                // On one Redis the script itself skips paused queues (a pause stops fetching at once); on a cluster the
                // paused set is in another slot, and the cached read above (at most a second old) decides.
                let checkPaused = !keys.cluster
                var arguments: [any RedisArgument] = [
                    "EVAL", LuaScripts.fetch, queues.count + 1 + (checkPaused ? 1 : 0), keys.slot(queues[0]).inflight(me),
                ]
                arguments += queues.map { keys.queue($0) }
                if checkPaused { arguments.append(keys.pausedQueues) }
                arguments.append(count - jobs.count)
                arguments.append(checkPaused ? "1" : "0")
                arguments += queues
                let items = try connection.command(RedisCommand(arguments)).check().array ?? []
                var i = 0
                while i + 1 < items.count {
                    let index = items[i].int ?? 1
                    jobs.append(FetchedJob(raw: items[i + 1].bytes ?? [], queue: queues[max(0, min(queues.count - 1, index - 1))]))
                    i += 2
                }
            }
            return jobs
        }
    }

    /// The fetch with `limits:`: the limits' script, called again while it reports its scan budget spent (jobs moved
    /// into their keys' lines) and room is left, at most `fetchRounds` times.
    private func fetchLimited(_ flow: FlowLimitScripts, order: [String], count: Int) async throws -> [FetchedJob] {
        let keys = keys
        let me = identity
        let jobs = try await fetchRedis.run { connection -> [FetchedJob] in
            // A NOSCRIPT answer ran nothing: the script is loaded (again) and the call sent once more.
            func call(_ want: Int) throws(RedisError) -> RedisReply {
                var sha = self.fetchLoaded.withLock { $0 }
                if sha == nil {
                    sha = try connection.command("SCRIPT", "LOAD", FlowLimitScripts.fetch).check().text
                    self.fetchLoaded.withLock { $0 = sha }
                }
                let command = { (sha: String?) in
                    flow.fetchCommand(
                        inflight: keys.inflight(me), queues: order, queueKeys: order.map { keys.queue($0) }, paused: keys.pausedQueues,
                        want: want, sha: sha)
                }
                let reply = try connection.command(command(sha))
                if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
                    self.fetchLoaded.withLock { $0 = nil }
                    return try connection.command(command(nil))
                }
                return reply
            }
            var jobs: [FetchedJob] = []
            for _ in 0..<Self.fetchRounds where jobs.count < count {
                let items = try call(count - jobs.count).check().array ?? []
                var i = 2
                while i + 2 < items.count {
                    let index = items[i].int ?? 1
                    jobs.append(FetchedJob(
                        raw: items[i + 1].bytes ?? [], queue: order[max(0, min(order.count - 1, index - 1))], lease: items[i + 2].text ?? ""))
                    i += 3
                }
                if items.first?.int != 1 { break }
            }
            return jobs
        }
        hold(jobs)
        return jobs
    }

    /// The limits' fetch script's SHA-1, loaded on the fetch connection at its first use (and again after `NOSCRIPT`).
    private let fetchLoaded = Mutex<String?>(nil)

    /// The limits' release script's SHA-1, loaded on the acknowledger's connection at its first use (and again after
    /// Redis answered `NOSCRIPT`).
    private let releaseLoaded = Mutex<String?>(nil)

    private func releaseSHA() async throws -> String {
        if let sha = releaseLoaded.withLock({ $0 }) { return sha }
        let sha = try await ackRedis.run { connection in
            try connection.command("SCRIPT", "LOAD", FlowLimitScripts.release).check().text ?? ""
        }
        releaseLoaded.withLock { $0 = sha }
        return sha
    }

    /// Fetch calls per `fetch` at most while lines are being filled (each moves `FlowLimitScripts.scanBudget` jobs).
    static let fetchRounds = 20

    private func hold(_ jobs: [FetchedJob]) {
        let leases = jobs.compactMap { FlowLimitScripts.Lease($0.receipt.lease) }
        if !leases.isEmpty { held.withLock { for lease in leases { $0[lease, default: 0] += 1 } } }
    }

    private func letGo(_ moves: [JobTransitions.Move]) {
        guard flow != nil else { return }
        let leases = moves.compactMap { move -> FlowLimitScripts.Lease? in
            if case .replace = move.target { return nil }
            return FlowLimitScripts.Lease(move.receipt.lease)
        }
        if !leases.isEmpty {
            held.withLock { held in
                for lease in leases {
                    let left = (held[lease] ?? 0) - 1
                    held[lease] = left > 0 ? left : nil
                }
            }
        }
    }

    /// Writes the limits' definitions where `conveyor stats` and the dashboard read them.
    public func publishLimits() async throws {
        guard let command = flow?.publishCommand(keys) else { return }
        _ = try await housekeepingRedis.run { connection in try connection.command(command).check() }
    }

    /// Per limit: slots held, jobs waiting in lines, keys waiting (empty without `limits:`).
    public func limitStats() async throws -> [FlowLimitScripts.Stat] {
        guard let flow else { return [] }
        let reply = try await housekeepingRedis.run { connection in try connection.command(flow.statsCommand()) }
        return try flow.stats(reply)
    }

    /// The queue's own waiting connection; nil (after waiting out `timeout`) while the queue is paused.
    private func waiter(for queue: String, timeout: Double) async throws -> RedisThread? {
        let redis = waiters.withLock { w in
            if let existing = w[queue] { return existing }
            let made = RedisThread(endpoint, name: "conveyor-block-\(queue)", commandTimeout: timeout + 10)
            w[queue] = made
            return made
        }
        if try await paused.names(redis).contains(queue) {
            await PausedQueues.idle(timeout: timeout)
            return nil
        }
        return redis
    }

    public func waitForJob(on queue: String, timeout: Double) async throws -> FetchedJob? {
        if let flow { return try await waitLimited(flow, on: queue, timeout: timeout) }
        guard let redis = try await waiter(for: queue, timeout: timeout) else { return nil }
        let source = keys.queue(queue)
        let inflight = keys.slot(queue).inflight(identity)
        let paused = keys.cluster ? nil : keys.pausedQueues
        return try await redis.run { connection -> FetchedJob? in
            guard let job = try connection.command("BLMOVE", source, inflight, "RIGHT", "LEFT", timeout).check().bytes else { return nil }
            // A wait that began before a pause may be handed a job pushed after it: it goes back, untouched.
            if let paused, try connection.command("EVAL", LuaScripts.returnIfPaused, 3, source, inflight, paused, job, queue).check().int != 0 {
                return nil
            }
            return FetchedJob(raw: job, queue: queue)
        }
    }

    /// The blocking wait with `limits:`: a job it takes is admitted by the limits' script (or goes into its key's line),
    /// and the wait is cut to a second, after which the queue's lines are served: a key whose rate window opened or
    /// whose slot a dead worker's lease freed gets its job started without a new push.
    private func waitLimited(_ flow: FlowLimitScripts, on queue: String, timeout: Double) async throws -> FetchedJob? {
        guard let redis = try await waiter(for: queue, timeout: timeout) else { return nil }
        let keys = keys
        let source = keys.queue(queue)
        let inflight = keys.inflight(identity)
        let fetched = try await redis.run { connection -> FetchedJob? in
            if let job = try connection.command("BLMOVE", source, inflight, "RIGHT", "LEFT", min(timeout, 1.0)).check().bytes {
                let answer = try connection.command(
                    flow.admitCommand(job: job, queue: queue, queueKey: source, inflight: inflight, paused: keys.pausedQueues)).check().array ?? []
                guard answer.first?.int == 0 else { return nil }
                return FetchedJob(raw: job, queue: queue, lease: answer.count > 1 ? answer[1].text ?? "" : "")
            }
            let items = try connection.command(
                flow.fetchCommand(inflight: inflight, queues: [queue], queueKeys: [source], paused: keys.pausedQueues, want: 1)).check().array ?? []
            guard items.count >= 5 else { return nil }
            return FetchedJob(raw: items[3].bytes ?? [], queue: queue, lease: items[4].text ?? "")
        }
        if let fetched { hold([fetched]) }
        return fetched
    }

    // MARK: Leaving the in-flight lists

    /// One `MULTI`/`EXEC` per slot of the batch (`SidekiqCommands.batchCommands`), all in one pipeline (split per
    /// master by a cluster connection). A resent batch first reads each slot's marker and sends only the slots whose
    /// transaction had not applied.
    public func complete(_ moves: [JobTransitions.Move], batch sequence: UInt64, resent: Bool) async throws -> Bool {
        let me = identity
        let now = JobTime.now()
        let sha = flow != nil && moves.contains { !$0.receipt.lease.isEmpty } ? try await releaseSHA() : nil
        let batches = grouped(moves).map { group in
            (marker: group.slot.acknowledged(me), count: group.moves.count,
             commands: SidekiqCommands.batchCommands(
                keys: group.slot, source: group.slot.inflight(me), journal: group.slot.outcomes(me), marker: group.slot.acknowledged(me),
                sequence: sequence, moves: group.moves, now: now, limits: deadSet, uniqueLocks: keys, flow: flow, releaseSHA: sha))
        }
        letGo(moves)
        let wait = replicas
        let logger = logger
        let shortfall = replicaShortfall
        return try await ackRedis.run { [batches] connection in
            var pending = batches
            if resent {
                // Applied before the reply was lost (whole, journal included): those slots are not sent again.
                let markers = try connection.pipeline(batches.map { RedisCommand("GET", $0.marker) })
                pending = []
                for (batch, marker) in zip(batches, markers) where try marker.check().text != String(sequence) { pending.append(batch) }
            }
            if pending.isEmpty { return true }
            var commands: [RedisCommand] = []
            var spans: [(range: Range<Int>, count: Int)] = []
            for batch in pending {
                let start = commands.count
                commands += batch.commands
                spans.append((start..<commands.count, batch.count))
                commands += wait.commands
            }
            let replies = try connection.pipeline(commands)
            var refused = false
            for span in spans {
                if wait.replicas > 0, let reached = replies[span.range.upperBound].int {
                    if reached < wait.replicas {
                        shortfall.failed(ReplicaShortfall(reached: reached, wanted: wait.replicas), logger: logger)
                    } else {
                        shortfall.succeeded(logger: logger)
                    }
                }
                if let sha {
                    // Redis lost the release script (restarted, SCRIPT FLUSH): the transaction applied without those
                    // releases; they are sent again whole.
                    let again = SidekiqCommands.unloadedReleases(Array(commands[span.range]), replies: Array(replies[span.range]), sha: sha)
                    if !again.isEmpty {
                        self.releaseLoaded.withLock { $0 = nil }
                        for reply in try connection.pipeline(again) { try reply.check() }
                    }
                }
                do throws(RedisError) {
                    try SidekiqCommands.checkBatch(Array(replies[span.range]), count: span.count)
                } catch where error.isTransient {
                    throw error
                } catch {
                    // A refused transaction is a bug, not an outage: sending it again would fail again. Report it and move on.
                    logger.critical("redis rejected a batch of job completions", metadata: ["error": "\(error)", "moves": "\(span.count)"])
                    refused = true
                }
            }
            return !refused
        }
    }

    public func apply(_ moves: [JobTransitions.Move], fromInflightOf process: String, journalField: String) async throws -> [Bool] {
        if moves.isEmpty { return [] }
        let me = identity
        let now = JobTime.now()
        let limits = deadSet
        let groups = grouped(moves)
        let keys = keys
        let flow = flow
        let result = try await housekeepingRedis.run { connection in
            var commands: [RedisCommand] = []
            var spans: [Range<Int>] = []
            for group in groups {
                let start = commands.count
                commands += SidekiqCommands.applyCommands(
                    keys: group.slot, source: group.slot.inflight(process), journal: group.slot.outcomes(me), journalField: journalField,
                    moves: group.moves, now: now, limits: limits)
                spans.append(start..<commands.count)
            }
            let replies = try connection.pipeline(commands)
            var flags = [Bool](repeating: false, count: moves.count)
            for (group, span) in zip(groups, spans) {
                let applied = try SidekiqCommands.applied(Array(replies[span]), count: group.indices.count)
                for (index, done) in zip(group.indices, applied) { flags[index] = done }
            }
            // The unique locks of the jobs the reaper ended (dead), right after the moves that ended them.
            var releases = zip(moves, flags).compactMap { move, done in
                done ? move.uniqueRelease.flatMap { RedisUniqueLocks.releaseCommand($0, keys: keys) } : nil
            }
            // The slots of limited jobs moved out of this process's own list (requeued at shutdown or by reconcile).
            if let flow, let release = flow.releaseCommand(for: zip(moves, flags).compactMap { $1 ? $0 : nil }, keys: keys) { releases.append(release) }
            if !releases.isEmpty { for reply in try connection.pipeline(releases) { try reply.check() } }
            return flags
        }
        letGo(moves)
        return result
    }

    public func inflightJobs(of process: String, limit: Int?) async throws -> [FetchedJob] {
        let slots = try await slots()
        // Jobs are pushed on the left: the oldest are on the right, the limit keeps those.
        let start = limit.map { -max(1, $0) } ?? 0
        let lists = try await housekeepingRedis.run { connection in
            try connection.pipeline(slots.map { RedisCommand("LRANGE", $0.inflight(process), start, -1) })
        }
        var jobs: [FetchedJob] = []
        for (slot, reply) in zip(slots, lists) {
            for raw in try reply.check().array?.compactMap(\.bytes) ?? [] {
                if let limit, jobs.count >= limit { break }
                // A single node's list does not say which queue a job came from: its payload does.
                jobs.append(FetchedJob(raw: raw, queue: slot.queue ?? (try? Job(raw: raw))?.queue ?? "default"))
            }
        }
        return jobs
    }

    // MARK: Liveness

    /// Conveyor's heartbeat lease plus Sidekiq's process hash and `<identity>:workers` hash, so Sidekiq's
    /// `ProcessSet`, `Workers`, `Stats#workers_size` and Web UI see Conveyor workers; pops one signal sent from there.
    public func heartbeat(_ beat: ProcessBeat) async throws -> ProcessSignal? {
        var commands = SidekiqCommands.heartbeatCommands(beat, keys: keys, now: JobTime.now())
        if let flow {
            let leases = held.withLock { Array($0.keys) }
            // First: the signal is read from the last reply.
            if !leases.isEmpty { commands.insert(flow.renewCommand(leases), at: 0) }
        }
        if keys.cluster {
            // Scripts cannot add a queue to `queues` on a cluster: each worker names the queues it serves.
            commands.insert(RedisCommand(["SADD", keys.queues] + served.map { $0 as any RedisArgument }), at: 0)
        }
        let replies = try await housekeepingRedis.run { [commands] connection in try connection.pipeline(commands) }
        return try SidekiqCommands.signal(in: replies)
    }

    public func deadProcesses() async throws -> [String] {
        try await ProcessRegistry.deadProcesses(housekeepingRedis, keys: keys)
    }

    public func claim(deadProcess process: String) async throws -> Bool {
        try await ProcessRegistry.claim(process, for: identity, housekeepingRedis, keys: keys)
    }

    public func forget(deadProcess dead: String) async throws {
        var commands: [RedisCommand] = []
        for slot in try await slots() {
            // Outcomes the dead process acknowledged but never stored: any result writer stores them.
            commands.append(RedisCommand("EVAL", LuaScripts.orphanJournal, 2, slot.outcomes(dead), slot.orphanedOutcomes))
            commands.append(RedisCommand("DEL", slot.acknowledged(dead)))
        }
        commands += ProcessRegistry.forgetting(dead, keys: keys)
        let replies = try await housekeepingRedis.run { [commands] connection in try connection.pipeline(commands) }
        for reply in replies { try reply.check() }
    }

    public func deregister() async throws {
        let slots = try await slots()
        let keys = keys
        let me = identity
        let replies = try await housekeepingRedis.run { connection in
            let lengths = try connection.pipeline(slots.map { RedisCommand("LLEN", $0.inflight(me)) })
            let left = try lengths.reduce(0) { $0 + (try $1.check().int ?? 0) }
            var commands = [
                RedisCommand("DEL", keys.heartbeat(me)),
                RedisCommand("SREM", keys.processes, me),
                RedisCommand("DEL", keys.process(me)),
                RedisCommand("DEL", keys.workers(me)),
            ]
            commands += slots.map { RedisCommand("DEL", $0.acknowledged(me)) }
            // Keep the process known to the reaper while anything is left in flight.
            if left == 0 { commands.append(RedisCommand("SREM", keys.conveyorProcesses, me)) }
            return try connection.pipeline(commands)
        }
        for reply in replies { try reply.check() }
    }

    // MARK: Scheduled and retried jobs

    /// Each slot's schedule and retry sets (Sidekiq's global ones on a single node), due members back onto their queue.
    public func promoteDueJobs() async throws {
        let limits = deadSet
        for slot in try await slots() {
            for set in [slot.schedule, slot.retry] {
                while true {
                    let now = JobTime.now()
                    let due = try await housekeepingRedis.run { connection in
                        try connection.command("ZRANGEBYSCORE", set, "-inf", now, "LIMIT", 0, 100).check().array ?? []
                    }
                    if due.isEmpty { break }
                    let commands = due.compactMap(\.bytes).map { SidekiqCommands.promoteCommand($0, from: set, keys: slot, now: now, limits: limits) }
                    let replies = try await housekeepingRedis.run { connection in try connection.pipeline(commands) }
                    for reply in replies { try reply.check() }
                    if due.count < 100 { break }
                }
            }
        }
    }
}

/// The cluster layout's name for the one backend: `SidekiqBackend` over `QueueKeys(cluster: true)` with the queues it
/// serves.
public typealias ClusterBackend = SidekiqBackend

extension Worker {
    /// A worker on Sidekiq's Redis layout: a `SidekiqBackend` for `configuration.identity`.
    public convenience init(
        redis endpoint: RedisEndpoint, keys: QueueKeys = QueueKeys(), deadSet: DeadSetLimits = DeadSetLimits(),
        registry: JobRegistry, configuration: WorkerConfiguration, observers: [any JobObserver] = [],
        journal: (any OutcomeJournal)? = nil, logger: Logger = Logger(label: "conveyor.worker")
    ) {
        self.init(
            backend: SidekiqBackend(
                redis: endpoint, keys: keys, identity: configuration.identity, queues: configuration.queues.names, deadSet: deadSet,
                logger: logger),
            registry: registry, configuration: configuration, observers: observers, journal: journal, logger: logger)
    }
}

/// A `WAIT` that timed out with fewer replicas than asked for (the writes stand on the master).
struct ReplicaShortfall: Error, CustomStringConvertible {
    var reached: Int
    var wanted: Int
    var description: String { "\(reached) of \(wanted) replicas confirmed within the WAIT timeout" }
}
