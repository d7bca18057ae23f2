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

        /// A terminal outcome kept in Redis with the move, in the same script: durable the instant the job leaves.
        public struct JournalEntry: Sendable, Equatable {
            public var field: String
            public var value: [UInt8]
            public init(field: String, value: [UInt8]) {
                self.field = field
                self.value = value
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
    static func applyCommands(
        keys: QueueKeys, source: String, journal: String, moves: [Move], now: Double, limits: DeadSetLimits
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
                    move.raw, mode, payload, target, queueName, move.counts.rawValue, move.journal?.field ?? "",
                    move.journal?.value ?? [],
                ]
            }
            var arguments: [any RedisArgument] = [
                "EVAL", LuaScripts.apply, 9 + queueKeys.count, source, keys.queues, keys.retry, keys.dead, journal,
                keys.processed, keys.processed(day: day), keys.failed, keys.failed(day: day),
            ]
            arguments += queueKeys as [any RedisArgument]
            arguments += [now, limits.maxJobs, now - limits.maxAge, dayCounterTTL] as [any RedisArgument]
            arguments += entries
            commands.append(RedisCommand(arguments))
        }
        return commands
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

    static func moveToSet(keys: QueueKeys, from source: String, raw: [UInt8], to set: String, payload: JSONObject, score: Double)
        -> RedisCommand
    {
        RedisCommand(["EVAL", LuaScripts.move, 3, source, set, keys.queues, raw, "zadd", payload.bytes, score, 0, 0])
    }

    static func moveToDead(keys: QueueKeys, from source: String, raw: [UInt8], payload: JSONObject, now: Double, limits: DeadSetLimits)
        -> RedisCommand
    {
        RedisCommand([
            "EVAL", LuaScripts.move, 3, source, keys.dead, keys.queues, raw, "dead", payload.bytes, now, limits.maxJobs,
            now - limits.maxAge,
        ])
    }

    /// Back onto a queue: `head` runs it next (shutdown, reaping), otherwise it waits behind what is queued.
    static func moveToQueue(keys: QueueKeys, from source: String, raw: [UInt8], queue: String, payload: [UInt8], head: Bool)
        -> RedisCommand
    {
        RedisCommand(["EVAL", LuaScripts.move, 3, source, keys.queue(queue), keys.queues, raw, head ? "head" : "tail", payload, queue, 0, 0])
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
