public import ConveyorCore
public import Redis

/// The config file's `limits:` checked where jobs are taken, in the fetch's own script: a job of a limited class whose
/// key is at its concurrency or rate is never moved into an in-flight list. It waits in its key's line instead, and
/// every fetch serves the lines of its queues in turn (one job per key per turn), so a key with 10,000 waiting jobs
/// delays another key's one job by at most one slot.
///
/// Keys (all under `<namespace:>conveyor:limit:`; `K` is the key's value when it is 1-64 letters, digits or `_.@-`,
/// else `#` and its SHA-1; the empty string for jobs without it):
/// - `<limit>:slots:K` HASH: the slots held, counted per process: `n:<identity>` how many, `e:<identity>` when that
///   process's lease on them ends (ms). A fetch adds its jobs with one `HINCRBY` per key, an ack batch gives them up
///   with one per key (in the same transaction as the moves), a heartbeat renews the lease; a process whose lease
///   ended is not counted (and its fields go at the next look), so a dead worker's slots are free within a lease.
/// - `<limit>:starts:K` ZSET: starts in the last window (score: ms).
/// - `<limit>:wait:K:q:<queue>` LIST: jobs waiting for a slot, oldest on the right (as a queue).
/// - `rotation:<queue>` LIST of `<limit>\nK` with jobs waiting, turned by each fetch.
/// - `<limit>` HASH `waiting`; `<limit>:active` SET of keys that took a slot; `<limit>:keys` SET of `K\n<queue>`
///   waiting: the gauges.
///
/// A job is judged by its raw bytes first: one with no backslash that names no limited class anywhere is not decoded.
/// Payloads over `maximumBytes` are not decoded at all (the worker refuses them anyway).
/// On a Redis Cluster the keys of one limit cross slots: limits are refused there.
public struct FlowLimitScripts: Sendable {
    public let limits: [FlowLimit]
    /// The common head of every script's ARGV: the key prefix, the size bound, the scan budget, then the rules.
    let header: [any RedisArgument]
    let prefix: String

    /// Jobs a fetch call moves into a key's line at most before it answers (and is called again).
    public static let scanBudget = 500
    public static let maximumBytes = 1_048_576

    /// The process whose slots the scripts count (`identity` of the backend); empty for readers.
    let identity: String

    public init(limits: [FlowLimit], keys: QueueKeys, identity: String = "") {
        self.limits = limits
        self.identity = identity
        prefix = keys.conveyor("limit:")
        // Every limited class once, for the scripts' cheap look at a job's bytes; the rules packed in one argument
        // (tab-separated: names, classes, paths and numbers hold no tab), parsed only by a call that needs them.
        var classes: [String] = []
        for limit in limits { for name in limit.classes where !classes.contains(name) { classes.append(name) } }
        var packed = "\(Self.scanBudget)\t\(limits.count)\t"
        for limit in limits {
            let fields: [String] = [
                limit.name, limit.classes.joined(separator: "\n"), limit.keyPath.joined(separator: "\n"), "\(limit.concurrency ?? 0)",
                "\(limit.rate?.starts ?? 0)", "\(limit.rate?.windowMilliseconds ?? 0)", "\(limit.leaseMilliseconds)",
            ]
            packed += fields.joined(separator: "\t") + "\t"
        }
        var header: [any RedisArgument] = [prefix, Self.maximumBytes, identity, classes.count]
        header += classes.map { $0 as any RedisArgument }
        header.append(packed)
        self.header = header
    }

    /// A lease as the receipt carries it (`DeliveryReceipt.lease`): the limit and the key whose slot the job holds.
    public struct Lease: Sendable, Hashable {
        public var limit: String
        public var key: String
        public init?(_ text: String) {
            guard !text.isEmpty else { return nil }
            let parts = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { return nil }
            limit = String(parts[0])
            key = String(parts[1])
        }
    }

    // MARK: Commands

