public import ConveyorCore
import Foundation
public import Logging
public import Redis
import Synchronization

/// The queue backend in Sidekiq's Redis layout (`QueueKeys`): queues are lists a reliable fetch moves into a
/// per-process in-flight list, completions are `MULTI`/`EXEC` batches with a numbered marker, the rarer moves
/// (reaping, requeueing) are one Lua script per batch, and the process hash, its `:workers` hash and the signal
/// list are Sidekiq's own, so Sidekiq's API and Web UI see Conveyor's processes.
///
/// Each kind of caller gets its own connection (fetching, completions, housekeeping, one waiter per queue), so a
/// slow reaper never delays an ack and a waiter blocked in `BLMOVE` never delays a fetch.
public final class SidekiqBackend: QueueBackend {
    public let identity: String
    public let keys: QueueKeys
    public let deadSet: DeadSetLimits
    /// Replicas each batch of completions waits for (`CONVEYOR_REDIS_WAIT_REPLICAS`).
    public let replicas: ReplicaWait
    public var journalName: String { keys.outcomes(identity) }

    private let endpoint: RedisEndpoint
    private let logger: Logger
    private let fetchRedis: RedisThread
    private let ackRedis: RedisThread
    private let housekeepingRedis: RedisThread
    private let waiters = Mutex<[String: RedisThread]>([:])
    /// Logs a run of batches that reached fewer replicas than wanted once, not once per batch.
    private let replicaShortfall = OutageLog("waiting for CONVEYOR_REDIS_WAIT_REPLICAS replicas after job completions")
    private let inflight: String
    /// Paused queue names, refreshed at most once a second.
    private let paused: PausedQueues

