/// The Lua scripts that make queue transitions atomic. Each moves a job only if it removed it from its source
/// first, so two processes racing over the same job (reapers, promoters, replays) move it once.
enum LuaScripts {
    /// KEYS: in-flight list, then ready queues in fetch order. ARGV: how many jobs at most.
    /// Moves jobs one by one from the right of each queue to the in-flight list, in queue order, and returns
    /// them as pairs: the queue's position among KEYS[2...] (1-based), then the job.
    static let fetch = """
        local want = tonumber(ARGV[1])
        local n = 0
        local out = {}
        for i = 2, #KEYS do
          while n < want do
            local job = redis.call('LMOVE', KEYS[i], KEYS[1], 'RIGHT', 'LEFT')
            if not job then break end
            n = n + 1
            out[#out + 1] = i - 1
            out[#out + 1] = job
          end
          if n >= want then break end
        end
        return out
        """

    /// KEYS: source list, target. ARGV: raw job, mode, new payload, score or queue name, dead max size, dead cutoff.
    /// Modes: `zadd` (retry/schedule), `dead` (zadd + trim by age and count), `head` (RPUSH: runs next),
    /// `tail` (LPUSH: runs after what is queued). Push modes add the queue name (ARGV[4]) to the `queues` set
    /// (KEYS[3]). Returns 1 when the job was moved, 0 when the source no longer held it.
    static let move = """
        if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
        local mode = ARGV[2]
        if mode == 'zadd' then
          redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
        elseif mode == 'dead' then
          redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
          redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[6])
          redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[5]) + 1))
        elseif mode == 'head' then
          redis.call('RPUSH', KEYS[2], ARGV[3])
          redis.call('SADD', KEYS[3], ARGV[4])
        else
          redis.call('LPUSH', KEYS[2], ARGV[3])
          redis.call('SADD', KEYS[3], ARGV[4])
        end
        return 1
        """

    /// KEYS: sorted set (schedule or retry), queue list, queues set. ARGV: raw job, new payload, queue name.
    /// Moves one due job onto its queue if this caller removed it from the set.
    static let promote = """
        if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
        redis.call('LPUSH', KEYS[2], ARGV[2])
        redis.call('SADD', KEYS[3], ARGV[3])
        return 1
        """

    /// KEYS: sorted set, dead set. ARGV: raw member, dead payload, now, dead max size, dead cutoff.
    /// Moves a member that cannot be promoted (not a job) from a sorted set to the dead set.
    static let bury = """
        if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
        redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
        redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[5])
        redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[4]) + 1))
        return 1
        """
}
