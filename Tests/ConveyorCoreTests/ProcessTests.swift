import Foundation
import Postgres
import Redis
import Testing

@testable import ConveyorCore
import SidekiqQueue

/// Whole `conveyor worker` processes: killed, terminated, and read by Sidekiq's own Ruby API.
@Suite(.serialized) struct ProcessTests {
    let fastHeartbeat = ["--heartbeat-interval", "300ms", "--heartbeat-ttl", "2s", "--poll-interval", "200ms"]

    func redisURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["REDIS_URL"] else { throw TestSetupError("REDIS_URL is not set") }
        return url
    }

    /// Sums the in-flight lists of every process in the namespace.
    func inflight(_ redis: TestRedis) async throws -> [JSONObject] {
        let lists = try await redis.command("KEYS", redis.keys.prefix + "conveyor:inflight:*").array ?? []
        var jobs: [JSONObject] = []
        for list in lists { jobs += try await redis.jobs(inList: list.text!) }
        return jobs
    }

    /// Runs `sidekiq_interop.rb COMMAND` (Sidekiq's own client and API) against `redisURL`; returns its JSON.
    func sidekiqRuby(_ command: String, redisURL url: String) async throws -> JSONValue {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("sidekiq_interop.rb").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ruby")
        process.arguments = [script, command]
        process.environment = ["REDIS_URL": url, "PATH": "/usr/bin:/bin"]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = try await BlockingPool.shared.run { out.fileHandleForReading.readDataToEndOfFile() }
        try await BlockingPool.shared.run { process.waitUntilExit() }
        #expect(process.terminationStatus == 0)
        return try JSONValue(parsing: Array(data))
    }

    /// Every job ends in exactly one recorded outcome: the oracle is the outcome rows in PostgreSQL, not the log. A
    /// SIGKILL between a job's acknowledgement and its `job succeeded` line loses only the line.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["DATABASE_URL"] != nil, "needs DATABASE_URL"))
    func killDashNineMidRunLosesNoJob() async throws {
        let redis = try TestRedis()
        let database = try PostgresConnection(url: ProcessInfo.processInfo.environment["DATABASE_URL"]!)
        let prefix = "k9-" + Job.newJID().prefix(8) + "-"
        var jids: [String] = []
        var batch: [JSONObject] = []
        for i in 0..<10_000 {
            let payload = Job.envelope(jobClass: "sleep", arguments: ["ms": 2], queue: "default", jid: prefix + String(i))
            jids.append(payload["jid"]!.stringValue!)
            batch.append(payload)
            if batch.count == 1000 {
                try await redis.client.push(batch)
                batch.removeAll()
            }
        }
        let args = ["--queues", "default", "-c", "20"] + fastHeartbeat
        let a = try WorkerProcess(redisURL: try redisURL(), namespace: redis.namespace, arguments: args)
        let b = try WorkerProcess(redisURL: try redisURL(), namespace: redis.namespace, arguments: args)
        try await eventually("a quarter done", timeout: .seconds(120)) { try await redis.int("GET", redis.keys.processed) >= 2_500 }
        try await a.kill9()
        #expect(try await redis.int("LLEN", redis.keys.queue("default")) > 0, "the kill happened mid-run")
        // What the killed worker held (its in-flight list stays until a live worker reaps it): a kill between two
        // fetches can leave it empty, and then there is nothing to reap.
        var orphaned = 0
        for list in try await redis.command("KEYS", redis.keys.prefix + "conveyor:inflight:*").array ?? [] {
            guard let name = list.text, name.contains(":\(a.pid):") else { continue }
            orphaned += try await redis.jobs(inList: name).count
        }
        try await eventually("everything drained and reaped", timeout: .seconds(180)) {
            let queued = try await redis.int("LLEN", redis.keys.queue("default"))
            let flying = try await inflight(redis).count
            return queued == 0 && flying == 0
        }
        // Counts of rows, distinct jids and succeeded rows among this run's jobs; the workers' result writers store
        // what they journaled, the killed worker's journal through the reaper.
        func rows() throws -> [String] {
            try database.query(
                "SELECT count(*), count(DISTINCT jid), count(*) FILTER (WHERE status = 'succeeded') FROM conveyor.job_results WHERE jid LIKE $1",
                [prefix + "%"]
            ).rows.first?.compactMap { $0 } ?? []
        }
        try await eventually("one outcome row per job", timeout: .seconds(60)) { try rows().first == "10000" }
        #expect(try rows() == ["10000", "10000", "10000"], "one succeeded row per job")
        #expect(try await b.terminate() == 0)
        // Both processes did part of the work; every logged success is one of this run's jobs.
        let logged = a.succeeded.union(b.succeeded)
        #expect(!a.succeeded.isEmpty && !b.succeeded.isEmpty)
        #expect(logged.isSubset(of: Set(jids)))
        #expect(try await redis.int("ZCARD", redis.keys.dead) == 0)
        #expect(try await redis.int("ZCARD", redis.keys.retry) == 0)
        if orphaned > 0 { #expect(b.log.contains("reaped the jobs of a dead worker process"), "\(orphaned) jobs were in flight") }
        try await redis.clean()
    }

    @Test func jobThatKillsItsWorkerEveryTimeEndsDead() async throws {
        let redis = try TestRedis()
        let jid = try await redis.client.enqueue("sleep", arguments: ["ms": 600_000])
        let args = ["--queues", "default", "-c", "2"] + fastHeartbeat
        var last: WorkerProcess?
        // Three runs allowed: each dies with its worker.
        for run in 0..<3 {
            let worker = try WorkerProcess(redisURL: try redisURL(), namespace: redis.namespace, arguments: args)
            try await eventually("run \(run + 1) started", timeout: .seconds(30)) {
                let jobs = try await inflight(redis)
                return jobs.count == 1 && jobs[0]["retry_count"]?.intValue == (run == 0 ? nil : run - 1)
                    && jobs[0]["jid"]?.stringValue == jid
            }
            try await worker.kill9()
            last = worker
        }
        _ = last
        let reaper = try WorkerProcess(redisURL: try redisURL(), namespace: redis.namespace, arguments: args)
        try await eventually("poison pill in the dead set", timeout: .seconds(30)) { try await redis.int("ZCARD", redis.keys.dead) == 1 }
        let dead = try await redis.jobs(inSet: redis.keys.dead)[0]
        #expect(dead["jid"]?.stringValue == jid)
        #expect(dead["error_class"]?.stringValue == "WorkerLost")
        #expect(dead["retry_count"]?.intValue == 2)
        #expect(try await redis.int("LLEN", redis.keys.queue("default")) == 0)
        if let url = ProcessInfo.processInfo.environment["DATABASE_URL"] {
            // The reaper decided this outcome: it records it too.
            let c = try PostgresConnection(url: url)
            try await eventually("the poison pill's result row", timeout: .seconds(10)) {
                try c.query("SELECT 1 FROM conveyor.job_results WHERE jid = $1", [jid]).count == 1
            }
            let row = try c.query("SELECT status, error_class, attempts FROM conveyor.job_results WHERE jid = $1", [jid])
            #expect(row.rows.first == ["dead", "WorkerLost", "3"])
        }
        #expect(try await reaper.terminate() == 0)
        try await redis.clean()
    }

    @Test func sigtermDrainsShortJobsAndRequeuesLongOnes() async throws {
        let redis = try TestRedis()
        var long: [String] = []
        for _ in 0..<3 { long.append(try await redis.client.enqueue("sleep", arguments: ["ms": 60_000])) }
        for _ in 0..<5 { try await redis.client.enqueue("sleep", arguments: ["ms": 200]) }
        let worker = try WorkerProcess(
            redisURL: try redisURL(), namespace: redis.namespace, arguments: ["--queues", "default", "-c", "5", "--shutdown-timeout", "1s"])
        try await eventually("short jobs done", timeout: .seconds(30)) { try await redis.int("GET", redis.keys.processed) == 5 }
        let started = ContinuousClock.now
        #expect(try await worker.terminate() == 0)
        #expect(ContinuousClock.now - started < .seconds(5))
        let queued = try await redis.jobs(inList: redis.keys.queue("default"))
        #expect(Set(queued.compactMap { $0["jid"]?.stringValue }) == Set(long))
        #expect(queued.allSatisfy { $0["retry_count"] == nil }, "shutdown spends no attempt")
        #expect(try await inflight(redis).isEmpty)
        #expect(try await redis.int("ZCARD", redis.keys.retry) == 0)
        #expect(worker.log.contains("shutdown timeout reached"))
        try await redis.clean()
    }

    /// One lifecycle: on SIGTERM the worker drains first and the result store stops after it, so a job that finishes
    /// during the drain still gets its row; a second signal exits at once and leaves the rest to a reaper.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["DATABASE_URL"] != nil, "needs DATABASE_URL"))
    func shutdownStopsTheResultStoreAfterTheWorkerAndASecondSignalExitsAtOnce() async throws {
        let redis = try TestRedis()
        let databaseURL = ProcessInfo.processInfo.environment["DATABASE_URL"]!
        let environment = ["DATABASE_URL": databaseURL, "CONVEYOR_RESULTS_FLUSH_MS": "60000"]
        let finishing = try await redis.client.enqueue("sleep", arguments: ["ms": 1500])
        let worker = try WorkerProcess(
            redisURL: try redisURL(), namespace: redis.namespace, arguments: ["--queues", "default", "-c", "2"], environment: environment)
        try await eventually("the job started", timeout: .seconds(60)) { try await inflight(redis).count == 1 }
        // The store's flush interval is a minute: only the shutdown order writes the row before exit.
        #expect(try await worker.terminate() == 0)
        let c = try PostgresConnection(url: databaseURL)
        let row = try c.query("SELECT status FROM conveyor.job_results WHERE jid = $1", [finishing])
        #expect(row.rows.first == ["succeeded"], "the store wrote the outcome of a job that finished while the worker drained")

        let stuck = try await redis.client.enqueue("sleep", arguments: ["ms": 60_000])
        let second = try WorkerProcess(
            redisURL: try redisURL(), namespace: redis.namespace, arguments: ["--queues", "default", "--shutdown-timeout", "60s"],
            environment: environment)
        try await eventually("the long job started", timeout: .seconds(20)) { try await inflight(redis).count == 1 }
        kill(second.pid, SIGTERM)
        try await eventually("the drain began", timeout: .seconds(10)) { second.log.contains("shutting down") }
        let started = ContinuousClock.now
        #expect(try await second.terminate() == 1)
        #expect(ContinuousClock.now - started < .seconds(5), "the second signal does not wait for the drain")
        #expect(try await inflight(redis).compactMap { $0["jid"]?.stringValue } == [stuck], "left in flight for a reaper")
        try await redis.clean()
    }

    /// A worker started before its Redis waits for it (not ready meanwhile) instead of exiting, then serves.
    @Test func aWorkerStartedBeforeRedisWaitsForItThenServes() async throws {
        let redis = try PrivateRedis(started: false)
        let metricsPort = try PrivateRedis.freePort()
        let worker = try WorkerProcess(
            redisURL: redis.url, namespace: nil,
            arguments: ["--queues", "default", "--metrics-addr", "127.0.0.1:\(metricsPort)", "--heartbeat-interval", "200ms"],
            environment: ["DATABASE_URL": ""])
        func readiness() async throws -> String {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(metricsPort)/readyz"]
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            return text
        }
        try await eventually("the worker says it waits for Redis", timeout: .seconds(20)) {
            worker.log.contains("registering this worker process") && worker.log.contains("failed; retrying")
        }
        #expect(worker.process.isRunning, "it did not exit")
        try await eventually("/readyz answers 503", timeout: .seconds(10)) { try await readiness() == "503" }

        try redis.start()
        let thread = RedisThread(try RedisEndpoint(url: redis.url), name: "late-redis")
        defer { thread.stop() }
        let jid = try await JobClient(redis: thread, keys: QueueKeys()).enqueue("noop")
        try await eventually("the job ran once Redis came up", timeout: .seconds(30)) { worker.succeeded.contains(jid) }
        try await eventually("/readyz answers 200", timeout: .seconds(10)) { try await readiness() == "200" }
        #expect(try await worker.terminate() == 0)
    }

    /// Sidekiq's own tools against a running worker: the Busy page's `Workers`, "Add to queue" on a job Conveyor
    /// scheduled, "Retry Now" on a retry, the dead set for a job whose args are refused, `retry: false`.
    @Test func sidekiqsToolsSeeWhatConveyorDoes() async throws {
        let base = try RedisEndpoint(url: try redisURL())
        guard case .tcp(let host, let port) = base.address else { throw TestSetupError("interop test needs TCP Redis") }
        let url = "redis://\(host):\(port)/8"
        let db = RedisThread(try RedisEndpoint(url: url), name: "tools")
        defer { db.stop() }
        _ = try await db.run { try $0.command("FLUSHDB").check() }
        func ruby(_ command: String) async throws -> JSONValue { try await sidekiqRuby(command, redisURL: url) }
        let pushed = try await ruby("tools")
        let client = JobClient(redis: db, keys: QueueKeys())
        let scheduled = try await client.enqueue("noop", queue: "interop", at: JobTime.now() + 600)
        let stored = try await db.run { try $0.command("ZRANGE", "schedule", 0, -1).check().array ?? [] }
        #expect(try stored.map { try JSONValue(parsing: $0.bytes!)["at"] } == [nil], "scheduled payloads carry no `at`, as Sidekiq's")
        let worker = try WorkerProcess(
            redisURL: url, namespace: nil,
            arguments: ["--queues", "interop", "-c", "4", "--class-timeout", "sleep=4s", "--heartbeat-interval", "200ms", "--poll-interval", "200ms"])

        // The Busy page: the long job is listed while it runs, with its queue and payload.
        try await eventually("the running job in Sidekiq::Workers", timeout: .seconds(20)) {
            let busy = try await ruby("busy")["busy"]?.arrayValue ?? []
            return busy.contains { $0["jid"] == pushed["long"] && $0["queue"] == "interop" && ($0["run_at"]?.intValue ?? 0) > 0 }
        }
        try await eventually("the long job timed out into the retry set", timeout: .seconds(20)) {
            try await db.run { try $0.command("ZCARD", "retry").check().int ?? 0 } == 1
        }
        // A finished job leaves the Busy page with the next heartbeat (200 ms here), not at the move itself.
        try await eventually("the timed-out job gone from Sidekiq::Workers", timeout: .seconds(5)) {
            try await ruby("busy")["size"]?.intValue == 0
        }

        let replayed = try await ruby("replay")
        #expect(replayed["added"]?.intValue == 1)
        #expect(replayed["retried"]?.intValue == 1)
        try await eventually("the scheduled job ran once added to the queue", timeout: .seconds(20)) { worker.succeeded.contains(scheduled) }
        // "Retry Now" (retry_count 0 -> -1) spends no extra attempt: the run fails again as the first retry.
        try await eventually("the retried job failed again", timeout: .seconds(20)) {
            let sets = try await ruby("sets")
            let queued = try await db.run { try $0.command("LLEN", "queue:interop").check().int ?? 0 }
            return sets["retry"]?.arrayValue?.count == 1 && sets["retry"]?[0]?["jid"] == pushed["long"]
                && sets["queued"]?.intValue == 0 && queued == 0
                && worker.log.split(separator: "\n").filter { $0.contains("job.id=\(pushed["long"]!.stringValue!)") && $0.contains("JobTimeout") }.count == 2
        }
        let sets = try await ruby("sets")
        #expect(sets["retry"]?[0]?["retry_count"]?.intValue == 0)
        #expect(sets["scheduled"]?.intValue == 0)
        // The job whose args are not one object keeps its class, jid and args in the dead set; the `retry: false`
        // job is neither retried nor kept, as in Sidekiq.
        let dead = sets["dead"]?.arrayValue ?? []
        #expect(dead.count == 1)
        #expect(dead.first?["jid"] == pushed["listed"])
        #expect(dead.first?["class"] == "noop")
        #expect(dead.first?["args"] == [1, 2])
        #expect(dead.first?["error_class"] == "InvalidArguments")
        #expect(!(sets["retry"]?.arrayValue ?? []).contains { $0["jid"] == pushed["discarded"] })
        #expect(worker.log.contains("job failed; discarded (retry: false)"))
        #expect(try await worker.terminate() == 0)
        _ = try await db.run { try $0.command("FLUSHDB").check() }
    }

    @Test func sidekiqClientAndAPIInteroperate() async throws {
        // Sidekiq's API has no namespace support without an extra gem: use a database of this test's own.
        let base = try RedisEndpoint(url: try redisURL())
        guard case .tcp(let host, let port) = base.address else { throw TestSetupError("interop test needs TCP Redis") }
        let url = "redis://\(host):\(port)/7"
        let redis = try TestRedis()
        let db = RedisThread(try RedisEndpoint(url: url), name: "interop")
        defer { db.stop() }
        _ = try await db.run { try $0.command("FLUSHDB").check() }

        func ruby(_ command: String) async throws -> JSONValue { try await sidekiqRuby(command, redisURL: url) }

        let pushed = try await ruby("push")
        #expect(pushed["queued"]?.intValue == 6)
        #expect(pushed["scheduled"]?.intValue == 1)
        let worker = try WorkerProcess(
            redisURL: url, namespace: nil,
            arguments: ["--queues", "interop", "-c", "4", "--class-timeout", "sleep=300ms", "--poll-interval", "200ms"])
        let processedKey = "stat:processed"
        try await eventually("all Sidekiq-pushed jobs ran", timeout: .seconds(30)) {
            try await db.run { try $0.command("GET", processedKey).check().int ?? 0 } >= 7
        }
        let read = try await ruby("read")
        #expect(read["queue_size"]?.intValue == 0)
        #expect(read["queues"] == ["interop"])
        #expect(read["retry_size"]?.intValue == 1)
        #expect(read["retry_jid"] == pushed["slow"])
        #expect(read["retry_class"]?.stringValue == "sleep")
        #expect(read["retry_error"]?.stringValue == "JobTimeout")
        #expect(read["retry_count"]?.intValue == 0)
        #expect(read["dead_size"]?.intValue == 1)
        #expect(read["dead_jid"] == pushed["bad"])
        #expect(read["dead_error"]?.stringValue == "InvalidArguments")
        #expect(read["processed"]?.intValue == 7)
        #expect(read["failed"]?.intValue == 2)
        #expect(read["retry_stat"]?.intValue == 1)
        #expect(read["dead_stat"]?.intValue == 1)
        let processes = read["processes"]?.arrayValue ?? []
        #expect(processes.count == 1)
        #expect(processes.first?["concurrency"]?.intValue == 4)
        #expect(processes.first?["queues"] == ["interop"])
        #expect(worker.succeeded.isSuperset(of: [pushed["ok"]!.stringValue!, pushed["later"]!.stringValue!]))
        #expect(try await worker.terminate() == 0)
        #expect(worker.log.contains("job classes whose queue is not served by this worker"), "--queues interop leaves media, mail, llm unserved")
        #expect(!worker.log.contains("Composition.classQueues disagrees"), "conveyor enqueue's table matches the registered classes")
        _ = try await db.run { try $0.command("FLUSHDB").check() }
        _ = redis
    }
}
