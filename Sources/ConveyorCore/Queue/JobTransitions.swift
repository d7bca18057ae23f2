import Redis

/// How the dead set is bounded, as Sidekiq bounds its own.
public struct DeadSetLimits: Sendable, Equatable {
    public var maxJobs: Int
    public var maxAge: Double

    public init(maxJobs: Int = 10_000, maxAge: Double = 180 * 86_400) {
        self.maxJobs = maxJobs
        self.maxAge = maxAge
    }
}

/// Where a failed job goes next.
public enum FailureDestination: Sendable, Equatable {
    case retry(at: Double)
    case dead
}

/// The payload rewrites and Redis commands behind every move of a job between lists and sets.
public enum JobTransitions {
    /// Records a failed run on the payload (Sidekiq's fields) and decides retry or dead.
    public static func failed(
        _ job: Job, failure: JobFailure, policy: RetryPolicy, now: Double, random: Double = Double.random(in: 0..<1)
    ) -> (payload: JSONObject, destination: FailureDestination) {
        var payload = job.payload
        let failures = job.previousFailures + 1
        let maxAttempts = policy.maxAttempts(jobRetryField: payload["retry"])
        payload["retry_count"] = JSONValue(failures - 1)
        payload["error_class"] = .string(failure.errorClass)
        payload["error_message"] = .string(truncated(failure.message))
        if payload["failed_at"] == nil {
            payload["failed_at"] = JobTime.value(now, like: payload)
        } else {
            payload["retried_at"] = JobTime.value(now, like: payload)
        }
        if failure.isPermanent || failures >= maxAttempts {
            return (payload, .dead)
        }
        return (payload, .retry(at: now + policy.delay(retryCount: failures - 1, random: random)))
    }

    /// Whether a job that failed for good is kept in the dead set: not with `retry: false`, which Sidekiq discards
    /// (its outcome is still recorded and counted).
    public static func keepsDead(_ payload: JSONObject) -> Bool {
        payload["retry"] != .bool(false)
    }

    /// A job envelope whose arguments Conveyor refuses (not one object): kept as it came, class, jid and args
    /// included, with the failure fields, so operators find it in the dead set by its own jid and class.
    /// `raw` keeps the bytes as they came, as for a malformed payload.
    public static func rejected(_ payload: JSONObject, raw: [UInt8], queue: String, failure: JobFailure, now: Double) -> JSONObject {
        var o = payload
        o["raw"] = .string(String(decoding: raw, as: UTF8.self))
        if !Job.isValidJID(o["jid"]) { o["jid"] = .string(Job.newJID()) }
        if o["queue"]?.stringValue == nil { o["queue"] = .string(queue) }
        o["retry_count"] = 0
        o["error_class"] = .string(failure.errorClass)
        o["error_message"] = .string(truncated(failure.message))
        o["failed_at"] = JobTime.value(now, like: payload)
        return o
    }

    /// A payload Conveyor cannot run as a job, wrapped so the dead set stays readable by Sidekiq's API while
    /// keeping the original bytes (`raw`, or `raw_base64` when they are not UTF-8).
    public static func quarantined(raw: [UInt8], queue: String, failure: JobFailure, now: Double) -> JSONObject {
        var o = JSONObject()
        o["class"] = "conveyor.malformed"
        o["args"] = .array([])
        o["queue"] = .string(queue)
        o["jid"] = .string(Job.newJID())
        o["retry"] = false
        o["retry_count"] = 0
        o["error_class"] = .string(failure.errorClass)
        o["error_message"] = .string(truncated(failure.message))
        o["failed_at"] = JSONValue(now)
        if let text = String(validating: raw, as: UTF8.self) {
            o["raw"] = .string(text)
        } else {
            o["raw_base64"] = .string(base64(raw))
        }
        return o
    }

    /// The job put back on its queue after its process died mid-run: the lost run counts as a failed attempt.
    public static func reaped(_ job: Job, identity: String, policy: RetryPolicy, now: Double) -> (
        payload: JSONObject, dead: Bool
    ) {
        let (payload, destination) = failed(job, failure: workerLost(identity), policy: policy, now: now)
        return (payload, destination == .dead)
    }

    /// The failure of a run whose process died.
    public static func workerLost(_ identity: String) -> JobFailure {
        .transient("WorkerLost", "worker process \(identity) stopped heartbeating while running this job (crash, kill -9 or OOM)")
    }

    /// The job moved onto a queue again (promotion, replay): fresh `enqueued_at`, no `at`.
    public static func enqueued(_ payload: JSONObject, now: Double) -> JSONObject {
        var p = payload
        p["at"] = nil
        p["enqueued_at"] = JobTime.value(now, like: payload)
        return p
    }

    // MARK: Moves out of an in-flight list

    /// One job leaving a process's in-flight list, and what it counts. Built by the worker, the reaper, shutdown and
    /// reconciliation; applied in batches by `applyCommands` (one script per batch).
    public struct Move: Sendable {
        public enum Target: Sendable, Equatable {
            /// Finished: removed, nothing else.
            case ack
            case retry(payload: [UInt8], at: Double)
            case dead(payload: [UInt8])
            /// Onto a queue: `head` runs it next (shutdown, reaping, reconciling), otherwise behind what is queued.
            case queue(String, payload: [UInt8], head: Bool)
            /// Rewritten in place (a jid given to a job that had none).
            case replace(payload: [UInt8])
        }

        /// What a move adds to Sidekiq's `stat:processed` / `stat:failed`.
        public enum Counts: String, Sendable {
            case none = "0", processed = "1", processedAndFailed = "2", failed = "3"
        }

