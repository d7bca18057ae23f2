public import ConveyorCore
public import Redis

/// Pushes jobs the way any Sidekiq client does: `SADD queues` + `LPUSH queue:<q>`, or `ZADD schedule` for later.
/// On a cluster (`keys.cluster`) the two are separate commands routed to their own slots, and a scheduled job goes
/// to its queue's own schedule (`schedule(queue:)`).
public struct JobClient: Sendable {
    public let redis: RedisThread
    public let keys: QueueKeys
    /// After each push, wait for this many replicas to have it (`WAIT`; 0: don't).
    public let replicas: ReplicaWait

    public init(redis: RedisThread, keys: QueueKeys, replicas: ReplicaWait = .none) {
        self.redis = redis
        self.keys = keys
        self.replicas = replicas
    }

    /// Enqueues one job and returns its jid.
    /// - Parameters:
    ///   - at: Unix seconds to run it at; nil or past runs it now.
    ///   - retry: the job's own `retry` field (Sidekiq's: retries after the first run, or true/false).
    @discardableResult
    public func enqueue(
        _ jobClass: String, arguments: JSONObject = JSONObject(), queue: String = "default", at: Double? = nil,
        retry: JSONValue? = nil, fields: JSONObject = JSONObject()
    ) async throws -> String {
        if let at, !(at.isFinite && JobEnvelope.timestampRange.contains(at) && at <= JobTime.millisecondThreshold) {
            // JSON cannot carry it (infinity would be written as null and run the job now), and a worker would refuse it.
            throw JobFailure.permanent(.malformedJob, "\"at\" is \(at): must be Unix seconds in 0...1e11")
        }
        let now = JobTime.now()
        let runAt = at.flatMap { $0 > now ? $0 : nil }
        var payload = Job.envelope(jobClass: jobClass, arguments: arguments, queue: queue, retry: retry, at: runAt, now: now)
        for (key, value) in fields { payload[key] = value }
        try await push([payload])
        return payload["jid"]!.stringValue!
    }

    /// Pushes ready-made envelopes in one round trip (those with a future `at` go to the schedule).
    public func push(_ payloads: [JSONObject]) async throws {
        let keys = keys
        let commands = payloads.flatMap { payload -> [RedisCommand] in
            let queue = payload["queue"]?.stringValue ?? "default"
            // Any number is a score (a producer's `at` of 1e300 schedules the job for never, as Sidekiq's client
            // would); the worker refuses an out-of-range `at` if the job ever reaches a queue.
            if let time = payload["at"]?.doubleValue {
                let at = time > JobTime.millisecondThreshold ? time / 1000 : time
                // As Sidekiq's client stores it: the score is the time, the payload has no `at` (Sidekiq's "Add to
                // queue" pushes the payload again, and an `at` in it would only schedule it again).
                var scheduled = payload
                scheduled["at"] = nil
                return [RedisCommand("ZADD", keys.cluster ? keys.schedule(queue: queue) : keys.schedule, at, scheduled.bytes)]
            }
            return [RedisCommand("SADD", keys.queues, queue), RedisCommand("LPUSH", keys.queue(queue), payload.bytes)]
        }
        let replicas = replicas
        try await redis.run { connection in
            for reply in try connection.pipeline(commands + replicas.commands) { try reply.check() }
        }
    }
}
