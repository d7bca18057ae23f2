import Foundation
import Logging
import Redis

extension Worker {
    // MARK: Heartbeat

    /// Proves this process alive: Conveyor's heartbeat lease plus Sidekiq's process hash, so Sidekiq's
    /// `ProcessSet`, `Stats#workers_size` and Web UI see Conveyor workers. Also reads signals sent from there.
    func heartbeat() async throws {
        let now = JobTime.now()
        var info = JSONObject()
        info["hostname"] = .string(ProcessInfo.processInfo.hostName)
        info["started_at"] = JSONValue(startedAt)
        info["pid"] = JSONValue(Int(getpid()))
        info["tag"] = .string(configuration.tag)
        info["concurrency"] = JSONValue(configuration.concurrency)
        info["queues"] = .array(configuration.queues.names.map { .string($0) })
        info["labels"] = .array([.string("conveyor")])
        info["identity"] = .string(identity)
        let process = keys.process(identity)
        let workersKey = keys.workers(identity)
        // Sidekiq's heartbeat rewrites the hash of running jobs whole; so does this one.
        let running = runningJobs.withLock { $0 }
        var workers: [any RedisArgument] = ["HSET", workersKey]
        for (token, job) in running {
            var entry = JSONObject()
            entry["queue"] = .string(job.queue)
            entry["payload"] = .string(String(decoding: job.raw, as: UTF8.self))
            entry["run_at"] = JSONValue(job.runAt)
            workers += [String(token, radix: 36), entry.bytes]
        }
        var commands = [
            RedisCommand("SET", keys.heartbeat(identity), JSONValue(now).text, "EX", configuration.heartbeatTTL),
            RedisCommand("SADD", keys.conveyorProcesses, identity),
            RedisCommand("SADD", keys.processes, identity),
            RedisCommand(
                "HSET", process, "info", info.bytes, "busy", dispatcher.running, "beat", JSONValue(now).text, "quiet",
                quiet.isSet ? "true" : "false", "rss", Self.residentKilobytes()),
            RedisCommand("EXPIRE", process, max(60, configuration.heartbeatTTL)),
            RedisCommand("UNLINK", workersKey),
        ]
        if !running.isEmpty {
            commands.append(RedisCommand(workers))
            commands.append(RedisCommand("EXPIRE", workersKey, 60))
        }
        commands.append(RedisCommand("RPOP", keys.signals(identity)))
        let replies = try await housekeepingRedis.run { [commands] connection in try connection.pipeline(commands) }
        for reply in replies { try reply.check() }
        switch replies.last?.text {
        case "TSTP"?: quietDown()
        case "TERM"?: shutdown()
        default: break
        }
    }

