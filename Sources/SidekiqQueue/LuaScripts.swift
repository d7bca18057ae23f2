/// The Lua scripts that make queue transitions atomic. Each moves a job only if it removed it from its source
/// first, so two processes racing over the same job (reapers, promoters, replays) move it once.
/// An empty queue name skips the `SADD` to the `queues` set: on a Redis Cluster that set is in another slot than
/// the script's other keys (`QueueKeys+Cluster`), and the script is given a key of its own slot in its place.
enum LuaScripts {
    /// KEYS: in-flight list, then ready queues in fetch order, then (when ARGV[2] is 1) the paused-queues set.
    /// ARGV: how many jobs at most, whether the paused set is given, then the queues' names in KEYS order.
    /// Moves jobs one by one from the right of each queue to the in-flight list, in queue order, skipping a queue
    /// the paused set holds (checked here, so a pause stops fetching at once), and returns them as pairs: the queue's
    /// position among KEYS[2...] (1-based), then the job.
    static let fetch = """
        local want = tonumber(ARGV[1])
        local last = #KEYS
        local pausedSet = nil
        if ARGV[2] == '1' then pausedSet = KEYS[last]; last = last - 1 end
        local n = 0
        local out = {}
        for i = 2, last do
          if not (pausedSet and redis.call('SISMEMBER', pausedSet, ARGV[i + 1]) == 1) then
            while n < want do
              local job = redis.call('LMOVE', KEYS[i], KEYS[1], 'RIGHT', 'LEFT')
              if not job then break end
              n = n + 1
              out[#out + 1] = i - 1
              out[#out + 1] = job
            end
          end
          if n >= want then break end
        end
        return out
        """

    /// KEYS: the queue a blocking wait took a job from, the in-flight list it moved it to, the paused-queues set.
    /// ARGV: the job, the queue's name. When the queue is paused, puts the job back where it was (the right end: it
    /// is the next to be taken) and returns 1; else leaves it and returns 0 (-1: the in-flight list no longer held it).
    static let returnIfPaused = """
        if redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 0 then return 0 end
        if redis.call('LREM', KEYS[2], 1, ARGV[1]) == 0 then return -1 end
        redis.call('RPUSH', KEYS[1], ARGV[1])
        return 1
        """

    /// KEYS: source list, target. ARGV: raw job, mode, new payload, score or queue name, dead max size, dead cutoff.
    /// Modes: `zadd` (retry/schedule), `dead` (zadd + trim by age and count), `head` (RPUSH: runs next),
    /// `tail` (LPUSH: runs after what is queued), `replace` (LPUSH into the source itself, KEYS[2]). Push modes add the queue name (ARGV[4]) to the `queues` set
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
          if ARGV[4] ~= '' then redis.call('SADD', KEYS[3], ARGV[4]) end
        elseif mode == 'replace' then
          redis.call('LPUSH', KEYS[2], ARGV[3])
        else
          redis.call('LPUSH', KEYS[2], ARGV[3])
          if ARGV[4] ~= '' then redis.call('SADD', KEYS[3], ARGV[4]) end
        end
        return 1
        """

    /// Applies a batch of moves out of one list (a process's in-flight list) atomically, and counts only what it
    /// moved: a batch sent again after its reply was lost (Redis restarted, connection cut) changes nothing twice.
    /// KEYS: 1 source list, 2 queues set, 3 retry set, 4 dead set, 5 outcome journal (hash), 6 stat:processed,
    /// 7 stat:processed:<day>, 8 stat:failed, 9 stat:failed:<day>, then the queue lists the entries push to.
    /// ARGV: 1 now, 2 dead max size, 3 dead cutoff, 4 day-counter TTL, 5 the journal field of this batch, then 8 per
    /// entry: raw job, mode, new payload, score (retry) or KEYS index (head/tail), queue name, counts (0 none,
    /// 1 processed, 2 processed + failed, 3 failed), journal flag ('' for none), journal value (a COPY line).
    /// The journal values of the applied moves go into one field of the journal hash, concatenated.
    /// Modes: `ack` (remove only), `retry` (ZADD retry), `dead` (ZADD dead, trimmed), `head` (RPUSH: runs next),
    /// `tail` (LPUSH), `replace` (the payload takes the job's place in the source list).
    /// Returns one 1 or 0 per entry: applied (now or by an earlier send of the same batch), or the source no longer
    /// held the job.
    static let apply = """
        local processed, failed, died = 0, 0, 0
        local out = {}
        local lines = {}
        local n = 0
        for i = 6, #ARGV, 8 do
          local journaled = ARGV[i + 6]
          n = n + 1
          if redis.call('LREM', KEYS[1], 1, ARGV[i]) == 0 then
            if journaled ~= '' and redis.call('HEXISTS', KEYS[5], ARGV[5]) == 1 then out[n] = 1 else out[n] = 0 end
          else
            out[n] = 1
            local mode = ARGV[i + 1]
            if mode == 'retry' then
              redis.call('ZADD', KEYS[3], ARGV[i + 3], ARGV[i + 2])
            elseif mode == 'dead' then
              redis.call('ZADD', KEYS[4], ARGV[1], ARGV[i + 2])
              died = died + 1
            elseif mode == 'head' then
              redis.call('RPUSH', KEYS[tonumber(ARGV[i + 3])], ARGV[i + 2])
              if ARGV[i + 4] ~= '' then redis.call('SADD', KEYS[2], ARGV[i + 4]) end
            elseif mode == 'tail' then
              redis.call('LPUSH', KEYS[tonumber(ARGV[i + 3])], ARGV[i + 2])
              if ARGV[i + 4] ~= '' then redis.call('SADD', KEYS[2], ARGV[i + 4]) end
            elseif mode == 'replace' then
              redis.call('LPUSH', KEYS[1], ARGV[i + 2])
            end
            local counts = ARGV[i + 5]
            if counts == '1' or counts == '2' then processed = processed + 1 end
            if counts == '2' or counts == '3' then failed = failed + 1 end
            if journaled ~= '' then lines[#lines + 1] = ARGV[i + 7] end
          end
        end
        if #lines > 0 then redis.call('HSET', KEYS[5], ARGV[5], table.concat(lines)) end
        if died > 0 then
          redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[3])
          redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -(tonumber(ARGV[2]) + 1))
        end
        if processed > 0 then
          redis.call('INCRBY', KEYS[6], processed)
          redis.call('INCRBY', KEYS[7], processed)
          redis.call('EXPIRE', KEYS[7], ARGV[4])
        end
        if failed > 0 then
          redis.call('INCRBY', KEYS[8], failed)
          redis.call('INCRBY', KEYS[9], failed)
          redis.call('EXPIRE', KEYS[9], ARGV[4])
        end
        return out
        """

    /// KEYS: a dead process's outcome journal, the set of orphaned journals. Marks the journal orphaned if it
    /// holds anything.
    static let orphanJournal = """
        if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('SADD', KEYS[2], KEYS[1]) end
        return 0
        """

    /// KEYS: sorted set (schedule or retry), queue list, queues set. ARGV: raw job, new payload, queue name.
    /// Moves one due job onto its queue if this caller removed it from the set.
    static let promote = """
        if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
        redis.call('LPUSH', KEYS[2], ARGV[2])
        if ARGV[3] ~= '' then redis.call('SADD', KEYS[3], ARGV[3]) end
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
