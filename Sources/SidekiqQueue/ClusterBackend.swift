public import ConveyorCore
import Foundation
public import Logging
public import Redis
import Synchronization

/// The queue backend on a Redis Cluster, in the cluster layout (`QueueKeys+Cluster`): each queue's in-flight
/// lists, outcome journals, retry, schedule and dead sets and counters share the slot of its Sidekiq ready list,
/// so every script and transaction touches one slot, and queues spread over the shards.
///
/// What `SidekiqBackend` does in one step for the whole process happens here once per queue: a fetch takes from
/// each queue into that queue's in-flight list, a batch of completions is one `MULTI`/`EXEC` per queue (each with
/// its own batch marker), the promoter walks each queue's schedule and retry sets. The connection routes every
/// command to its slot's master and follows `MOVED`/`ASK`; a batch resent after an outage reads each queue's
/// marker and sends only the queues it had not applied.
public final class ClusterBackend: QueueBackend {
    public let identity: String
    public let keys: QueueKeys
    public let deadSet: DeadSetLimits
    /// `WAIT` after each queue's batch: the master that took it is the one asked.
    public let replicas: ReplicaWait
    /// The journal name the worker knows this process by; the journals themselves are per queue.
    public var journalName: String { keys.outcomes(identity) }

    private let endpoint: RedisEndpoint
    private let logger: Logger
    private let served: [String]
    private let fetchRedis: RedisThread
    private let ackRedis: RedisThread
    private let housekeepingRedis: RedisThread
    private let waiters = Mutex<[String: RedisThread]>([:])
    /// Paused queue names, refreshed at most once a second.
    private let paused: PausedQueues
    /// The queue each job held in an in-flight list came from, per process (this one, and those being reaped):
    /// the list a move leaves and the journal its entry goes to depend on it. Counted, for identical payloads.
    private let origins = Mutex<[String: [[UInt8]: (queue: String, count: Int)]]>([:])
    /// Queues known to be worked: the served ones plus the `queues` set, read again by housekeeping.
    private let known: Mutex<[String]>
    private let replicaShortfall = OutageLog("waiting for CONVEYOR_REDIS_WAIT_REPLICAS replicas after job completions")