    func heartbeatLoop() async {
        let outage = OutageLog("heartbeat")
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.heartbeatInterval)
            if Task.isCancelled { return }
            do {
                try await heartbeat()
                outage.succeeded(logger: logger)
            } catch {
                outage.failed(error, logger: logger)
            }
        }
    }

    private static func residentKilobytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        return 0
    }

    // MARK: Reaping dead processes

    func reaperLoop() async {
        let outage = OutageLog("reaping dead processes")
        while !Task.isCancelled {
            do {
                try await reapDeadProcesses()
                outage.succeeded(logger: logger)
            } catch {
                outage.failed(error, logger: logger)
            }
            let jitter = Double.random(in: 0.8...1.2)
            try? await Task.sleep(for: configuration.heartbeatInterval * jitter)
        }
    }

    /// Puts the in-flight jobs of every process whose heartbeat lease expired back on their queues, counting the
    /// lost run as a failed attempt: a job that kills its worker every time ends in the dead set as `WorkerLost`.
    func reapDeadProcesses() async throws {
        let keys = keys
        let me = identity
        let members = try await housekeepingRedis.run { connection in
            try connection.command("SMEMBERS", keys.conveyorProcesses).check().array ?? []
        }
        let others = members.compactMap(\.text).filter { $0 != me }
        guard !others.isEmpty else { return }
        let alive = try await housekeepingRedis.run { connection in
            try connection.pipeline(others.map { RedisCommand("EXISTS", keys.heartbeat($0)) })
        }
        for (other, exists) in zip(others, alive) where exists.int == 0 {
            try await reap(other)
        }
    }

    private func reap(_ dead: String) async throws {
        let keys = keys
        let lockKey = keys.reapLock(dead)
        let me = identity
        let locked = try await housekeepingRedis.run { connection in
            try connection.command("SET", lockKey, me, "NX", "EX", 60).check()
        }
        guard locked.text == "OK" else { return }
        let inflight = keys.inflight(dead)
        var requeued = 0
        var buried = 0
        while true {
            let items = try await housekeepingRedis.run { connection in
                try connection.command("LRANGE", inflight, -500, -1).check().array ?? []
            }
            if items.isEmpty { break }
            let now = JobTime.now()
            var moves: [JobTransitions.Move] = []
            var outcomes: [JobOutcome?] = []
            for item in items {
                guard let raw = item.bytes else { continue }
                do {
                    let job = try Job(raw: raw)
                    let policy = registry[job.jobClass]?.retry ?? .default
                    let (payload, isDead) = JobTransitions.reaped(job, identity: dead, policy: policy, now: now)
                    if isDead {
                        // Whoever decides a job's end records it: the reaper journals the outcome with the move.
                        let outcome = JobOutcome(
                            jid: job.jid, jobClass: job.jobClass, queue: job.queue, status: .dead, attempts: job.previousFailures + 1,
                            result: nil, failure: JobTransitions.workerLost(dead), enqueuedAt: job.enqueuedAt,
                            startedAt: now, finishedAt: now, payload: payload)
                        moves.append(.init(raw: raw, target: .dead(payload: payload.bytes), counts: .failed, journal: journalEntry(for: outcome)))
                        outcomes.append(outcome)
                    } else {
                        moves.append(.init(raw: raw, target: .queue(job.queue, payload: payload.bytes, head: true), counts: .failed))
                        outcomes.append(nil)
                    }
                } catch {
                    let payload = JobTransitions.quarantined(raw: raw, queue: "unknown", failure: error, now: now)
                    let outcome = JobOutcome(
                        jid: payload["jid"]?.stringValue ?? "", jobClass: "conveyor.malformed", queue: "unknown", status: .dead,
                        attempts: 1, result: nil, failure: error, enqueuedAt: nil, startedAt: now, finishedAt: now, payload: payload)
                    moves.append(.init(raw: raw, target: .dead(payload: payload.bytes), counts: .failed, journal: journalEntry(for: outcome)))
                    outcomes.append(outcome)
                }
            }
            let field = "r\(journalSequence.add(1, ordering: .relaxed).newValue)"
            let applied = try await apply(moves, from: inflight, now: now, journalField: field)
            var entries: [JobTransitions.Move.JournalEntry] = []
            for (i, done) in applied.enumerated() where done {
                if let outcome = outcomes[i] {
                    buried += 1
                    if var entry = moves[i].journal {
                        entry.field = field
                        entries.append(entry)
                    }
                    logger.error(
                        "job lost its worker too many times; moved to the dead set",
                        metadata: ["job.id": "\(outcome.jid)", "job.class": "\(outcome.jobClass)", "dead_process": "\(dead)"])
                    for observer in observers { observer.jobFinished(outcome) }
                } else {
                    requeued += 1
                }
            }
            if !entries.isEmpty { journal?.journaled(key: journalKey, entries: entries) }
        }
        _ = try await housekeepingRedis.run { connection in
            try connection.pipeline([
                // Outcomes the dead process acknowledged but never stored: any result writer stores them.
                RedisCommand("EVAL", LuaScripts.orphanJournal, 2, keys.outcomes(dead), keys.orphanedOutcomes),
                RedisCommand("SREM", keys.conveyorProcesses, dead),
                RedisCommand("SREM", keys.processes, dead),
                RedisCommand("DEL", keys.process(dead)),
                RedisCommand("DEL", keys.workers(dead)),
                RedisCommand("DEL", keys.acknowledged(dead)),
                RedisCommand("DEL", lockKey),
            ])
        }
        if requeued + buried > 0 {
            logger.warning(
                "reaped the jobs of a dead worker process",
                metadata: ["dead_process": "\(dead)", "requeued": "\(requeued)", "dead": "\(buried)"])
        }
        for observer in observers { observer.jobsReaped(count: requeued + buried, requeued: requeued, dead: buried) }
    }

    /// Applies moves out of `source` on the housekeeping connection; returns which were applied.
    /// - Parameter journalField: where the moves' journal entries go (at most `movesPerScript` journaled moves).
    func apply(_ moves: [JobTransitions.Move], from source: String, now: Double = JobTime.now(), journalField: String = "")
        async throws -> [Bool]
    {
        if moves.isEmpty { return [] }
        let commands = JobTransitions.applyCommands(
            keys: keys, source: source, journal: journalKey, journalField: journalField, moves: moves, now: now,
            limits: configuration.deadSet)
        let count = moves.count
        return try await housekeepingRedis.run { connection in
            try JobTransitions.applied(try connection.pipeline(commands), count: count)
        }
    }

    // MARK: Scheduled and retried jobs

    func promoterLoop() async {
        let outage = OutageLog("moving due scheduled and retried jobs")
        while !Task.isCancelled {
            do {
                try await promoteDueJobs()
                outage.succeeded(logger: logger)
            } catch {
                outage.failed(error, logger: logger)
            }
            try? await Task.sleep(for: configuration.pollInterval * Double.random(in: 0.5...1.5))
        }
    }

    /// Moves due jobs from `schedule` and `retry` onto their queues, each only once across all processes.
    func promoteDueJobs() async throws {
        let keys = keys
        for set in [keys.schedule, keys.retry] {
            while true {
                let now = JobTime.now()
                let due = try await housekeepingRedis.run { connection in
                    try connection.command("ZRANGEBYSCORE", set, "-inf", now, "LIMIT", 0, 100).check().array ?? []
                }
                if due.isEmpty { break }
                var commands: [RedisCommand] = []
                for member in due {
                    guard let raw = member.bytes else { continue }
                    if let job = try? Job(raw: raw) {
                        let payload = JobTransitions.enqueued(job.payload, now: now)
                        commands.append(
                            RedisCommand(["EVAL", LuaScripts.promote, 3, set, keys.queue(job.queue), keys.queues, raw, payload.bytes, job.queue]))
                    } else {
                        let failure = JobFailure.permanent("MalformedJob", "member of \(set) is not a runnable job")
                        let payload = JobTransitions.quarantined(raw: raw, queue: "unknown", failure: failure, now: now)
                        let limits = configuration.deadSet
                        commands.append(
                            RedisCommand(["EVAL", LuaScripts.bury, 2, set, keys.dead, raw, payload.bytes, now, limits.maxJobs, now - limits.maxAge]))
                    }
                }
                let replies = try await housekeepingRedis.run { [commands] connection in try connection.pipeline(commands) }
                for reply in replies { try reply.check() }
                if due.count < 100 { break }
            }
        }
    }

    // MARK: Shutdown

    /// Pushes everything still in this process's in-flight list back to the head of its queue, unchanged:
    /// a job interrupted by shutdown does not spend an attempt.
    func requeueInflight() async -> Int {
        let inflight = inflightKey
        var requeued = 0
        do {
            while true {
                let items = try await housekeepingRedis.run { connection in
                    try connection.command("LRANGE", inflight, -500, -1).check().array ?? []
                }
                if items.isEmpty { break }
                let moves = items.compactMap(\.bytes).map(Self.requeue)
                requeued += try await apply(moves, from: inflight).filter { $0 }.count
            }
        } catch {
            // The jobs stay in the in-flight list; the reaper of a live process will return them.
            logger.error("could not push unfinished jobs back; another worker's reaper will", metadata: ["error": "\(error)"])
        }
        return requeued
    }

    /// Back to the head of its queue, unchanged and uncounted.
    static func requeue(_ raw: [UInt8]) -> JobTransitions.Move {
        let queue = (try? Job(raw: raw))?.queue ?? "default"
        return .init(raw: raw, target: .queue(queue, payload: raw, head: true), counts: .none)
    }

    // MARK: Reconciling after a lost fetch reply

    /// After a fetch failed, the jobs it moved in Redis may sit in this process's in-flight list with nobody
    /// running them (the reply was lost with the connection). With fetches held, every job in the list that this
    /// process does not hold goes back to the head of its queue, unchanged: no attempt counted. Retried until Redis
    /// answers, so such a job waits at most about one heartbeat interval after Redis is back.
    func reconcileLoop() async {
        let outage = OutageLog("returning jobs whose fetch reply was lost")
        while !Task.isCancelled {
            // Woken by a failed fetch, or by shutdown after it cancelled this loop.
            await reconcileNeeded.wait()
            if Task.isCancelled { return }
            await ledger.close()
            reconcileNeeded.reset()
            var attempt = 0
            // Shutdown gives up: the gate opens so the fetchers can see it, and whatever is left in the list goes
            // back with the rest of the in-flight jobs (or to a live worker's reaper).
            while !Task.isCancelled && !quiet.isSet {
                do {
                    let returned = try await reconcile()
                    outage.succeeded(logger: logger)
                    if returned > 0 {
                        logger.warning("returned jobs whose fetch reply was lost to their queues", metadata: ["returned": "\(returned)"])
                    }
                    break
                } catch {
                    outage.failed(error, logger: logger)
                    attempt += 1
                    try? await Task.sleep(for: .milliseconds(min(1000, 50 * (1 << min(attempt, 5)))))
                }
            }
            ledger.open()
        }
    }

    /// One reconciliation pass; call with the ledger's gate closed. Returns how many jobs went back.
    func reconcile() async throws -> Int {
        let inflight = inflightKey
        let items = try await housekeepingRedis.run { connection in
            try connection.command("LRANGE", inflight, 0, -1).check().array ?? []
        }
        let orphans = ledger.orphans(in: items.compactMap(\.bytes))
        if orphans.isEmpty { return 0 }
        return try await apply(orphans.map(Self.requeue), from: inflight).filter { $0 }.count
    }

    func deregister() async {
        let keys = keys
        let me = identity
        let inflight = inflightKey
        do {
            _ = try await housekeepingRedis.run { connection in
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
        } catch {
            logger.error("could not deregister this process", metadata: ["error": "\(error)"])
        }
    }
}
