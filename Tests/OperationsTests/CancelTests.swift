import ConveyorCore
import Foundation
import Postgres
import Redis
import SidekiqQueue
import Testing

/// `conveyor cancel` against a real worker: a running job stops within a second, waiting ones never start, each
/// ends as one `cancelled` row; Sidekiq 7.3's `cancel!` flag stops a running job too; a job's own `timeout`.
@Suite(.enabled(if: TestEnv.hasServers && TestEnv.binary != nil, "needs REDIS_URL, DATABASE_URL and CONVEYOR_BIN"))
struct CancelTests {
    let namespace = TestEnv.unique("cancel")
    var keys: QueueKeys { QueueKeys(namespace: namespace) }

    func push(_ job: JSONObject, queue: String = "cancel", in seconds: Double? = nil) throws {
        let redis = try TestEnv.redis()
        if let seconds {
            _ = try redis.command("ZADD", keys.schedule, Date().timeIntervalSince1970 + seconds, JSONValue.object(job).text).check()
        } else {
            _ = try redis.pipeline([RedisCommand("SADD", keys.queues, queue), RedisCommand("LPUSH", keys.queue(queue), JSONValue.object(job).text)])
        }
    }

    static func job(_ jid: String, _ jobClass: String = "sleep", ms: Int = 60_000, extra: [(String, JSONValue)] = []) -> JSONObject {
        JSONObject([
            ("class", .string(jobClass)), ("queue", .string("cancel")), ("jid", .string(jid)),
            ("args", .array([.object(JSONObject([("ms", JSONValue(ms))]))])), ("retry", .bool(true)),
            ("created_at", JSONValue(Date().timeIntervalSince1970)), ("enqueued_at", JSONValue(Date().timeIntervalSince1970)),
        ] + extra)
    }