    /// Fetch: KEYS in-flight list, the ready queues, the paused set. Answers `more` (1 when its scan budget ran out
    /// with room left), `wakeAt` (ms when the first rate-limited key opens, 0 for none), then per job its queue's
    /// position (1-based), the job and its lease (`""` for an unlimited job).
    /// `sha` (the script's SHA-1, from `SCRIPT LOAD`) makes it an `EVALSHA`: the script is 10 kB, which Redis would
    /// otherwise read and hash on every call.
    func fetchCommand(inflight: String, queues: [String], queueKeys: [String], paused: String, want: Int, sha: String? = nil) -> RedisCommand {
        var arguments: [any RedisArgument] = sha.map { ["EVALSHA", $0] } ?? ["EVAL", Self.fetch]
        arguments += [queues.count + 2, inflight] as [any RedisArgument]
        arguments += queueKeys.map { $0 as any RedisArgument }
        arguments.append(paused)
        arguments += header
        arguments.append(want)
        arguments += queues.map { $0 as any RedisArgument }
        return RedisCommand(arguments)
    }

    /// After a blocking wait moved `job` into the in-flight list: KEYS queue, in-flight list, paused set. Answers
    /// `{0, lease}` (keep it), `{1}` (its queue is paused: put back) or `{2}` (over its limit: waiting in its line).
    func admitCommand(job: [UInt8], queue: String, queueKey: String, inflight: String, paused: String) -> RedisCommand {
        var arguments: [any RedisArgument] = ["EVAL", Self.admit, 3, queueKey, inflight, paused]
        arguments += header
        arguments += [job, queue] as [any RedisArgument]
        return RedisCommand(arguments)
    }

    /// Gives the slots of `moves` up (those whose job holds one and that take it out of flight: every target but
    /// `replace`, which rewrites the job in place), in one script call with one entry per key and queue; for each, when
    /// its key has jobs waiting on that queue and room to start them, up to as many as were given up go back to the
    /// right of the queue (the next taken, and a waiting worker wakes for them). `sha` (the script's SHA-1, from
    /// `SCRIPT LOAD`) makes it an `EVALSHA`. Nil when no move holds a slot.
    func releaseCommand(for moves: [JobTransitions.Move], keys: QueueKeys, sha: String? = nil) -> RedisCommand? {
        var counts: [ReleaseKey: Int] = [:]
        var order: [ReleaseKey] = []
        for move in moves {
            guard let lease = Lease(move.receipt.lease) else { continue }
            if case .replace = move.target { continue }
            let key = ReleaseKey(lease: lease, queue: move.receipt.queue)
            if counts[key] == nil { order.append(key) }
            counts[key, default: 0] += 1
        }
        guard !order.isEmpty else { return nil }
        var arguments: [any RedisArgument] = sha.map { ["EVALSHA", $0, 0, prefix, identity] } ?? ["EVAL", Self.release, 0, prefix, identity]
        for key in order {
            let limit = limits.first { $0.name == key.lease.limit }
            arguments += [
                key.lease.limit, key.lease.key, counts[key] ?? 0, key.queue, keys.queue(key.queue), limit?.concurrency ?? 0,
                limit?.rate?.starts ?? 0, limit?.rate?.windowMilliseconds ?? 0,
            ] as [any RedisArgument]
        }
        return RedisCommand(arguments)
    }

    private struct ReleaseKey: Hashable {
        var lease: Lease
        var queue: String
    }

    /// `command` (an `EVALSHA` of the release script) as an `EVAL`: what is sent again when Redis lost its scripts.
    static func unhashed(_ command: RedisCommand) -> RedisCommand {
        var arguments = command.arguments
        arguments[0] = "EVAL"
        arguments[1] = release
        return RedisCommand(arguments)
    }

    /// Renews this process's lease on the slots it holds, one entry per key.
    func renewCommand(_ leases: [Lease]) -> RedisCommand {
        var arguments: [any RedisArgument] = ["EVAL", Self.renew, 0]
        arguments += header
        for lease in leases { arguments += [lease.limit, lease.key] as [any RedisArgument] }
        return RedisCommand(arguments)
    }

    /// Per limit, in order: running (slots held), waiting (jobs in lines), keys waiting.
    public func statsCommand() -> RedisCommand {
        RedisCommand(["EVAL", Self.stats, 0] + header)
    }

    /// HASH of the limits workers run with (name -> its definition as JSON), written by each worker at start: what
    /// `conveyor stats` and the dashboard read without the config file.
    public static func definitionsKey(_ keys: QueueKeys) -> String { keys.conveyor("limit:defined") }

