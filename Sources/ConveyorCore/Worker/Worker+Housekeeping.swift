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
        let commands = [
            RedisCommand("SET", keys.heartbeat(identity), JSONValue(now).text, "EX", configuration.heartbeatTTL),
            RedisCommand("SADD", keys.conveyorProcesses, identity),
            RedisCommand("SADD", keys.processes, identity),
            RedisCommand(
                "HSET", process, "info", info.bytes, "busy", dispatcher.running, "beat", JSONValue(now).text, "quiet",
                quiet.isSet ? "true" : "false", "rss", Self.residentKilobytes()),
            RedisCommand("EXPIRE", process, max(60, configuration.heartbeatTTL)),
            RedisCommand("RPOP", keys.signals(identity)),
        ]
        let replies = try await housekeepingRedis.run { [commands] connection in try connection.pipeline(commands) }
        for reply in replies { try reply.check() }
        switch replies.last?.text {
        case "TSTP"?: quietDown()
        case "TERM"?: shutdown()
        default: break
        }
    }

    func heartbeatLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.heartbeatInterval)
            if Task.isCancelled { return }
            do {
                try await heartbeat()
            } catch {
                logger.error("heartbeat failed", metadata: ["error": "\(error)"])
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
        while !Task.isCancelled {
            do {
                try await reapDeadProcesses()
            } catch {
                logger.error("reaper failed", metadata: ["error": "\(error)"])
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
            var commands: [RedisCommand] = []
            var buriedNow = 0
            for item in items {
                guard let raw = item.bytes else { continue }
                do {
                    let job = try Job(raw: raw)
                    let policy = registry[job.jobClass]?.retry ?? .default
                    let (payload, isDead) = JobTransitions.reaped(job, identity: dead, policy: policy, now: now)
                    if isDead {
                        buriedNow += 1
                        commands.append(
                            JobTransitions.moveToDead(keys: keys, from: inflight, raw: raw, payload: payload, now: now, limits: configuration.deadSet))
                        logger.error(
                            "job lost its worker too many times; moved to the dead set",
                            metadata: ["job.id": "\(job.jid)", "job.class": "\(job.jobClass)", "dead_process": "\(dead)"])
                    } else {
                        commands.append(
                            JobTransitions.moveToQueue(keys: keys, from: inflight, raw: raw, queue: job.queue, payload: payload.bytes, head: true))
                    }
                } catch {
                    buriedNow += 1
                    let payload = JobTransitions.quarantined(raw: raw, queue: "unknown", failure: error, now: now)
                    commands.append(
                        JobTransitions.moveToDead(keys: keys, from: inflight, raw: raw, payload: payload, now: now, limits: configuration.deadSet))
                }
            }
            let total = items.count
            commands.append(RedisCommand("INCRBY", keys.failed, total))
            commands.append(RedisCommand("INCRBY", keys.failed(day: JobTime.day(now)), total))
            let replies = try await housekeepingRedis.run { [commands] connection in try connection.pipeline(commands) }
            for reply in replies { try reply.check() }
            buried += buriedNow
            requeued += total - buriedNow
        }
        _ = try await housekeepingRedis.run { connection in
            try connection.pipeline([
                RedisCommand("SREM", keys.conveyorProcesses, dead),
                RedisCommand("SREM", keys.processes, dead),
                RedisCommand("DEL", keys.process(dead)),
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

    // MARK: Scheduled and retried jobs

    func promoterLoop() async {
        while !Task.isCancelled {
            do {
                try await promoteDueJobs()
            } catch {
                logger.error("moving due jobs failed", metadata: ["error": "\(error)"])
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
        let keys = keys
        let inflight = inflightKey
        var requeued = 0
        do {
            while true {
                let items = try await housekeepingRedis.run { connection in
                    try connection.command("LRANGE", inflight, -500, -1).check().array ?? []
                }
                if items.isEmpty { break }
                let commands = items.compactMap(\.bytes).map { raw -> RedisCommand in
                    let queue = (try? Job(raw: raw))?.queue ?? "default"
                    return JobTransitions.moveToQueue(keys: keys, from: inflight, raw: raw, queue: queue, payload: raw, head: true)
                }
                let replies = try await housekeepingRedis.run { [commands] connection in try connection.pipeline(commands) }
                for reply in replies { try reply.check() }
                requeued += commands.count
            }
        } catch {
            // The jobs stay in the in-flight list; the reaper of a live process will return them.
            logger.error("could not push unfinished jobs back; another worker's reaper will", metadata: ["error": "\(error)"])
        }
        return requeued
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
