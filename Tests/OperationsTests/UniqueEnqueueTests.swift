import ConveyorCore
import Foundation
import Postgres
import Redis
import SidekiqQueue
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
}