    /// A limit's definition as `definitionsKey` holds it.
    public static func definition(_ limit: FlowLimit) -> JSONValue {
        var o = JSONObject()
        o["classes"] = .array(limit.classes.map { .string($0) })
        o["key"] = limit.keyText.map { .string($0) } ?? .null
        o["concurrency"] = limit.concurrency.map { JSONValue($0) } ?? .null
        o["rate"] = limit.rate.map { .string("\($0.starts)/\($0.windowMilliseconds / 1000)s") } ?? .null
        o["lease_s"] = JSONValue(limit.leaseMilliseconds / 1000)
        return .object(o)
    }

    /// `HSET` of every limit's definition.
    public func publishCommand(_ keys: QueueKeys) -> RedisCommand? {
        guard !limits.isEmpty else { return nil }
        var arguments: [any RedisArgument] = ["HSET", Self.definitionsKey(keys)]
        for limit in limits { arguments += [limit.name, Self.definition(limit).text] as [any RedisArgument] }
        return RedisCommand(arguments)
    }

    /// The gauges of the limits named (as `definitionsKey` lists them), for readers without the rules; it only reads.
    public static func statsCommand(names: [String], keys: QueueKeys) -> RedisCommand {
        RedisCommand(["EVAL", statsByName, 0, keys.conveyor("limit:")] + names.map { $0 as any RedisArgument })
    }

    public static func stats(_ reply: RedisReply, names: [String]) throws(RedisError) -> [Stat] {
        let items = try reply.check().array ?? []
        return names.enumerated().compactMap { i, name in
            3 * i + 2 < items.count
                ? Stat(limit: name, running: items[3 * i].int ?? 0, waiting: max(0, items[3 * i + 1].int ?? 0), keysWaiting: items[3 * i + 2].int ?? 0)
                : nil
        }
    }

    public struct Stat: Sendable, Equatable {
        public var limit: String
        public var running: Int
        public var waiting: Int
        public var keysWaiting: Int
    }

    public func stats(_ reply: RedisReply) throws(RedisError) -> [Stat] {
        let items = try reply.check().array ?? []
        var out: [Stat] = []
        for (i, limit) in limits.enumerated() where 3 * i + 2 < items.count {
            out.append(Stat(
                limit: limit.name, running: items[3 * i].int ?? 0, waiting: max(0, items[3 * i + 1].int ?? 0),
                keysWaiting: items[3 * i + 2].int ?? 0))
        }
        return out
    }

    // MARK: Scripts

    /// The live slots of one `<limit>:slots:K` hash: the counts of processes whose lease has not ended. With `prune`
    /// and a `lease` (ms), a process whose lease ended more than a lease ago loses its fields: it is dead (the reaper
    /// has long taken its jobs back). One whose lease just lapsed keeps its count uncounted, so a process that was
    /// only stalled finds its count right when its heartbeat renews the lease. Needs `now`.
    static func liveLua(prune: Bool, assigned: Bool = false) -> String {
        """
        \(assigned ? "live = function(slots, lease)" : "local function live(slots, lease)")
          local h = redis.call('HGETALL', slots)
          if #h == 0 then return 0 end
          local counts, ends = {}, {}
          for i = 1, #h - 1, 2 do
            local f = h[i]
            local p = string.sub(f, 1, 2)
            if p == 'n:' then counts[string.sub(f, 3)] = tonumber(h[i + 1]) or 0
            elseif p == 'e:' then ends[string.sub(f, 3)] = tonumber(h[i + 1]) or 0 end
          end
          local total = 0
          for id, n in pairs(counts) do
            local e = ends[id] or 0
            \(assigned ? "if id == me then mine = n end" : "")
            if e > now then
              if n > 0 then total = total + n end
            \(prune ? "elseif lease and e + lease < now then redis.call('HDEL', slots, 'n:' .. id, 'e:' .. id)" : "")
            end
          end
          return total
        end

        """
    }