        /// A terminal outcome kept in Redis with the move, in the same step: durable the instant the job leaves.
        /// The entries of one batch share one field of the journal hash (`a<n>` for the acknowledger's batches,
        /// `r<n>` for the reaper's), their values concatenated: one hash entry per batch, not per job.
        public struct JournalEntry: Sendable {
            public var field: String
            /// One COPY line, newline included.
            public var value: [UInt8]
            /// What the journal built `value` from, handed back with `journaled` so it need not parse the bytes.
            public var record: (any Sendable)?
            public init(field: String, value: [UInt8], record: (any Sendable)? = nil) {
                self.field = field
                self.value = value
                self.record = record
            }
        }

        public var raw: [UInt8]
        public var target: Target
        public var counts: Counts
        public var journal: JournalEntry?

        public init(raw: [UInt8], target: Target, counts: Counts, journal: JournalEntry? = nil) {
            self.raw = raw
            self.target = target
            self.counts = counts
            self.journal = journal
        }
    }

    /// Most moves in one script call: a long script blocks Redis for everyone else.
    static let movesPerScript = 500

    /// The script calls that apply `moves` out of `source`, in order, `movesPerScript` at a time. Each call replies
    /// with one 1 (applied) or 0 (the source no longer held the job) per move.
    /// - Parameter journal: the hash that journal entries go to (this process's outcome journal).
    /// - Parameter journalField: the field this batch's journal entries go to (`movesPerScript` at most per field:
    ///   a longer batch takes `journalField.1`, `.2`, ... for its later script calls).
    static func applyCommands(
        keys: QueueKeys, source: String, journal: String, journalField: String, moves: [Move], now: Double, limits: DeadSetLimits
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
                    queueName = queue
                    let key = keys.queue(queue)
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
                    move.raw, mode, payload, target, queueName, move.counts.rawValue, move.journal == nil ? "" : "1",
                    move.journal?.value ?? [],
                ]
            }
            var arguments: [any RedisArgument] = [
                "EVAL", LuaScripts.apply, 9 + queueKeys.count, source, keys.queues, keys.retry, keys.dead, journal,
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
        keys: QueueKeys, source: String, journal: String, marker: String, sequence: UInt64, moves: [Move], now: Double,
        limits: DeadSetLimits
    ) -> [RedisCommand] {
        var commands: [RedisCommand] = [RedisCommand("MULTI")]
        commands.reserveCapacity(moves.count + 10)
        var processed = 0
        var failed = 0
        var lines: [UInt8] = []
        for move in moves {
            commands.append(moveCommand(move, keys: keys, source: source, now: now, limits: limits))
            switch move.counts {
            case .none: break
            case .processed: processed += 1
            case .processedAndFailed: processed += 1; failed += 1
            case .failed: failed += 1
            }
            if let entry = move.journal { lines += entry.value }
        }
        if !lines.isEmpty { commands.append(RedisCommand("HSET", journal, ackJournalField(sequence), lines)) }
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

    /// The journal field of the acknowledger's batch number `sequence`.
    static func ackJournalField(_ sequence: UInt64) -> String { "a\(sequence)" }

    /// Checks the replies of a `batchCommands` batch: throws what the server refused, or an `EXEC` that did not run.
    static func checkBatch(_ replies: [RedisReply], count: Int) throws(RedisError) {
        for reply in replies.dropLast() { try reply.check() }
        guard let results = try replies.last?.check().array, results.count >= count else {
            throw .server("EXEC answered \(String(describing: replies.last)) for a batch of \(count) completions")
        }
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

    // MARK: Redis commands

    /// The conditional `move` script for one move other than a plain ack: applied only if `source` still held the
    /// job, so two processes racing over one job (reapers, replays) move it once.
    static func moveCommand(_ move: Move, keys: QueueKeys, source: String, now: Double, limits: DeadSetLimits) -> RedisCommand {
        func script(_ target: String, _ mode: String, _ payload: [UInt8], _ a: any RedisArgument, _ b: any RedisArgument = 0, _ c: any RedisArgument = 0)
            -> RedisCommand
        {
            RedisCommand(["EVAL", LuaScripts.move, 3, source, target, keys.queues, move.raw, mode, payload, a, b, c])
        }
        switch move.target {
        case .ack: return RedisCommand("LREM", source, 1, move.raw)
        case .retry(let payload, let at): return script(keys.retry, "zadd", payload, at)
        case .dead(let payload): return script(keys.dead, "dead", payload, now, limits.maxJobs, now - limits.maxAge)
        case .queue(let queue, let payload, let head): return script(keys.queue(queue), head ? "head" : "tail", payload, queue)
        case .replace(let payload): return script(source, "replace", payload, "")
        }
    }

    static func truncated(_ message: String) -> String {
        message.utf8.count <= 4000 ? message : String(message.prefix(4000)) + "…"
    }

    static func base64(_ bytes: [UInt8]) -> String {
        let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out = [UInt8]()
        var i = 0
        while i < bytes.count {
            let b0 = bytes[i]
            let b1 = i + 1 < bytes.count ? bytes[i + 1] : 0
            let b2 = i + 2 < bytes.count ? bytes[i + 2] : 0
            out.append(table[Int(b0 >> 2)])
            out.append(table[Int((b0 & 3) << 4 | b1 >> 4)])
            out.append(i + 1 < bytes.count ? table[Int((b1 & 15) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(i + 2 < bytes.count ? table[Int(b2 & 63)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension JSONObject {
    /// The compact JSON text of the object.
    public var bytes: [UInt8] { JSONValue.object(self).bytes }
}
