public import ConveyorCore
public import Redis

/// The Redis commands behind every move of a job out of an in-flight list, in Sidekiq's layout: one place builds
/// each transition; the payload rewrites themselves are `JobTransitions`' (the job core's).
public enum SidekiqCommands {
    typealias Move = JobTransitions.Move

    /// Most moves in one script call: a long script blocks Redis for everyone else.
    static let movesPerScript = 500

    /// The script calls that apply `moves` out of `source`, in order, `movesPerScript` at a time. Each call replies
    /// with one 1 (applied) or 0 (the source no longer held the job) per move.
    /// - Parameter journal: the hash that journal entries go to (this process's outcome journal).
    /// - Parameter journalField: the field this batch's journal entries go to (`movesPerScript` at most per field:
    ///   a longer batch takes `journalField.1`, `.2`, ... for its later script calls).
    static func applyCommands(
        keys: SlotKeys, source: String, journal: String, journalField: String, moves: [Move], now: Double, limits: DeadSetLimits
    ) -> [RedisCommand] {
        let day = JobTime.day(now)
        var commands: [RedisCommand] = []
        var start = 0
        while start < moves.count {
            let chunk = moves[start..<min(moves.count, start + movesPerScript)]
            start += chunk.count
            var queueKeys: [String] = []
            var queueIndex: [String: Int] = [:]
            var entries: [any RedisArgument] = []
            entries.reserveCapacity(chunk.count * 8)
            for move in chunk {
                var payload: [UInt8] = []
                var target: any RedisArgument = 0
                var queueName = ""
                let mode: String
                switch move.target {
                case .ack: mode = "ack"
                case .retry(let p, let at):
                    mode = "retry"
                    payload = p
                    target = at
                case .dead(let p):
                    mode = "dead"
                    payload = p
                case .queue(let queue, let p, let head):
                    mode = head ? "head" : "tail"
                    payload = p
                    queueName = keys.queueName(queue)
                    let key = keys.list(queue)
                    if queueIndex[key] == nil {
                        queueKeys.append(key)
                        queueIndex[key] = 9 + queueKeys.count
                    }
                    target = queueIndex[key]!
                case .replace(let p):
                    mode = "replace"
                    payload = p
                }
                entries += [
                    move.receipt.member, mode, payload, target, queueName, move.counts.rawValue, move.journal == nil ? "" : "1",
                    move.journal?.value ?? [],
                ]
            }
            var arguments: [any RedisArgument] = [
                "EVAL", LuaScripts.apply, 9 + queueKeys.count, source, keys.queuesKey(sameSlotAs: source), keys.retry, keys.dead, journal,
                keys.processed, keys.processed(day: day), keys.failed, keys.failed(day: day),
            ]
            arguments += queueKeys as [any RedisArgument]
            let field = commands.isEmpty ? journalField : "\(journalField).\(commands.count)"
            arguments += [now, limits.maxJobs, now - limits.maxAge, dayCounterTTL, field] as [any RedisArgument]
            arguments += entries
            commands.append(RedisCommand(arguments))
        }
        return commands
    }

    /// The acknowledger's form of a batch: one `MULTI`/`EXEC` of native commands (a plain `LREM` for a success, the
    /// conditional `move` script for the rest), the journal entries in one `HSET`, the counters, and `SET marker seq`,
    /// so the batch applies whole or not at all and the marker tells whether a batch whose reply was lost applied.
    /// Cheaper in Redis than `applyCommands`' per-move Lua, which the rarer paths (reaping, requeueing) use.
    /// The journal entries go to field `a<sequence>` (`ackJournalField`).
    static func batchCommands(
        keys: SlotKeys, source: String, journal: String, marker: String, sequence: UInt64, moves: [Move], now: Double,
        limits: DeadSetLimits, uniqueLocks: QueueKeys? = nil, flow: FlowLimitScripts? = nil, releaseSHA: String? = nil
    ) -> [RedisCommand] {
        var commands: [RedisCommand] = [RedisCommand("MULTI")]
        commands.reserveCapacity(moves.count + 10)
        var processed = 0
        var failed = 0
        var lines: [UInt8] = []
        for move in moves {
            commands.append(moveCommand(move, keys: keys, source: source, now: now, limits: limits))
            // A unique job's lock, given up in the same transaction as its terminal outcome.
            if let release = move.uniqueRelease, let uniqueLocks, let command = RedisUniqueLocks.releaseCommand(release, keys: uniqueLocks) {
                commands.append(command)
            }
            switch move.counts {
            case .none: break
            case .processed: processed += 1
            case .processedAndFailed: processed += 1; failed += 1
            case .failed: failed += 1
            }
            if let entry = move.journal { lines += entry.value }
        }
        // The limited jobs' slots, given up in the same transaction as the moves that take them out of flight.
        if let flow, let uniqueLocks, let release = flow.releaseCommand(for: moves, keys: uniqueLocks, sha: releaseSHA) { commands.append(release) }
        if !lines.isEmpty { commands.append(RedisCommand("HSET", journal, JobTransitions.ackJournalField(sequence), lines)) }
        let day = JobTime.day(now)
        if processed > 0 {
            commands.append(RedisCommand("INCRBY", keys.processed, processed))
            commands.append(RedisCommand("INCRBY", keys.processed(day: day), processed))
            commands.append(RedisCommand("EXPIRE", keys.processed(day: day), dayCounterTTL))
        }
        if failed > 0 {
            commands.append(RedisCommand("INCRBY", keys.failed, failed))
            commands.append(RedisCommand("INCRBY", keys.failed(day: day), failed))
            commands.append(RedisCommand("EXPIRE", keys.failed(day: day), dayCounterTTL))
        }
        commands.append(RedisCommand("SET", marker, String(sequence), "EX", 86_400))
        commands.append(RedisCommand("EXEC"))
        return commands
    }