    /// Reads the header and defines `candidate` (whether a raw job may be limited: it names a limited class or holds a
    /// backslash) and `init`, which the scripts call before anything else and the fetch only once a job or a line
    /// needs it: it reads the clock, parses the rules and defines `classify` (the rule and key of a raw job, or nil),
    /// `open` (room for a start now; else false and when a rate window opens), `take` (counts a slot and a start;
    /// returns the lease text), `flush` (writes the slots a call took, one `HSET` per key) and `park` (puts a job in
    /// its key's line). A fetch whose jobs are none of the limits' classes therefore costs little more than one
    /// without limits. `R` is the index of the first argument after the rules.
    static let prelude = """
        local LP = ARGV[1]
        local maxBytes = tonumber(ARGV[2])
        local me = ARGV[3]
        local nc = tonumber(ARGV[4])
        local R = 6 + nc
        local function candidate(raw)
          if nc == 0 or #raw > maxBytes then return false end
          if string.find(raw, '\\\\', 1, true) then return true end
          for i = 5, 4 + nc do
            if string.find(raw, ARGV[i], 1, true) then return true end
          end
          return false
        end
        local now, budget, nr, order, rules, byName, seen, touched, mine, seq
        local stamp, live, classify, state, open, take, flush, line_of, park, line_emptied
        local function init()
          if rules then return end
          local t = redis.call('TIME')
          now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
          -- Unique to this call (a process's calls are apart by more than a microsecond): a start's member.
          stamp = t[1] .. '.' .. t[2] .. ':' .. me
          rules, byName, order, seen, touched, mine, seq = {}, {}, {}, {}, {}, 0, 0
          local f = {}
          for field in string.gmatch(ARGV[5 + nc], '([^\\t]*)\\t') do f[#f + 1] = field end
          budget, nr = tonumber(f[1]), tonumber(f[2])
          for r = 1, nr do
            local b = 3 + (r - 1) * 7
            local rule = {name = f[b], path = {}, conc = tonumber(f[b + 3]), rmax = tonumber(f[b + 4]),
              rwin = tonumber(f[b + 5]), lease = tonumber(f[b + 6])}
            for seg in string.gmatch(f[b + 2], '[^\\n]+') do rule.path[#rule.path + 1] = seg end
            for cls in string.gmatch(f[b + 1], '[^\\n]+') do rules[cls] = rule end
            byName[rule.name] = rule
            order[r] = rule
          end
          \(liveLua(prune: true, assigned: true))
          -- For a candidate: its rule and key, or nil when it is none of the limits' jobs. Without a backslash a
          -- `"class"` in the bytes is exactly a string token class; when there is one, followed by a colon, it is the
          -- job's class key (a job whose only one is nested has no class and is refused by the worker anyway), so a
          -- rule without a key path is found without decoding the job.
          classify = function(raw)
            if not string.find(raw, '\\\\', 1, true) then
              local a, b = string.find(raw, '"class"', 1, true)
              if a and not string.find(raw, '"class"', b + 1, true) then
                local cls = string.match(raw, '^%s*:%s*"([^"]*)"', b + 1)
                if cls then
                  local rule = rules[cls]
                  if not rule then return nil end
                  if #rule.path == 0 then return rule, '' end
                end
              end
            end
            local ok, j = pcall(cjson.decode, raw)
            if not ok or type(j) ~= 'table' or type(j.class) ~= 'string' then return nil end
            local rule = rules[j.class]
            if not rule then return nil end
            local v = nil
            if #rule.path > 0 and type(j.args) == 'table' then
              v = j.args[1]
              for _, seg in ipairs(rule.path) do
                if type(v) ~= 'table' then v = nil; break end
                v = v[seg]
              end
            end
            if type(v) == 'number' then v = tostring(v) end
            local key = ''
            if type(v) == 'string' then
              if #v > 0 and #v <= 64 and not string.find(v, '[^%w_%.@%-]') then key = v else key = '#' .. redis.sha1hex(v) end
            end
            return rule, key
          end
          -- What one call learnt of each key (slots held, this process's own, starts in the window, slots it took), so
          -- a key is read and written once per call.
          state = function(rule, key)
            local id = rule.name .. '\\n' .. key
            local c = seen[id]
            if c then return c end
            c = {run = 0, own = 0, st = 0, first = 0, add = 0, key = key, rule = rule, lease = rule.conc > 0 and id or ''}
            if rule.conc > 0 then
              mine = 0
              c.run = live(LP .. rule.name .. ':slots:' .. key, rule.lease)
              c.own = mine
            end
            if rule.rmax > 0 then
              local st = LP .. rule.name .. ':starts:' .. key
              redis.call('ZREMRANGEBYSCORE', st, '-inf', now - rule.rwin)
              c.st = redis.call('ZCARD', st)
            end
            seen[id] = c
            return c
          end
          open = function(rule, key)
            local c = state(rule, key)
            if rule.conc > 0 and c.run >= rule.conc then return false, 0 end
            if rule.rmax > 0 and c.st >= rule.rmax then
              if c.first == 0 then
                local first = redis.call('ZRANGE', LP .. rule.name .. ':starts:' .. key, 0, 0, 'WITHSCORES')
                c.first = tonumber(first[2] or now)
              end
              return false, c.first + rule.rwin
            end
            return true, 0
          end
          take = function(rule, key)
            local c = state(rule, key)
            if rule.conc > 0 then
              if c.add == 0 then touched[#touched + 1] = c end
              c.add = c.add + 1
              c.run = c.run + 1
            end
            if rule.rmax > 0 then
              local st = LP .. rule.name .. ':starts:' .. key
              seq = seq + 1
              redis.call('ZADD', st, now, stamp .. ':' .. seq)
              if not c.started then
                redis.call('PEXPIRE', st, rule.rwin + 1000)
                c.started = true
              end
              c.st = c.st + 1
            end
            return c.lease
          end
          -- The script reads and writes the hash in one step: the count it read plus what it took, and the lease.
          flush = function()
            for _, c in ipairs(touched) do
              local slots = LP .. c.rule.name .. ':slots:' .. c.key
              redis.call('HSET', slots, 'n:' .. me, c.own + c.add, 'e:' .. me, now + c.rule.lease)
              if c.own <= 0 then
                redis.call('PEXPIRE', slots, c.rule.lease * 2)
                redis.call('SADD', LP .. c.rule.name .. ':active', c.key)
              end
            end
          end
          line_of = function(name, key, qname) return LP .. name .. ':wait:' .. key .. ':q:' .. qname end
          park = function(rule, key, qname, raw)
            if redis.call('LPUSH', line_of(rule.name, key, qname), raw) == 1 then
              redis.call('RPUSH', LP .. 'rotation:' .. qname, rule.name .. '\\n' .. key)
              redis.call('SADD', LP .. rule.name .. ':keys', key .. '\\n' .. qname)
            end
            redis.call('HINCRBY', LP .. rule.name, 'waiting', 1)
          end
          line_emptied = function(name, key, qname)
            if redis.call('LLEN', line_of(name, key, qname)) == 0 then
              redis.call('LREM', LP .. 'rotation:' .. qname, 1, name .. '\\n' .. key)
              redis.call('SREM', LP .. name .. ':keys', key .. '\\n' .. qname)
            end
          end
        end

        """

