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
        let failure = JobFailure.transient(
            "WorkerLost", "worker process \(identity) stopped heartbeating while running this job (crash, kill -9 or OOM)")
        let (payload, destination) = failed(job, failure: failure, policy: policy, now: now)
        return (payload, destination == .dead)
    }

    /// The job moved onto a queue again (promotion, replay): fresh `enqueued_at`, no `at`.
    public static func enqueued(_ payload: JSONObject, now: Double) -> JSONObject {
        var p = payload
        p["at"] = nil
        p["enqueued_at"] = JobTime.value(now, like: payload)
        return p
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
