import ConveyorCore
import Foundation
import Operations
import Postgres
import Redis
import SidekiqQueue
import Synchronization
import Testing

/// `conveyor enqueue --unique-for` through the real binary: a held key refuses the push naming the holder (exit 5),
/// out-of-range fields are usage errors (exit 64) before Redis is touched.
@Suite(.enabled(if: TestEnv.redisURL != nil && TestEnv.binary != nil))
struct UniqueEnqueueTests {
    @Test func aHeldKeyRefusesThePushNamingTheHolder() throws {
        let ns = ["--namespace", TestEnv.unique("uniq")]
        let args = ["enqueue", "noop", "--args", #"{"b":2,"a":1}"#, "--unique-for", "60"]
        let first = try TestEnv.conveyor(args + ns)
        #expect(first.code == 0, "\(first.err)")
        let holder = first.out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!holder.isEmpty)
        // The same arguments in another key order are the same job.
        let second = try TestEnv.conveyor(["enqueue", "noop", "--args", #"{"a":1,"b":2}"#, "--unique-for", "60"] + ns)
        #expect(second.code == 5)
        #expect(second.err.contains(holder), "\(second.err)")
        let other = try TestEnv.conveyor(["enqueue", "noop", "--args", #"{"a":2}"#, "--unique-for", "60"] + ns)
        #expect(other.code == 0, "\(other.err)")
        let keyed = try TestEnv.conveyor(["enqueue", "noop", "--unique-for", "60", "--unique-key", "order-7"] + ns)
        #expect(keyed.code == 0, "\(keyed.err)")
        let again = try TestEnv.conveyor(["enqueue", "noop", "--args", #"{"x":1}"#, "--unique-for", "60", "--unique-key", "order-7"] + ns)
        #expect(again.code == 5)
    }

    @Test func outOfRangeFieldsAreUsageErrors() throws {
        for value in ["0", "-1", "2592001", "1e400", "1e308", "1.5", "9223372036854775807", "-9223372036854775808", "99999999999999999999"] {
            let r = try TestEnv.conveyor(["enqueue", "noop", "--unique-for=\(value)"])
            #expect(r.code == 64, "--unique-for \(value): \(r.err)")
        }
        for extra in [["--unique-key", ""], ["--unique-key", String(repeating: "k", count: 257)], ["--unique-until", "later"]] {
            let r = try TestEnv.conveyor(["enqueue", "noop", "--unique-for", "60"] + extra)
            #expect(r.code == 64, "\(extra): \(r.err)")
        }
        let r = try TestEnv.conveyor(["enqueue", "noop", "--unique-key", "k"])
        #expect(r.code == 64)
    }
}

/// A real `conveyor worker` honours `unique_for` on jobs any producer pushed: of two jobs with one key, one runs and the
/// other ends as `skipped` / `DuplicateJob` naming the holder; once the holder succeeded the key is free again.
@Suite(.enabled(if: TestEnv.hasServers && TestEnv.binary != nil, "needs REDIS_URL, DATABASE_URL and CONVEYOR_BIN"))
struct UniqueWorkerTests {
    @Test func aWorkerSkipsTheDuplicateAndFreesTheKeyAfterSuccess() throws {
        let namespace = TestEnv.unique("uniq-worker")
        let keys = QueueKeys(namespace: namespace)
        let r = try TestEnv.redis()
        func push(_ jid: String) throws {
            let payload = #"{"class":"sleep","args":[{"ms":1500}],"queue":"default","jid":"\#(jid)","unique_for":600,"enqueued_at":\#(Date().timeIntervalSince1970)}"#
            for reply in try r.pipeline([RedisCommand("SADD", keys.queues, "default"), RedisCommand("LPUSH", keys.queue("default"), payload)]) { try reply.check() }
        }
        let first = "u1" + namespace.suffix(8), second = "u2" + namespace.suffix(8), third = "u3" + namespace.suffix(8)
        try push(first)
        try push(second)
        let worker = try WorkerProcess(namespace: namespace, arguments: ["--queues", "default", "-c", "4"])
        try worker.waitUntilServing()
        let db = try PostgresConnection(url: TestEnv.databaseURL!)
        func rows(_ jids: [String]) throws -> [String: [String?]] {
            var out: [String: [String?]] = [:]
            for jid in jids {
                if let row = try db.query("SELECT status, error_class, error_message FROM conveyor.job_results WHERE jid = $1", [jid]).rows.first { out[jid] = row }
            }
            return out
        }
        var seen: [String: [String?]] = [:]
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, worker.isRunning, seen.count < 2 {
            seen = try rows([first, second])
            usleep(50_000)
        }
        let statuses = seen.values.map { $0[0] ?? "" }.sorted()
        #expect(statuses == ["skipped", "succeeded"], "\(seen) \(worker.log.suffix(2000))")
        if let (skipped, row) = seen.first(where: { $0.value[0] == "skipped" }) {
            let holder = skipped == first ? second : first
            #expect(row[1] == "DuplicateJob")
            #expect(row[2]?.contains(holder) == true, "\(row)")
        }
        // The holder succeeded: the same key runs again.
        try push(third)
        var last: [String?] = []
        let again = Date().addingTimeInterval(60)
        while Date() < again, worker.isRunning, last.isEmpty {
            last = try rows([third])[third] ?? []
            usleep(50_000)
        }
        #expect(last.first == "succeeded", "\(last) \(worker.log.suffix(2000))")
        worker.stop()
    }

    /// Fifty producers push 1,000 unique keys ten times each, concurrently, onto a paused queue; four workers then
    /// drain it: exactly 1,000 jobs run (one per key) and 9,000 end `skipped` / `DuplicateJob`, each with one row, and
    /// every key is free afterwards. The holders run until the test cancels them, which it does only once all 9,000
    /// copies have their rows: a copy judged after its holder ended would be a new job and rightly run, so the
    /// holders must outlast the drain however slow the machine is, and no sleep can promise that.
    @Test func fiftyProducersTenCopiesOfAThousandKeysRunOncePerKey() throws {
        let namespace = TestEnv.unique("uniq-50")
        let keys = QueueKeys(namespace: namespace)
        let r = try TestEnv.redis()
        try r.command("SADD", keys.pausedQueues, "default").check()
        var workers: [WorkerProcess] = []
        for _ in 0..<4 { workers.append(try WorkerProcess(namespace: namespace, arguments: ["--queues", "default", "-c", "500"])) }
        for worker in workers { try worker.waitUntilServing() }
        defer { for worker in workers { worker.stop() } }
        let prefix = "u50" + namespace.suffix(8)
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 50) { producer in
            do {
                let connection = try TestEnv.redis()
                for i in 0..<200 {
                    let n = producer * 200 + i
                    let key = n % 1_000
                    let payload = #"{"class":"sleep","args":[{"ms":3600000,"k":\#(key)}],"queue":"default","jid":"\#(prefix)-k\#(key)-c\#(n / 1_000)","unique_for":3600,"unique_key":"key-\#(key)","enqueued_at":\#(Date().timeIntervalSince1970)}"#
                    try connection.command("LPUSH", keys.queue("default"), payload).check()
                }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(try r.command("LLEN", keys.queue("default")).check().int == 10_000)
        try r.pipeline([RedisCommand("SADD", keys.queues, "default"), RedisCommand("SREM", keys.pausedQueues, "default")]).forEach { try $0.check() }
        let db = try PostgresConnection(url: TestEnv.databaseURL!)
        func rows() throws -> [[String?]] {
            try db.query("SELECT jid, status, error_class FROM conveyor.job_results WHERE jid LIKE $1", [prefix + "-%"]).rows
        }
        func poll(until count: Int) throws -> [[String?]] {
            var seen: [[String?]] = []
            let deadline = Date().addingTimeInterval(240)
            while Date() < deadline {
                seen = try rows()
                if seen.count >= count || workers.contains(where: { !$0.isRunning }) { break }
                usleep(200_000)
            }
            return seen
        }
        // Every copy is judged while the holders run.
        let judged = try poll(until: 9_000)
        #expect(judged.count == 9_000, "\(judged.count) rows: \(workers[0].log.suffix(2000))")
        #expect(judged.allSatisfy { $0[1] == "skipped" && $0[2] == "DuplicateJob" }, "\(judged.filter { $0[1] != "skipped" }.prefix(5))")
        let every = Set((0..<10_000).map { n in "\(prefix)-k\(n % 1_000)-c\(n / 1_000)" })
        let holders = every.subtracting(judged.compactMap { $0[0] }).sorted()
        #expect(holders.count == 1_000)
        // One holder per key: the key is in the jid.
        #expect(Set(holders.compactMap { $0.split(separator: "-").dropLast().last }).count == 1_000)
        let running = try r.command("EVAL", "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do n = n + redis.call('LLEN', k) end return n", "0", keys.prefix + "conveyor:inflight:*").check().int
        #expect(running == 1_000, "in flight: \(running ?? -1)")
        // Ending the holders frees every key.
        let cancel = try TestEnv.conveyor(["cancel", "--namespace", namespace] + holders)
        #expect(cancel.code == 0, "\(cancel.err.suffix(2000))")
        let all = try poll(until: 10_000)
        #expect(all.count == 10_000, "\(all.count) rows: \(workers[0].log.suffix(2000))")
        let ran = all.filter { $0[1] == "cancelled" && $0[2] == "JobCancelled" }
        #expect(Set(ran.compactMap { $0[0] }) == Set(holders))
        #expect(all.filter { $0[1] == "skipped" && $0[2] == "DuplicateJob" }.count == 9_000)
        let audit = try JSONValue(parsing: try TestEnv.conveyor(["stats", "--json", "--namespace", namespace]).out)["unique_locks"]
        #expect(audit?["held"]?.intValue == 0, "\(audit?.text ?? "")")
        #expect(audit?["stale"]?.intValue == 0)
    }

    /// A unique job's lock goes with its outcome, whoever decides it: an operator deleting the waiting job (the
    /// dashboard's and the CLI's delete) or cancelling it, and the reaper ending a job whose worker was killed.
    @Test func theLockIsFreedByAnOperatorsDeleteOrCancel() throws {
        let namespace = TestEnv.unique("uniq-ops")
        let keys = QueueKeys(namespace: namespace)
        let r = try TestEnv.redis()
        let push = ["enqueue", "noop", "--queue", "parked", "--unique-for", "600", "--unique-key", "order-1", "--namespace", namespace]
        let held = try TestEnv.conveyor(push)
        #expect(held.code == 0, "\(held.err)")
        let jid = held.out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try TestEnv.conveyor(push).code == 5, "held")
        // What the dashboard's queue page deletes with.
        let member = try #require(try r.command("LINDEX", keys.queue("parked"), 0).check().bytes)
        #expect(try QueueContents("parked", keys: keys, connection: r).delete(member))
        let again = try TestEnv.conveyor(push)
        #expect(again.code == 0, "the delete freed the key: \(again.err)")
        let second = again.out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(second != jid)
        // A retrying job holds its key; `conveyor retry delete` ends it and frees the key.
        let queued = try #require(try r.command("LINDEX", keys.queue("parked"), 0).check().bytes)
        _ = try r.pipeline([RedisCommand("LREM", keys.queue("parked"), 1, queued), RedisCommand("ZADD", keys.retry, Date().timeIntervalSince1970 + 600, queued)])
        #expect(try TestEnv.conveyor(push).code == 5)
        #expect(try TestEnv.conveyor(["retry", "delete", "--jid", second, "--namespace", namespace]).code == 0)
        let third = try TestEnv.conveyor(push)
        #expect(third.code == 0, "\(third.err)")
        // Cancelling the waiting job is its outcome too.
        let cancel = try TestEnv.conveyor(["cancel", third.out.trimmingCharacters(in: .whitespacesAndNewlines), "--namespace", namespace])
        #expect(cancel.code == 0, "\(cancel.err)")
        #expect(try TestEnv.conveyor(push).code == 0, "the cancel freed the key")
        // The one key held is its queued job's: not stale. A key whose holder is nowhere is.
        func audit() throws -> JSONValue {
            let stats = try TestEnv.conveyor(["stats", "--json", "--namespace", namespace])
            return try #require(try JSONValue(parsing: stats.out)["unique_locks"], "\(stats.out) \(stats.err)")
        }
        #expect(try audit()["held"]?.intValue == 1)
        #expect(try audit()["stale"]?.intValue == 0)
        _ = try r.command("SET", keys.prefix + "{conveyor:unique}:0000000000000000000000000000000000000000", "ghost00000000000000000000").check()
        let stale = try audit()
        #expect(stale["stale"]?.intValue == 1 && stale["stale_jids"]?.arrayValue?.first?.stringValue == "ghost00000000000000000000", "\(stale.text)")
        let text = try TestEnv.conveyor(["stats", "--namespace", namespace]).out
        #expect(text.contains("unique locks 2  stale 1 (held by ghost00000000000000000000"), "\(text)")
    }

    @Test func aReapedJobWhoseWorkerWasKilledFreesItsLock() throws {
        let namespace = TestEnv.unique("uniq-reap")
        let keys = QueueKeys(namespace: namespace)
        let r = try TestEnv.redis()
        let fast = ["--heartbeat-interval", "200ms", "--heartbeat-ttl", "2s", "--queues", "reap", "-c", "2"]
        let doomed = try WorkerProcess(namespace: namespace, arguments: fast)
        try doomed.waitUntilServing()
        // One run only (retry: false): the reaper ends it dead as WorkerLost.
        let payload = #"{"class":"sleep","args":[{"ms":60000}],"queue":"reap","jid":"reaped000000000000000001","retry":false,"unique_for":3600,"unique_key":"reap-1","enqueued_at":\#(Date().timeIntervalSince1970)}"#
        _ = try r.pipeline([RedisCommand("SADD", keys.queues, "reap"), RedisCommand("LPUSH", keys.queue("reap"), payload)])
        // The worker takes the job and its lock.
        let lockKey = keys.prefix + "{conveyor:unique}:"
        let start = Date().addingTimeInterval(20)
        var taken = false
        while Date() < start, !taken {
            let locks = try r.command("KEYS", lockKey + "*").check().array ?? []
            taken = !locks.isEmpty
            if !taken { usleep(20_000) }
        }
        #expect(taken, "the worker took the lock: \(doomed.log.suffix(1000))")
        doomed.kill9()
        let reaper = try WorkerProcess(namespace: namespace, arguments: fast)
        try reaper.waitUntilServing()
        let end = Date().addingTimeInterval(30)
        var left: [RedisReply] = [.null]
        while Date() < end, !left.isEmpty {
            left = try r.command("KEYS", lockKey + "*").check().array ?? []
            if !left.isEmpty { usleep(50_000) }
        }
        #expect(left.isEmpty, "the reaper freed the lock: \(reaper.log.suffix(2000))")
        let dead = (try r.command("ZRANGE", keys.dead, 0, -1).check().array ?? []).compactMap(\.text)
        #expect(dead.contains { $0.contains("reaped000000000000000001") && $0.contains("WorkerLost") }, "\(dead)")
        let stats = try JSONValue(parsing: try TestEnv.conveyor(["stats", "--json", "--namespace", namespace]).out)
        #expect(stats["unique_locks"]?["stale"]?.intValue == 0, "\(stats.text)")
    }
}