    static let fetch = prelude + """
        local want = tonumber(ARGV[R])
        local nq = #KEYS - 2
        local paused = KEYS[#KEYS]
        local n, more, wakeAt = 0, 0, 0
        local out = {0, 0}
        local function push(qi, raw, lease)
          out[#out + 1] = qi; out[#out + 1] = raw; out[#out + 1] = lease
          n = n + 1
        end
        local function soonest(at)
          if at > 0 and (wakeAt == 0 or at < wakeAt) then wakeAt = at end
        end
        -- The lines first, a job per key per turn, so waiting keys are served before new jobs are judged.
        local function serve_lines(qi, qname, queue)
          local rot = LP .. 'rotation:' .. qname
          local len = redis.call('LLEN', rot)
          if len == 0 then return end
          init()
          local visits = 0
          local progress = true
          while len > 0 and progress and n < want and visits < budget do
            progress = false
            for _ = 1, len do
              if n >= want or visits >= budget then break end
              visits = visits + 1
              local m = redis.call('LMOVE', rot, rot, 'LEFT', 'RIGHT')
              if not m then break end
              local sep = string.find(m, '\\n', 1, true) or (#m + 1)
              local name = string.sub(m, 1, sep - 1)
              local key = string.sub(m, sep + 1)
              local rule = byName[name]
              local line = line_of(name, key, qname)
              if not rule then
                -- Its limit is gone from the configuration: its jobs go back to the queue, next in line, oldest first.
                for _ = 1, budget do
                  local raw = redis.call('LPOP', line)
                  if not raw then break end
                  redis.call('RPUSH', queue, raw)
                  redis.call('HINCRBY', LP .. name, 'waiting', -1)
                end
                line_emptied(name, key, qname)
                progress = true
              else
                local ok, at = open(rule, key)
                if ok then
                  local raw = redis.call('RPOP', line)
                  if raw then
                    redis.call('HINCRBY', LP .. name, 'waiting', -1)
                    redis.call('LPUSH', KEYS[1], raw)
                    push(qi, raw, take(rule, key))
                    progress = true
                  end
                  line_emptied(name, key, qname)
                else
                  soonest(at)
                end
              end
            end
            len = redis.call('LLEN', rot)
          end
          if visits >= budget then more = 1 end
        end
        for qi = 1, nq do
          if n >= want then break end
          local qname = ARGV[R + qi]
          local queue = KEYS[1 + qi]
          if redis.call('SISMEMBER', paused, qname) == 0 then
            serve_lines(qi, qname, queue)
            local scanned = 0
            while n < want do
              if rules and scanned >= budget then more = 1; break end
              local raw = redis.call('LMOVE', queue, KEYS[1], 'RIGHT', 'LEFT')
              if not raw then break end
              local rule, key = nil, nil
              if candidate(raw) then
                init()
                rule, key = classify(raw)
              end
              if rule then
                scanned = scanned + 1
                local ok, at = open(rule, key)
                if ok then
                  push(qi, raw, take(rule, key))
                else
                  redis.call('LPOP', KEYS[1])
                  park(rule, key, qname, raw)
                  soonest(at)
                end
              else
                push(qi, raw, '')
              end
            end
          end
        end
        if rules then flush() end
        out[1] = more
        out[2] = wakeAt
        return out
        """