    static func jid(_ tag: String) -> String { tag + String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(24 - tag.count)).lowercased() }

    /// The job's outcome row (status, error class, message), waited for up to `seconds`.
    func outcomeRow(_ jid: String, seconds: Double = 20) throws -> [String?]? {
        let db = try PostgresConnection(url: TestEnv.databaseURL!)
        let end = Date().addingTimeInterval(seconds)
        repeat {
            if let row = try db.query("SELECT status, error_class, error_message FROM conveyor.job_results WHERE jid = $1", [jid]).rows.first {
                return row
            }
            usleep(50_000)
        } while Date() < end
        return nil
    }

    /// Waits until the worker has taken `jid` (its in-flight list holds it).
    func waitUntilTaken(_ jid: String, _ worker: WorkerProcess) throws {
        let redis = try TestEnv.redis()
        let end = Date().addingTimeInterval(20)
        while Date() < end {
            let identities = (try redis.command("SMEMBERS", keys.conveyorProcesses).check().array ?? []).compactMap(\.text)
            for identity in identities {
                let items = try redis.command("LRANGE", keys.inflight(identity), 0, -1).check().array ?? []
                if items.contains(where: { $0.text?.contains(jid) == true }) { return }
            }
            usleep(20_000)
        }
        throw TestFailure("the worker never took \(jid):\n\(worker.log.suffix(2000))")
    }

    @Test func aRunningJobStopsWithinASecondAndWaitingOnesNeverStart() throws {
        let worker = try WorkerProcess(namespace: namespace, arguments: ["--queues", "cancel", "-c", "1"])
        try worker.waitUntilServing()
        let running = Self.jid("r")
        let queued = Self.jid("q")
        let scheduled = Self.jid("s")
        try push(Self.job(running))
        try waitUntilTaken(running, worker)
        // With the one slot busy, the next job waits in the queue; another waits in the schedule.
        try push(Self.job(queued, "noop"))
        try push(Self.job(scheduled, "noop"), in: 3600)

        // Lookup before the cancel: the running job is taken by the worker, the scheduled one waits.
        let look = try TestEnv.conveyor(["job", "--namespace", namespace, "--json", running])
        #expect(look.code == 0, "\(look.err)")
        let places = try JSONValue(parsing: look.out)["places"]?.arrayValue ?? []
        #expect(places.first?["place"]?.stringValue == "taken" && places.first?["class"]?.stringValue == "sleep", "\(look.out)")
        let lookScheduled = try TestEnv.conveyor(["job", "--namespace", namespace, scheduled])
        #expect(lookScheduled.code == 0 && lookScheduled.out.contains("scheduled (queue cancel) for "), "\(lookScheduled.out)")

        let waiting = try TestEnv.conveyor(["cancel", "--namespace", namespace, queued, scheduled])
        #expect(waiting.code == 0, "\(waiting.err)")
        // The queued job is either still in the queue or already fetched (prefetched, not started): both are stopped.
        #expect(waiting.out.contains("\(queued): cancelled (was queued in cancel)") || waiting.out.contains("\(queued): cancelling (taken by "),
                "\(waiting.out)")
        #expect(waiting.out.contains("\(scheduled): cancelled (was scheduled)"), "\(waiting.out)")
        let redis = try TestEnv.redis()
        #expect(try redis.command("LLEN", keys.queue("cancel")).check().int == 0)
        #expect(try redis.command("ZCARD", keys.schedule).check().int == 0)

        let started = Date()
        let r = try TestEnv.conveyor(["cancel", "--namespace", namespace, "--json", running])
        #expect(r.code == 0, "\(r.err)")
        let answer = try JSONValue(parsing: r.out)
        #expect(answer["was"]?.stringValue == "taken")
        let row = try #require(try outcomeRow(running), "no outcome row for the running job:\n\(worker.log.suffix(2000))")
        let took = Date().timeIntervalSince(started)
        #expect(row[0] == "cancelled" && row[1] == "JobCancelled", "\(row)")
        // The worker polls every 250 ms; the row is written within the result writer's flush (50-ms batches by default).
        #expect(took < 1.5, "cancel to outcome row took \(took) s")
        // Each waiting job: one cancelled row, never a run (noop would have written succeeded).
        for jid in [queued, scheduled] {
            let r = try #require(try outcomeRow(jid), "no row for \(jid)")
            #expect(r[0] == "cancelled", "\(jid): \(r)")
            #expect(r[2]?.contains("cancelled") == true, "\(r)")
        }
        // Lookup after: the outcome row, nowhere in Redis.
        let done = try TestEnv.conveyor(["job", "--namespace", namespace, "--json", running])
        let doneJSON = try JSONValue(parsing: done.out)
        #expect(doneJSON["places"]?.arrayValue?.isEmpty == true, "\(done.out)")
        #expect(doneJSON["result"]?["status"]?.stringValue == "cancelled", "\(done.out)")
        let nowhere = try TestEnv.conveyor(["job", "--namespace", namespace, "--database-url", TestEnv.databaseURL!, Self.jid("n")])
        #expect(nowhere.code == 4, "\(nowhere.err)")
        // The slot is free again: the next job runs.
        let after = Self.jid("a")
        try push(Self.job(after, "noop"))
        #expect(try outcomeRow(after)?[0] == "succeeded")
        // Cancelled jobs are not retried.
        #expect(try redis.command("ZCARD", keys.retry).check().int == 0)
        #expect(try redis.command("ZCARD", keys.dead).check().int == 0)
    }

    @Test func sidekiqsCancelFlagStopsARunningJob() throws {
        let worker = try WorkerProcess(namespace: namespace, arguments: ["--queues", "cancel", "-c", "2"])
        try worker.waitUntilServing()
        let jid = Self.jid("k")
        try push(Self.job(jid))
        try waitUntilTaken(jid, worker)
        // What Sidekiq::Client#cancel! (7.3) writes: HSETNX it-<jid> cancelled <unix seconds>, EXPIRE 30 days.
        let redis = try TestEnv.redis()
        _ = try redis.command("HSETNX", keys.prefix + "it-" + jid, "cancelled", Int(Date().timeIntervalSince1970)).check()
        let started = Date()
        let row = try #require(try outcomeRow(jid))
        #expect(row[0] == "cancelled", "\(row)")
        #expect(Date().timeIntervalSince(started) < 1.5)
    }

    @Test func aJobCancelledBeforeAWorkerStartsItIsRecordedWithoutRunning() throws {
        // No worker yet: the job waits; cancel it, then push the same payload again (a producer's retry of its own
        // request): the worker must not run that jid.
        let jid = Self.jid("b")
        try push(Self.job(jid, "noop"))
        let r = try TestEnv.conveyor(["cancel", "--namespace", namespace, jid])
        #expect(r.code == 0, "\(r.err)")
        try push(Self.job(jid, "noop"))
        let worker = try WorkerProcess(namespace: namespace, arguments: ["--queues", "cancel", "-c", "1"])
        try worker.waitUntilServing()
        let db = try PostgresConnection(url: TestEnv.databaseURL!)
        let end = Date().addingTimeInterval(20)
        var rows: [[String?]] = []
        while Date() < end {
            rows = try db.query("SELECT status, error_message FROM conveyor.job_results WHERE jid = $1", [jid]).rows
            if try TestEnv.redis().command("LLEN", keys.queue("cancel")).check().int == 0, worker.log.contains("cancelled before it started"), rows.count == 1 { break }
            usleep(50_000)
        }
        #expect(worker.log.contains("cancelled before it started"), "\(worker.log.suffix(2000))")
        // One row (the worker's record and the cancel's are the same jid's), cancelled: noop never ran.
        #expect(rows.count == 1)
        #expect(rows.first?[0] == "cancelled", "\(rows)")
    }

    @Test func unknownAndDeadJidsAndBadInputAreSaidSo() throws {
        let unknown = try TestEnv.conveyor(["cancel", "--namespace", namespace, Self.jid("u")])
        #expect(unknown.code == 4)
        #expect(unknown.out.contains("not found"))
        let deadJID = Self.jid("d")
        var dead = Self.job(deadJID, "noop")
        dead["error_class"] = .string("Boom")
        _ = try TestEnv.redis().command("ZADD", keys.dead, Date().timeIntervalSince1970, JSONValue.object(dead).text).check()
        let d = try TestEnv.conveyor(["cancel", "--namespace", namespace, deadJID])
        #expect(d.code == 4)
        #expect(d.out.contains("dead already"))
        #expect(try TestEnv.redis().command("EXISTS", keys.prefix + "it-" + deadJID).check().int == 0, "a dead job is not flagged")
        for bad in ["", "a b", String(repeating: "x", count: 129), "../x", "\u{1}"] {
            let r = try TestEnv.conveyor(["cancel", "--namespace", namespace, bad])
            #expect(r.code == 64, "\(bad.debugDescription): \(r.err)")
        }
    }

    @Test func aJobsOwnTimeoutShortensItsClassLimitAndABadOneIsRefused() throws {
        let worker = try WorkerProcess(namespace: namespace, arguments: ["--queues", "cancel", "-c", "2"])
        try worker.waitUntilServing()
        let short = Self.jid("t")
        var job = Self.job(short, ms: 30_000, extra: [("timeout", JSONValue(0.5))])
        job["retry"] = .bool(false)
        try push(job)
        let row = try #require(try outcomeRow(short))
        #expect(row[0] == "dead" && row[1] == "JobTimeout", "\(row)")
        #expect(row[2]?.contains("its own") == true, "\(row)")
        // Each bad value: the job is dead as MalformedJob naming the field, its payload kept verbatim.
        var bad: [(String, String)] = []
        for (tag, value) in [("i", "1e400"), ("z", "0"), ("n", "-1"), ("h", "604801"), ("s", "\"5\"")] {
            let jid = Self.jid(tag)
            var job = Self.job(jid, "noop")
            job["timeout"] = try JSONValue(parsing: value)
            try push(job)
            bad.append((jid, value))
        }
        let redis = try TestEnv.redis()
        let end = Date().addingTimeInterval(20)
        var dead: [String] = []
        while Date() < end {
            dead = (try redis.command("ZRANGE", keys.dead, 0, -1).check().array ?? []).compactMap(\.text)
            if bad.allSatisfy({ b in dead.contains { $0.contains(b.0) } }) { break }
            usleep(50_000)
        }
        for (jid, value) in bad {
            let entry = dead.first { $0.contains(jid) }
            #expect(entry?.contains("MalformedJob") == true, "timeout \(value): \(entry ?? "not dead")")
            // The error message inside the dead entry's JSON: \"timeout\" is <value>.
            #expect(entry?.contains(#"\"timeout\" is"#) == true, "timeout \(value): \(entry ?? "")")
        }
    }
}