    /// Checks the replies of a `batchCommands` batch: throws what the server refused, or an `EXEC` that did not run.
    static func checkBatch(_ replies: [RedisReply], count: Int) throws(RedisError) {
        for reply in replies.dropLast() { try reply.check() }
        guard let results = try replies.last?.check().array, results.count >= count else {
            throw .server("EXEC answered \(String(describing: replies.last)) for a batch of \(count) completions")
        }
    }

    /// The limits' releases of a `batchCommands` transaction that Redis answered `NOSCRIPT` (it lost its scripts),
    /// as `EVAL`s to send again. `commands` and `replies` are the transaction's, `MULTI` to `EXEC`.
    static func unloadedReleases(_ commands: [RedisCommand], replies: [RedisReply], sha: String) -> [RedisCommand] {
        guard let results = replies.last?.array else { return [] }
        var again: [RedisCommand] = []
        for (i, result) in results.enumerated() where i + 1 < commands.count - 1 {
            guard case .error(let message) = result, message.hasPrefix("NOSCRIPT") else { continue }
            let command = commands[i + 1]
            guard command.arguments.count > 1, (command.arguments[1] as? String) == sha else { continue }
            again.append(FlowLimitScripts.unhashed(command))
        }
        return again
    }

    /// Sidekiq keeps its per-day counters for five years.
    static let dayCounterTTL = 5 * 365 * 86_400

    /// Which moves were applied, from the replies of `applyCommands`' calls (in order).
    static func applied(_ replies: [RedisReply], count: Int) throws(RedisError) -> [Bool] {
        var flags: [Bool] = []
        flags.reserveCapacity(count)
        for reply in replies {
            for item in try reply.check().array ?? [] { flags.append(item.int == 1) }
        }
        guard flags.count == count else { throw .server("transition script answered \(flags.count) of \(count) moves") }
        return flags
    }

    /// The conditional `move` script for one move other than a plain ack: applied only if `source` still held the
    /// job, so two processes racing over one job (reapers, replays) move it once.
    static func moveCommand(_ move: Move, keys: SlotKeys, source: String, now: Double, limits: DeadSetLimits) -> RedisCommand {
        func script(_ target: String, _ mode: String, _ payload: [UInt8], _ a: any RedisArgument, _ b: any RedisArgument = 0, _ c: any RedisArgument = 0)
            -> RedisCommand
        {
            RedisCommand(["EVAL", LuaScripts.move, 3, source, target, keys.queuesKey(sameSlotAs: source), move.receipt.member, mode, payload, a, b, c])
        }
        switch move.target {
        case .ack: return RedisCommand("LREM", source, 1, move.receipt.member)
        case .retry(let payload, let at): return script(keys.retry, "zadd", payload, at)
        case .dead(let payload): return script(keys.dead, "dead", payload, now, limits.maxJobs, now - limits.maxAge)
        case .queue(let queue, let payload, let head): return script(keys.list(queue), head ? "head" : "tail", payload, keys.queueName(queue))
        case .replace(let payload): return script(source, "replace", payload, "")
        }
    }