    static let admit = prelude + """
        local raw, qname = ARGV[R], ARGV[R + 1]
        if redis.call('SISMEMBER', KEYS[3], qname) == 1 then
          if redis.call('LREM', KEYS[2], 1, raw) == 1 then redis.call('RPUSH', KEYS[1], raw) end
          return {1}
        end
        if not candidate(raw) then return {0, ''} end
        init()
        local rule, key = classify(raw)
        if not rule then return {0, ''} end
        local ok = open(rule, key)
        if ok then
          local lease = take(rule, key)
          flush()
          return {0, lease}
        end
        if redis.call('LREM', KEYS[2], 1, raw) == 1 then park(rule, key, qname, raw) end
        return {2}
        """

    /// ARGV: the prefix, the process, then per key and queue its limit, key, how many slots are given up, queue name,
    /// queue key, concurrency, rate starts and rate window (ms). On its own (no rules to parse): it runs once per batch
    /// in the acknowledger's transaction. Answers how many waiting jobs it put back on their queues.
    public static let release = """
        local LP, me = ARGV[1], ARGV[2]
        local now = nil
        local promoted = 0

        """ + liveLua(prune: false) + """
        for i = 3, #ARGV - 7, 8 do
          local name, key, n, qname, queue = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], ARGV[i + 4]
          local conc, rmax, rwin = tonumber(ARGV[i + 5]), tonumber(ARGV[i + 6]), tonumber(ARGV[i + 7])
          local slots = LP .. name .. ':slots:' .. key
          if redis.call('HINCRBY', slots, 'n:' .. me, -n) <= 0 then redis.call('HDEL', slots, 'n:' .. me, 'e:' .. me) end
          local line = LP .. name .. ':wait:' .. key .. ':q:' .. qname
          local waiting = conc > 0 and redis.call('LLEN', line) or 0
          if waiting > 0 then
            if not now then
              local t = redis.call('TIME')
              now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            end
            local room = math.min(n, waiting, conc - live(slots))
            if room > 0 and rmax > 0 then
              local st = LP .. name .. ':starts:' .. key
              redis.call('ZREMRANGEBYSCORE', st, '-inf', now - rwin)
              room = math.min(room, rmax - redis.call('ZCARD', st))
            end
            if room > 0 then
              for _ = 1, room do redis.call('RPUSH', queue, redis.call('RPOP', line)) end
              redis.call('HINCRBY', LP .. name, 'waiting', -room)
              promoted = promoted + room
              if waiting == room then
                redis.call('LREM', LP .. 'rotation:' .. qname, 1, name .. '\\n' .. key)
                redis.call('SREM', LP .. name .. ':keys', key .. '\\n' .. qname)
              end
            end
          end
        end
        return promoted
        """

