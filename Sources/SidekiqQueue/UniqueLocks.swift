public import ConveyorCore
public import Redis

/// Unique keys in Redis: `<namespace:>{conveyor:unique}:<sha1 of the key material>` holds the holder's jid with the
/// job's `unique_for` as expiry. The hash tag keeps every lock in one cluster slot, so the scripts can name the key
/// they derive. Producers take the same key at push time with `pushScript` (`conveyor enqueue --unique-for`).
public struct RedisUniqueLocks: UniqueLockStore {
    let redis: RedisThread
    let keys: QueueKeys

    public init(redis: RedisThread, keys: QueueKeys) {
        self.redis = redis
        self.keys = keys
    }

    /// The prefix every lock key starts with; the script appends the SHA-1 of `material`.
    public var lockPrefix: String { keys.prefix + "{conveyor:unique}:" }

    /// What a job's lock key digests: `key:<unique_key>`, or `digest:` and the canonical class, queue and arguments.
    public static func material(_ unique: UniqueJob, jobClass: String, queue: String, arguments: JSONObject) -> [UInt8] {
        unique.lockMaterial(jobClass: jobClass, queue: queue, arguments: arguments)
    }

    /// The lock prefix of a key layout: nil on a Redis Cluster, where unique jobs are not offered.
    public static func lockPrefix(_ keys: QueueKeys) -> String? { keys.cluster ? nil : keys.prefix + "{conveyor:unique}:" }

    /// Gives up `release`'s lock if its jid still holds it: what an outcome's step, an operator's delete and the
    /// reaper send.
    public static func releaseCommand(_ release: JobTransitions.Move.UniqueRelease, keys: QueueKeys) -> RedisCommand? {
        guard let prefix = lockPrefix(keys) else { return nil }
        return RedisCommand("EVAL", releaseScript, 1, prefix, release.material, release.jid)
    }

    /// The release for a stored job (a member of a queue or set an operator deletes), nil when it holds no lock.
    public static func releaseCommand(member: [UInt8], keys: QueueKeys) -> RedisCommand? {
        guard let job = try? Job(raw: member), let release = UniqueJob.release(for: job) else { return nil }
        return releaseCommand(release, keys: keys)
    }

    static let acquireScript = """
        local k = KEYS[1] .. redis.sha1hex(ARGV[1])
        local h = redis.call('GET', k)
        if h == ARGV[2] then return false end
        if h then return h end
        redis.call('SET', k, ARGV[2], 'EX', ARGV[3])
        return false
        """

    static let releaseScript = """
        local k = KEYS[1] .. redis.sha1hex(ARGV[1])
        if redis.call('GET', k) == ARGV[2] then return redis.call('DEL', k) end
        return 0
        """

    /// Push-time refusal, as documented for producers in docs/jobs.md: KEYS lock prefix, `queues`, `queue:<q>`;
    /// ARGV material, jid, seconds, queue name, payload. Pushes and returns nil, or returns the holder's jid.
    public static let pushScript = """
        local k = KEYS[1] .. redis.sha1hex(ARGV[1])
        if redis.call('SET', k, ARGV[2], 'NX', 'EX', ARGV[3]) then
          redis.call('SADD', KEYS[2], ARGV[4])
          redis.call('LPUSH', KEYS[3], ARGV[5])
          return false
        end
        return redis.call('GET', k)
        """

    public func acquire(_ unique: UniqueJob, job: Job) async throws -> String? {
        let command = RedisCommand(
            "EVAL", Self.acquireScript, 1, lockPrefix, Self.material(unique, jobClass: job.jobClass, queue: job.queue, arguments: job.arguments),
            job.jid, unique.seconds)
        let reply = try await redis.run { connection in try connection.command(command).check() }
        return reply.bytes.map { String(decoding: $0, as: UTF8.self) }
    }

    public func release(_ unique: UniqueJob, job: Job) async throws {
        let command = RedisCommand(
            "EVAL", Self.releaseScript, 1, lockPrefix, Self.material(unique, jobClass: job.jobClass, queue: job.queue, arguments: job.arguments),
            job.jid)
        _ = try await redis.run { connection in try connection.command(command).check() }
    }
}

extension RedisUniqueLocks {
    /// Pushes `payload` onto `queue` only if its unique key is free, taking the key for its jid in the same script;
    /// returns the holder's jid instead when it is held. Single-node layout: the queue and lock keys are named apart.
    public func push(_ payload: JSONObject, unique: UniqueJob, jobClass: String, queue: String, arguments: JSONObject) async throws -> String? {
        let command = RedisCommand(
            "EVAL", Self.pushScript, 3, lockPrefix, keys.queues, keys.queue(queue),
            Self.material(unique, jobClass: jobClass, queue: queue, arguments: arguments), payload["jid"]?.stringValue ?? "",
            unique.seconds, queue, payload.bytes)
        let reply = try await redis.run { connection in try connection.command(command).check() }
        return reply.bytes.map { String(decoding: $0, as: UTF8.self) }
    }
}