    /// - Parameter queues: the queues this process serves (their keys are watched even before they are in `queues`).
    public init(
        redis endpoint: RedisEndpoint, keys: QueueKeys, identity: String, queues: [String], deadSet: DeadSetLimits = DeadSetLimits(),
        replicas: ReplicaWait = .none, logger: Logger = Logger(label: "conveyor.worker")
    ) {
        precondition(keys.cluster, "ClusterBackend takes the cluster layout: QueueKeys(cluster: true)")
        self.endpoint = endpoint
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

    // MARK: Where jobs came from

    private func remember(_ raw: [UInt8], queue: String, process: String) {
        origins.withLock { o in
            let entry = o[process]?[raw]
            o[process, default: [:]][raw] = (queue, (entry?.count ?? 0) + 1)
        }
    }

    /// The queue `raw` was taken from into `process`'s in-flight lists: remembered, else the job's own `queue`.
    private func origin(of raw: [UInt8], process: String) -> String {
        if let queue = origins.withLock({ $0[process]?[raw]?.queue }) { return queue }
        return (try? Job(raw: raw))?.queue ?? served.first ?? "default"
    }

    public func release(_ move: JobTransitions.Move, fromInflightOf process: String) -> String {
        let queue = origins.withLock { o -> String? in
            guard let entry = o[process]?[move.raw] else { return nil }
            if entry.count <= 1 {
                o[process]![move.raw] = nil
                if o[process]!.isEmpty { o[process] = nil }
            } else {
                o[process]![move.raw] = (entry.queue, entry.count - 1)
            }
            return entry.queue
        }
        return keys.outcomes(identity, queue: queue ?? origin(of: move.raw, process: process))
    }

    /// Moves grouped by the queue their job came from, in first-seen order, with each move's index.
    private func grouped(_ moves: [JobTransitions.Move], process: String) -> [(queue: String, indices: [Int])] {
        var order: [String] = []
        var groups: [String: [Int]] = [:]
        for (i, move) in moves.enumerated() {
            let queue = origin(of: move.raw, process: process)
            if groups[queue] == nil { order.append(queue) }
            groups[queue, default: []].append(i)
        }
        return order.map { ($0, groups[$0]!) }
    }

    // MARK: Fetching

    public func fetch(from order: [String], count: Int) async throws -> [FetchedJob] {
        let keys = keys
        let me = identity
        let paused = try await self.paused.names(fetchRedis)
        let order = paused.isEmpty ? order : order.filter { !paused.contains($0) }
        if order.isEmpty { return [] }
        let taken = try await fetchRedis.run { connection -> [FetchedJob] in
            var jobs: [FetchedJob] = []
            for queue in order where jobs.count < count {
                let reply = try connection.command(
                    "EVAL", LuaScripts.fetch, 2, keys.inflight(me, queue: queue), keys.queue(queue), count - jobs.count
                ).check()
                let items = reply.array ?? []
                var i = 0
                while i + 1 < items.count {
                    jobs.append(FetchedJob(raw: items[i + 1].bytes ?? [], queue: queue))
                    i += 2
                }
            }
            return jobs
        }
        for job in taken { remember(job.raw, queue: job.queue, process: identity) }
        return taken
    }

    public func waitForJob(on queue: String, timeout: Double) async throws -> [UInt8]? {
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
        let source = keys.queue(queue)
        let inflight = keys.inflight(identity, queue: queue)
        let reply = try await redis.run { connection in
            try connection.command("BLMOVE", source, inflight, "RIGHT", "LEFT", timeout).check()
        }
        if let raw = reply.bytes { remember(raw, queue: queue, process: identity) }
        return reply.bytes
    }

    // MARK: Leaving the in-flight lists

    /// One `MULTI`/`EXEC` per queue of the batch, all in one pipeline (split per master by the connection). A resent
    /// batch first reads each queue's marker and sends only the queues whose transaction had not applied.
    public func complete(_ moves: [JobTransitions.Move], batch sequence: UInt64, resent: Bool) async throws -> Bool {
        let keys = keys
        let me = identity
        let now = JobTime.now()
        let limits = deadSet
        let groups = grouped(moves, process: identity)
        let wait = replicas
        let logger = logger
        let shortfall = replicaShortfall
        return try await ackRedis.run { connection in
            var pending = groups
            if resent {
                // Applied before the reply was lost: those queues' transactions are not sent again.
                let markers = try connection.pipeline(groups.map { RedisCommand("GET", keys.acknowledged(me, queue: $0.queue)) })
                pending = []
                for (group, marker) in zip(groups, markers) where try marker.check().text != String(sequence) { pending.append(group) }
            }
            if pending.isEmpty { return true }
            var commands: [RedisCommand] = []
            var spans: [(range: Range<Int>, count: Int, waits: Bool)] = []
            for group in pending {
                let start = commands.count
                commands += SidekiqCommands.batchCommands(
                    keys: keys.slot(group.queue), source: keys.inflight(me, queue: group.queue), journal: keys.outcomes(me, queue: group.queue),
                    marker: keys.acknowledged(me, queue: group.queue), sequence: sequence, moves: group.indices.map { moves[$0] }, now: now,
                    limits: limits)
                let end = commands.count
                commands += wait.commands
                spans.append((start..<end, group.indices.count, wait.replicas > 0))
            }
            let replies = try connection.pipeline(commands)
            var refused = false
            for span in spans {
                if span.waits, let reached = replies[span.range.upperBound].int {
                    if reached < wait.replicas {
                        shortfall.failed(ReplicaShortfall(reached: reached, wanted: wait.replicas), logger: logger)
                    } else {
                        shortfall.succeeded(logger: logger)
                    }
                }
                do throws(RedisError) {
                    try SidekiqCommands.checkBatch(Array(replies[span.range]), count: span.count)
                } catch where error.isTransient {
                    throw error
                } catch {
                    logger.critical("redis rejected a batch of job completions", metadata: ["error": "\(error)", "moves": "\(span.count)"])
                    refused = true
                }
            }
            return !refused
        }
    }

    public func apply(_ moves: [JobTransitions.Move], fromInflightOf process: String, journalField: String) async throws -> [Bool] {
        if moves.isEmpty { return [] }
        let keys = keys
        let me = identity
        let now = JobTime.now()
        let limits = deadSet
        let groups = grouped(moves, process: process)
        return try await housekeepingRedis.run { connection in
            var commands: [RedisCommand] = []
            var spans: [Range<Int>] = []
            for group in groups {
                let start = commands.count
                commands += SidekiqCommands.applyCommands(
                    keys: keys.slot(group.queue), source: keys.inflight(process, queue: group.queue), journal: keys.outcomes(me, queue: group.queue),
                    journalField: journalField, moves: group.indices.map { moves[$0] }, now: now, limits: limits)
                spans.append(start..<commands.count)
            }
            let replies = try connection.pipeline(commands)
            var flags = [Bool](repeating: false, count: moves.count)
            for (group, span) in zip(groups, spans) {
                let applied = try SidekiqCommands.applied(Array(replies[span]), count: group.indices.count)
                for (index, done) in zip(group.indices, applied) { flags[index] = done }
            }
            return flags
        }
    }

    public func inflightJobs(of process: String, limit: Int?) async throws -> [[UInt8]] {
        let queues = try await knownQueues()
        let keys = keys
        let start = limit.map { -max(1, $0) } ?? 0
        let lists = try await housekeepingRedis.run { connection in
            try connection.pipeline(queues.map { RedisCommand("LRANGE", keys.inflight(process, queue: $0), start, -1) })
        }
        var jobs: [[UInt8]] = []
        for (queue, reply) in zip(queues, lists) {
            for raw in try reply.check().array?.compactMap(\.bytes) ?? [] {
                if let limit, jobs.count >= limit { break }
                jobs.append(raw)
                if origins.withLock({ $0[process]?[raw] == nil }) { remember(raw, queue: queue, process: process) }
            }
        }
        return jobs
    }

    /// The served queues and those in the `queues` set (producers add theirs; every worker's heartbeat adds its own).
    private func knownQueues() async throws -> [String] {
        let keys = keys
        let listed = try await housekeepingRedis.run { connection in
            try connection.command("SMEMBERS", keys.queues).check().array?.compactMap(\.text) ?? []
        }
        let all = known.withLock { k in
            for queue in listed where !k.contains(queue) && QueueKeys.isClusterSafe(queue: queue) { k.append(queue) }
            return k
        }
        return all
    }

    // MARK: Liveness

    public func heartbeat(_ beat: ProcessBeat) async throws -> ProcessSignal? {
        var commands = SidekiqCommands.heartbeatCommands(beat, keys: keys, now: JobTime.now())
        // Scripts cannot add a queue to `queues` on a cluster: each worker names the queues it serves.
        commands.insert(RedisCommand(["SADD", keys.queues] + served.map { $0 as any RedisArgument }), at: 0)
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
        let queues = try await knownQueues()
        let keys = keys
        var commands: [RedisCommand] = []
        for queue in queues {
            commands.append(RedisCommand("EVAL", LuaScripts.orphanJournal, 2, keys.outcomes(dead, queue: queue), keys.orphanedOutcomes(queue: queue)))
            commands.append(RedisCommand("DEL", keys.acknowledged(dead, queue: queue)))
        }
        commands += ProcessRegistry.forgetting(dead, keys: keys)
        let replies = try await housekeepingRedis.run { [commands] connection in try connection.pipeline(commands) }
        for reply in replies { try reply.check() }
        _ = origins.withLock { $0.removeValue(forKey: dead) }
    }

    public func deregister() async throws {
        let queues = try await knownQueues()
        let keys = keys
        let me = identity
        let replies = try await housekeepingRedis.run { connection in
            let lengths = try connection.pipeline(queues.map { RedisCommand("LLEN", keys.inflight(me, queue: $0)) })
            let left = try lengths.reduce(0) { $0 + (try $1.check().int ?? 0) }
            var commands = [
                RedisCommand("DEL", keys.heartbeat(me)),
                RedisCommand("SREM", keys.processes, me),
                RedisCommand("DEL", keys.process(me)),
                RedisCommand("DEL", keys.workers(me)),
            ]
            commands += queues.map { RedisCommand("DEL", keys.acknowledged(me, queue: $0)) }
            if left == 0 { commands.append(RedisCommand("SREM", keys.conveyorProcesses, me)) }
            return try connection.pipeline(commands)
        }
        for reply in replies { try reply.check() }
    }

    // MARK: Scheduled and retried jobs

    /// Each queue's schedule and retry sets, due members back onto that queue.
    public func promoteDueJobs() async throws {
        let keys = keys
        let limits = deadSet
        for queue in try await knownQueues() {
            let slot = keys.slot(queue)
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