    static let renew = prelude + """
        init()
        for i = R, #ARGV - 1, 2 do
          local rule = byName[ARGV[i]]
          if rule and rule.conc > 0 then
            local slots = LP .. ARGV[i] .. ':slots:' .. ARGV[i + 1]
            if redis.call('HEXISTS', slots, 'n:' .. me) == 1 then
              redis.call('HSET', slots, 'e:' .. me, now + rule.lease)
              redis.call('PEXPIRE', slots, rule.lease * 2)
              redis.call('SADD', LP .. ARGV[i] .. ':active', ARGV[i + 1])
            end
          end
        end
        return 0
        """

    /// Slots held under a limit: the sum over the keys in its `:active` set (at most 1,000 keys looked at: a sample
    /// beyond). `prune` drops keys that hold none and lapsed processes' counts (the worker's gauges do; a reader only
    /// reads).
    static func runningLua(prune: Bool) -> String {
        liveLua(prune: prune) + """
        local function running(name, lease)
          local active = LP .. name .. ':active'
          local keys
          if redis.call('SCARD', active) <= 1000 then keys = redis.call('SMEMBERS', active) else keys = redis.call('SRANDMEMBER', active, 1000) end
          local total = 0
          for _, key in ipairs(keys) do
            local n = live(LP .. name .. ':slots:' .. key, lease)
            \(prune ? "if n == 0 then redis.call('SREM', active, key) end" : "")
            total = total + n
          end
          return total
        end

        """
    }

    static let statsByName = """
        local LP = ARGV[1]
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

        """ + runningLua(prune: false) + """
        local out = {}
        for i = 2, #ARGV do
          out[#out + 1] = running(ARGV[i])
          out[#out + 1] = tonumber(redis.call('HGET', LP .. ARGV[i], 'waiting') or '0')
          out[#out + 1] = redis.call('SCARD', LP .. ARGV[i] .. ':keys')
        end
        return out
        """

    static let stats = prelude + """
        init()

        """ + runningLua(prune: true) + """
        local out = {}
        for r = 1, nr do
          local name = order[r].name
          out[#out + 1] = running(name, byName[name].lease)
          out[#out + 1] = tonumber(redis.call('HGET', LP .. name, 'waiting') or '0')
          out[#out + 1] = redis.call('SCARD', LP .. name .. ':keys')
        end
        return out
        """
}

/// The limits the workers declared (`FlowLimitScripts.definitionsKey`) with their gauges, for `conveyor stats` and
/// the dashboard: at most `maximumShown`, by name.
public struct FlowLimitReport: Sendable {
    public struct Entry: Sendable {
        public var name: String
        public var definition: JSONValue
        public var stat: FlowLimitScripts.Stat
    }

    public var entries: [Entry]
    public static let maximumShown = 200

    public static func read(_ connection: RedisConnection, keys: QueueKeys) throws -> FlowLimitReport {
        let key = FlowLimitScripts.definitionsKey(keys)
        let count = try connection.command("HLEN", key).check().int ?? 0
        guard count > 0 else { return FlowLimitReport(entries: []) }
        var pairs: [(String, JSONValue)] = []
        let flat = try connection.command("HSCAN", key, 0, "COUNT", maximumShown).check().array ?? []
        let items = flat.count == 2 ? (flat[1].array ?? []) : []
        var i = 0
        while i + 1 < items.count, pairs.count < maximumShown {
            if let name = items[i].text, FlowLimit.isValidName(name) {
                pairs.append((name, (items[i + 1].bytes.flatMap { try? JSONValue(parsing: $0) }) ?? .null))
            }
            i += 2
        }
        pairs.sort { $0.0 < $1.0 }
        let names = pairs.map(\.0)
        let stats = try FlowLimitScripts.stats(connection.command(FlowLimitScripts.statsCommand(names: names, keys: keys)), names: names)
        return FlowLimitReport(entries: zip(pairs, stats).map { Entry(name: $0.0, definition: $0.1, stat: $1) })
    }
}
