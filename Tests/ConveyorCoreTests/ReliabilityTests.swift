import Foundation
import Postgres
import Redis
import Testing

@testable import ConveyorCore
import SidekiqQueue

/// Whole worker processes with results in PostgreSQL, shaped as the failures were found: Redis restarted
/// mid-drain, workers killed with SIGKILL, jobs without a jid, and hostile text reaching the log.
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["DATABASE_URL"] != nil, "needs DATABASE_URL"))
struct ReliabilityTests {
    let heartbeat = ["--heartbeat-interval", "300ms", "--heartbeat-ttl", "2s", "--poll-interval", "200ms"]

    var databaseURL: String { ProcessInfo.processInfo.environment["DATABASE_URL"]! }

    /// How many of `jids` have a row in `conveyor.job_results`.
    func rows(_ jids: [String]) throws -> Int {
        let c = try PostgresConnection(url: databaseURL)
        let list = "{" + jids.joined(separator: ",") + "}"
        return Int(try c.query("SELECT count(*) FROM conveyor.job_results WHERE jid = ANY($1::text[])", [list]).scalar ?? "0") ?? 0
    }

    func pushNoops(_ count: Int, client: JobClient, class jobClass: String = "noop", arguments: JSONObject = [:]) async throws -> [String] {
        var jids: [String] = []
        var batch: [JSONObject] = []
        for _ in 0..<count {
            let payload = Job.envelope(jobClass: jobClass, arguments: arguments, queue: "default")
            jids.append(payload["jid"]!.stringValue!)
            batch.append(payload)
            if batch.count == 1000 {
                try await client.push(batch)
                batch.removeAll()
            }
        }
        if !batch.isEmpty { try await client.push(batch) }
        return jids
    }

    /// Every in-flight list of the namespace, by key.
    func inflightLengths(_ redis: RedisThread, _ keys: QueueKeys) async throws -> [String: Int] {
        let pattern = keys.prefix + "conveyor:inflight:*"
        return try await redis.run { connection in
            var out: [String: Int] = [:]
            for key in try connection.command("KEYS", pattern).check().array?.compactMap(\.text) ?? [] {
                out[key] = try connection.command("LLEN", key).check().int ?? 0
            }
            return out
        }
    }

    @Test func redisRestartedMidDrainStrandsNothingAndCountsEachJobOnce() async throws {
        let server = try PrivateRedis()
        let endpoint = try RedisEndpoint(url: server.url)
        let redis = RedisThread(endpoint, name: "restart-test")
        defer { redis.stop() }
        let keys = QueueKeys(namespace: "restart")
        let total = 20_000
        let jids = try await pushNoops(total, client: JobClient(redis: redis, keys: keys))
        let args = ["--queues", "default", "-c", "20", "--heartbeat-interval", "500ms", "--heartbeat-ttl", "10s"]
        let a = try WorkerProcess(redisURL: server.url, namespace: "restart", arguments: args)
        let b = try WorkerProcess(redisURL: server.url, namespace: "restart", arguments: args)
        @Sendable func processed() async -> Int {
            (try? await redis.run { try $0.command("GET", keys.processed).check().int ?? 0 }) ?? -1
        }
        try await eventually("a fifth processed", timeout: .seconds(60)) { await processed() >= total / 5 }
        try server.shutdownAndRestart()
        try await eventually("half processed", timeout: .seconds(60)) { await processed() >= total / 2 }
        try server.killAndRestart()
        try await eventually("the queue drained", timeout: .seconds(60)) {
            let queued = (try? await redis.run { try $0.command("LLEN", keys.queue("default")).check().int ?? 0 }) ?? 1
            return queued == 0 && (try? rows(jids)) == total
        }
        // Whatever a lost fetch reply left behind went back within a heartbeat: nothing is left in flight.
        try await eventually("every in-flight list empty", timeout: .seconds(1)) {
            try await inflightLengths(redis, keys).values.allSatisfy { $0 == 0 }
        }
        #expect(try rows(jids) == total, "every jid has its row")
        #expect(await processed() == total, "stat:processed counts each job once across the restarts")
        #expect(try await a.terminate() == 0)
        #expect(try await b.terminate() == 0)
        let done = a.succeeded.union(b.succeeded)
        #expect(Set(jids).subtracting(done).isEmpty, "every job ran")
        let log = a.log + b.log
        #expect(log.contains("works again"), "the end of the outage is logged")
        // Once per outage per connection, not once per retry: two restarts, a handful of connections each.
        let failures = log.split(separator: "\n").filter { $0.contains(" error ") }.count
        #expect(failures <= 2 * 2 * 10, "\(failures) error lines")
    }