    /// Moves one member of `schedule` or `retry` whose time came onto its queue (fresh `enqueued_at`, no `at`), or
    /// to the dead set when it is not a runnable job; applied only by the caller that removed it from the set.
    static func promoteCommand(_ raw: [UInt8], from set: String, keys: SlotKeys, now: Double, limits: DeadSetLimits) -> RedisCommand {
        let failure: JobFailure
        do {
            let job = try Job(raw: raw)
            let payload = JobTransitions.enqueued(job.payload, now: now)
            return RedisCommand([
                "EVAL", LuaScripts.promote, 3, set, keys.list(job.queue), keys.queuesKey(sameSlotAs: set), raw, payload.bytes,
                keys.queueName(job.queue),
            ])
        } catch {
            // Why it cannot run (a field out of range names itself), kept with the bytes.
            failure = error.with(message: "member of \(set) is not a runnable job: \(error.message)")
        }
        let payload = JobTransitions.quarantined(raw: raw, queue: "unknown", failure: failure, now: now)
        return RedisCommand(["EVAL", LuaScripts.bury, 2, set, keys.dead, raw, payload.bytes, now, limits.maxJobs, now - limits.maxAge])
    }

    /// An operator's replay of one member of `set` (dead or retry) onto `queue` as `payload`
    /// (`JobTransitions.replayed`); replies 1 when it moved, 0 when the member was gone.
    /// On a cluster, `set` is a queue's own (`dead(queue:)`) and the job goes back to that queue.
    public static func replayCommand(_ member: [UInt8], from set: String, payload: JSONObject, queue: String, keys: QueueKeys)
        -> RedisCommand
    {
        let slot = keys.slot(keys.queue(ofTagged: set) ?? queue)
        return RedisCommand([
            "EVAL", LuaScripts.promote, 3, set, slot.list(queue), slot.queuesKey(sameSlotAs: set), member, payload.bytes, slot.queueName(queue),
        ])
    }

    /// A heartbeat's commands (see `SidekiqBackend.heartbeat`): every one touches one key, so on a cluster they are
    /// routed one by one. The last pops a signal.
    static func heartbeatCommands(_ beat: ProcessBeat, keys: QueueKeys, now: Double) -> [RedisCommand] {
        var info = JSONObject()
        info["hostname"] = .string(beat.hostname)
        info["started_at"] = JSONValue(beat.startedAt)
        info["pid"] = JSONValue(beat.pid)
        info["tag"] = .string(beat.tag)
        info["concurrency"] = JSONValue(beat.concurrency)
        info["queues"] = .array(beat.queues.map { .string($0) })
        info["labels"] = .array([.string("conveyor")])
        info["identity"] = .string(beat.identity)
        let process = keys.process(beat.identity)
        let workersKey = keys.workers(beat.identity)
        // Sidekiq's heartbeat rewrites the hash of running jobs whole; so does this one.
        var workers: [any RedisArgument] = ["HSET", workersKey]
        for job in beat.running {
            var entry = JSONObject()
            entry["queue"] = .string(job.queue)
            entry["payload"] = .string(String(decoding: job.raw, as: UTF8.self))
            entry["run_at"] = JSONValue(job.runAt)
            workers += [String(job.token, radix: 36), entry.bytes]
        }
        var commands: [RedisCommand] = [
            RedisCommand("SET", keys.heartbeat(beat.identity), JSONValue(now).text, "EX", beat.lease),
            RedisCommand("SADD", keys.conveyorProcesses, beat.identity),
            RedisCommand("SADD", keys.processes, beat.identity),
            RedisCommand(
                "HSET", process, "info", info.bytes, "busy", beat.busy, "beat", JSONValue(now).text, "quiet",
                beat.quiet ? "true" : "false", "rss", beat.residentKilobytes),
            RedisCommand("EXPIRE", process, max(60, beat.lease)),
            RedisCommand("UNLINK", workersKey),
        ]
        if !beat.running.isEmpty {
            commands.append(RedisCommand(workers))
            commands.append(RedisCommand("EXPIRE", workersKey, 60))
        }
        commands.append(RedisCommand("RPOP", keys.signals(beat.identity)))
        return commands
    }

    /// The signal a heartbeat's replies carry, after checking them.
    static func signal(in replies: [RedisReply]) throws(RedisError) -> ProcessSignal? {
        for reply in replies { try reply.check() }
        switch replies.last?.text {
        case "TSTP"?: return .quiet
        case "TERM"?: return .stop
        default: return nil
        }
    }
}
