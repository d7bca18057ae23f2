import Redis

/// What the backend does with the process registry, in either key layout (Conveyor's `conveyor:processes` set and heartbeat leases,
/// Sidekiq's `processes` set and hashes): find the processes whose lease lapsed, claim one for reaping, and the
/// commands that forget one once its jobs are back.
enum ProcessRegistry {
    /// Registered processes whose heartbeat lease has expired.
    static func deadProcesses(_ redis: RedisThread, keys: QueueKeys) async throws -> [String] {
        let members = try await redis.run { connection in
            try connection.command("SMEMBERS", keys.conveyorProcesses).check().array ?? []
        }
        let others = members.compactMap(\.text)
        guard !others.isEmpty else { return [] }
        let alive = try await redis.run { connection in
            try connection.pipeline(others.map { RedisCommand("EXISTS", keys.heartbeat($0)) })
        }
        return zip(others, alive).filter { $0.1.int == 0 }.map(\.0)
    }

    /// Takes the reaping lock of `process` for `identity` (60 s): true when this caller reaps it.
    static func claim(_ process: String, for identity: String, _ redis: RedisThread, keys: QueueKeys) async throws -> Bool {
        let lockKey = keys.reapLock(process)
        let locked = try await redis.run { connection in
            try connection.command("SET", lockKey, identity, "NX", "EX", 60).check()
        }
        return locked.text == "OK"
    }

    /// Removes a dead process from both registries and drops its hashes and reaping lock.
    static func forgetting(_ dead: String, keys: QueueKeys) -> [RedisCommand] {
        [
            RedisCommand("SREM", keys.conveyorProcesses, dead),
            RedisCommand("SREM", keys.processes, dead),
            RedisCommand("DEL", keys.process(dead)),
            RedisCommand("DEL", keys.workers(dead)),
            RedisCommand("DEL", keys.reapLock(dead)),
        ]
    }
}