    @Test func killDashNineRoundsLoseNoResultRow() async throws {
        let redis = try TestRedis()
        let total = 10_000
        let jids = try await pushNoops(total, client: redis.client, class: "sleep", arguments: ["ms": 1])
        let args = ["--queues", "default", "-c", "20"] + heartbeat
        let url = ProcessInfo.processInfo.environment["REDIS_URL"]!
        var victim = try WorkerProcess(redisURL: url, namespace: redis.namespace, arguments: args)
        let survivor = try WorkerProcess(redisURL: url, namespace: redis.namespace, arguments: args)
        for round in 1...3 {
            try await eventually("round \(round) under way", timeout: .seconds(60)) {
                try await redis.int("GET", redis.keys.processed) >= round * total / 5
            }
            try await victim.kill9()
            victim = try WorkerProcess(redisURL: url, namespace: redis.namespace, arguments: args)
        }
        try await eventually("every outcome recorded", timeout: .seconds(60)) {
            try await redis.int("LLEN", redis.keys.queue("default")) == 0 && (try rows(jids)) == total
        }
        // The killed processes' journals were written and emptied by the running workers: the last one killed is
        // reaped only once its heartbeat lease (2 s) lapses, and its journal recovered after that, so this is
        // waited for while the workers still run (a stopped worker recovers nothing). Left: the live workers' own.
        let live = [victim.pid, survivor.pid].map { ":\($0):" }
        try await eventually("no orphaned journal left", timeout: .seconds(30)) {
            let journals = (try await redis.command("KEYS", redis.keys.prefix + "conveyor:outcomes:*").array ?? []).compactMap(\.text)
            let killed = journals.filter { key in !live.contains { key.contains($0) } }
            return try await redis.int("SCARD", redis.keys.orphanedOutcomes) == 0 && killed.isEmpty
        }
        // The last victim may still be starting (a SIGTERM before its handlers are installed ends it with the signal).
        try await eventually("the last worker started", timeout: .seconds(60)) { victim.log.contains("worker started") }
        let victimExit = try await victim.terminate()
        #expect(victimExit == 0, "victim exit \(victimExit): \(victim.log.suffix(1500))")
        #expect(try await survivor.terminate() == 0)
        #expect(try rows(jids) == total)
        #expect(try await redis.int("SCARD", redis.keys.orphanedOutcomes) == 0)
        let journals = try await redis.command("KEYS", redis.keys.prefix + "conveyor:outcomes:*").array ?? []
        #expect(journals.isEmpty, "\(journals.count) journals left")
        #expect(survivor.log.contains("recovering job outcomes acknowledged by a stopped worker") || victim.log.contains("recovering job outcomes"))
        try await redis.clean()
    }