    public init(
        redis endpoint: RedisEndpoint, keys: QueueKeys = QueueKeys(), identity: String, deadSet: DeadSetLimits = DeadSetLimits(),
        replicas: ReplicaWait = .none, logger: Logger = Logger(label: "conveyor.worker")
    ) {
        self.replicas = replicas
        self.endpoint = endpoint
        self.keys = keys
        paused = PausedQueues(keys: keys)
        self.identity = identity
        self.deadSet = deadSet
        self.logger = logger
        self.inflight = keys.inflight(identity)
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

    // MARK: Fetching

    public func fetch(from order: [String], count: Int) async throws -> [FetchedJob] {
        let paused = try await self.paused.names(fetchRedis)
        let order = paused.isEmpty ? order : order.filter { !paused.contains($0) }
        if order.isEmpty { return [] }
        var arguments: [any RedisArgument] = ["EVAL", LuaScripts.fetch, order.count + 1, inflight]
        arguments += order.map { keys.queue($0) }
        arguments.append(count)
        let command = RedisCommand(arguments)
        let reply = try await fetchRedis.run { connection in try connection.command(command).check() }
        guard let items = reply.array else { return [] }
        var jobs: [FetchedJob] = []
        jobs.reserveCapacity(items.count / 2)
        var i = 0
        while i + 1 < items.count {
            let index = items[i].int ?? 1
            jobs.append(FetchedJob(raw: items[i + 1].bytes ?? [], queue: order[max(0, min(order.count - 1, index - 1))]))
            i += 2
        }
        return jobs
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
        let inflight = inflight
        let reply = try await redis.run { connection in
            try connection.command("BLMOVE", source, inflight, "RIGHT", "LEFT", timeout).check()
        }
        return reply.bytes
    }

    // MARK: Leaving the in-flight list

    /// One `MULTI`/`EXEC` (`SidekiqCommands.batchCommands`). A resent batch reads its marker first: if the earlier
    /// send applied, it is not sent again.
    public func complete(_ moves: [JobTransitions.Move], batch sequence: UInt64, resent: Bool) async throws -> Bool {
        let marker = keys.acknowledged(identity)
        let commands = SidekiqCommands.batchCommands(
            keys: keys.slot(""), source: inflight, journal: journalName, marker: marker, sequence: sequence, moves: moves,
            now: JobTime.now(), limits: deadSet)
        let count = moves.count
        let logger = logger
        let wait = replicas
        let shortfall = replicaShortfall
        return try await ackRedis.run { [commands] connection in
            if resent, try connection.command("GET", marker).check().text == String(sequence) {
                // Applied before the reply was lost: whole, journal included.
                return true
            }
            var replies = try connection.pipeline(commands + wait.commands)
            if wait.replicas > 0, let reached = replies.popLast()?.int {
                if reached < wait.replicas {
                    shortfall.failed(ReplicaShortfall(reached: reached, wanted: wait.replicas), logger: logger)
                } else {
                    shortfall.succeeded(logger: logger)
                }
            }
            do throws(RedisError) {
                try SidekiqCommands.checkBatch(replies, count: count)
                return true
            } catch where error.isTransient {
                throw error
            } catch {
                // A refused transaction is a bug, not an outage: sending it again would fail again. Report it and move on.
                logger.critical("redis rejected a batch of job completions", metadata: ["error": "\(error)", "moves": "\(count)"])
                return false
            }
        }
    }

    public func apply(_ moves: [JobTransitions.Move], fromInflightOf process: String, journalField: String) async throws -> [Bool] {
        if moves.isEmpty { return [] }
        let commands = SidekiqCommands.applyCommands(
            keys: keys.slot(""), source: keys.inflight(process), journal: journalName, journalField: journalField, moves: moves,
            now: JobTime.now(), limits: deadSet)
        let count = moves.count
        return try await housekeepingRedis.run { connection in
            try SidekiqCommands.applied(try connection.pipeline(commands), count: count)
        }
    }

    public func inflightJobs(of process: String, limit: Int?) async throws -> [[UInt8]] {
        let list = keys.inflight(process)
        // Jobs are pushed on the left: the oldest are on the right, the limit keeps those.
        let start = limit.map { -max(1, $0) } ?? 0
        let items = try await housekeepingRedis.run { connection in
            try connection.command("LRANGE", list, start, -1).check().array ?? []
        }
        return items.compactMap(\.bytes)
    }

    // MARK: Liveness

    /// Conveyor's heartbeat lease plus Sidekiq's process hash and `<identity>:workers` hash, so Sidekiq's
    /// `ProcessSet`, `Workers`, `Stats#workers_size` and Web UI see Conveyor workers; pops one signal sent from there.
    public func heartbeat(_ beat: ProcessBeat) async throws -> ProcessSignal? {
        let commands = SidekiqCommands.heartbeatCommands(beat, keys: keys, now: JobTime.now())
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
        let keys = keys
        let replies = try await housekeepingRedis.run { connection in
            try connection.pipeline([
                // Outcomes the dead process acknowledged but never stored: any result writer stores them.
                RedisCommand("EVAL", LuaScripts.orphanJournal, 2, keys.outcomes(dead), keys.orphanedOutcomes),
                RedisCommand("DEL", keys.acknowledged(dead)),
            ] + ProcessRegistry.forgetting(dead, keys: keys))
        }
        for reply in replies { try reply.check() }
    }

    public func deregister() async throws {
        let keys = keys
        let me = identity
        let inflight = inflight
        let replies = try await housekeepingRedis.run { connection in
            let left = try connection.command("LLEN", inflight).check().int ?? 0
            var commands = [
                RedisCommand("DEL", keys.heartbeat(me)),
                RedisCommand("SREM", keys.processes, me),
                RedisCommand("DEL", keys.process(me)),
                RedisCommand("DEL", keys.workers(me)),
                RedisCommand("DEL", keys.acknowledged(me)),
            ]
            // Keep the process known to the reaper while anything is left in flight.
            if left == 0 { commands.append(RedisCommand("SREM", keys.conveyorProcesses, me)) }
            return try connection.pipeline(commands)
        }
        for reply in replies { try reply.check() }
    }

    // MARK: Scheduled and retried jobs

    public func promoteDueJobs() async throws {
        let keys = keys
        for set in [keys.schedule, keys.retry] {
            while true {
                let now = JobTime.now()
                let due = try await housekeepingRedis.run { connection in
                    try connection.command("ZRANGEBYSCORE", set, "-inf", now, "LIMIT", 0, 100).check().array ?? []
                }
                if due.isEmpty { break }
                let commands = due.compactMap(\.bytes).map { SidekiqCommands.promoteCommand($0, from: set, keys: keys.slot(""), now: now, limits: deadSet) }
                let replies = try await housekeepingRedis.run { connection in try connection.pipeline(commands) }
                for reply in replies { try reply.check() }
                if due.count < 100 { break }
            }
        }
    }
}

extension Worker {
    /// A worker on Sidekiq's Redis layout: a `SidekiqBackend` for `configuration.identity`.
    public convenience init(
        redis endpoint: RedisEndpoint, keys: QueueKeys = QueueKeys(), deadSet: DeadSetLimits = DeadSetLimits(),
        registry: JobRegistry, configuration: WorkerConfiguration, observers: [any JobObserver] = [],
        journal: (any OutcomeJournal)? = nil, logger: Logger = Logger(label: "conveyor.worker")
    ) {
        self.init(
            backend: SidekiqBackend(redis: endpoint, keys: keys, identity: configuration.identity, deadSet: deadSet, logger: logger),
            registry: registry, configuration: configuration, observers: observers, journal: journal, logger: logger)
    }
}

/// A `WAIT` that timed out with fewer replicas than asked for (the writes stand on the master).
struct ReplicaShortfall: Error, CustomStringConvertible {
    var reached: Int
    var wanted: Int
    var description: String { "\(reached) of \(wanted) replicas confirmed within the WAIT timeout" }
}