    @Test func jobsWithoutAJidGetDistinctOnesThatStick() async throws {
        let redis = try TestRedis()
        let key = "jidless-\(redis.namespace)"
        // Three byte-identical payloads without a jid, one whose jid is a number, one that will die.
        let plain = #"{"class":"noop","args":[{"upload_id":"\#(key)"}],"queue":"default"}"#
        let numeric = #"{"class":"noop","args":[{"upload_id":"\#(key)"}],"queue":"default","jid":1e400}"#
        let dying = #"{"class":"sleep","args":[{"upload_id":"\#(key)","ms":"soon"}],"queue":"default"}"#
        for raw in [plain, plain, plain, numeric, dying] {
            try await redis.command("LPUSH", redis.keys.queue("default"), raw)
        }
        let url = ProcessInfo.processInfo.environment["REDIS_URL"]!
        let worker = try WorkerProcess(redisURL: url, namespace: redis.namespace, arguments: ["--queues", "default"] + heartbeat)
        let c = try PostgresConnection(url: databaseURL)
        try await eventually("five rows", timeout: .seconds(30)) {
            Int(try c.query("SELECT count(*) FROM conveyor.job_results WHERE correlation_key = $1", [key]).scalar ?? "0") == 5
        }
        let found = try c.query("SELECT jid, status FROM conveyor.job_results WHERE correlation_key = $1", [key])
        let rowJIDs = found.rows.compactMap { $0[0] }
        #expect(Set(rowJIDs).count == 5, "distinct jids: \(rowJIDs)")
        #expect(rowJIDs.allSatisfy { Job.isValidJID(.string($0)) && $0.count == 24 })
        let dead = try await redis.jobs(inSet: redis.keys.dead)
        #expect(dead.count == 1)
        let deadJID = try #require(dead.first?["jid"]?.stringValue)
        #expect(found.rows.contains { $0[0] == deadJID && $0[1] == "dead" }, "the dead entry names its row's jid")
        #expect(try await worker.terminate() == 0)
        #expect(!worker.log.contains("job.id= ") && !worker.log.contains("job.id=\"\""), "no job logs an empty id")
        #expect(worker.succeeded.isSuperset(of: Set(rowJIDs.filter { $0 != deadJID })))
        try await redis.clean()
    }

    @Test func aJobCannotForgeLogLines() async throws {
        let redis = try TestRedis()
        let media = FileManager.default.temporaryDirectory.appendingPathComponent("cv-media-\(redis.namespace)")
        try FileManager.default.createDirectory(at: media, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: media) }
        let forged = "\n2026-12-01T00:00:00+0000 critical conveyor.worker: FAKE"
        try await redis.client.enqueue("evil" + forged)
        try await redis.client.enqueue("image.thumbnail", arguments: ["source": .string("uploads/a.jpg" + forged + "\r\u{1B}[2J")], queue: "default")
        try await redis.client.enqueue(String(repeating: "x", count: 1_000_000))
        let url = ProcessInfo.processInfo.environment["REDIS_URL"]!
        let worker = try WorkerProcess(
            redisURL: url, namespace: redis.namespace, arguments: ["--queues", "default"] + heartbeat,
            environment: ["CONVEYOR_MEDIA_ROOT": media.path])
        try await eventually("three jobs dead", timeout: .seconds(30)) { try await redis.int("ZCARD", redis.keys.dead) == 3 }
        #expect(try await worker.terminate() == 0)
        let lines = worker.log.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(!lines.isEmpty)
        for line in lines {
            #expect(line.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} \w+ .*/) != nil, "a line that is not the logger's: \(line.prefix(200))")
            #expect(!line.hasPrefix("2026-12-01T00:00:00+0000"))
            #expect(line.utf8.count < 16_384, "a \(line.utf8.count)-byte line")
            #expect(!line.contains("\u{1B}") && !line.contains("\r"))
        }
        #expect(worker.log.contains(#"evil\n2026-12-01T00:00:00+0000 critical conveyor.worker: FAKE"#), "the class is logged, escaped")
        #expect(worker.log.contains(#"uploads/a.jpg\n2026"#), "the key is logged, escaped")
        #expect(worker.log.contains(#"\"class\" is 1000000 bytes long"#), "the over-long class is refused at parse, cut in the message")
        try await redis.clean()
    }
}
