import ConveyorCore
import Foundation
import Operations
import Postgres
import Redis
import SidekiqQueue
import Testing
import Web

@Suite(.enabled(if: TestEnv.hasServers, "needs REDIS_URL and DATABASE_URL"))
struct DashboardActionTests {
    static func jid(_ n: Int, _ tag: String = "a") -> String {
        let base = "\(tag)\(n)"
        return String(repeating: "0", count: max(0, 24 - base.count)) + base
    }

    @Test func deadJobsArePagedNewestFirstAndFilteredFromTheURL() async throws {
        let s = try Session(pageSize: 10)
        let now = Date().timeIntervalSince1970
        for i in 0..<35 {
            try s.addToSet(s.keys.dead, jid: Self.jid(i), jobClass: i % 2 == 0 ? "image.thumbnail" : "email.send", score: now - Double(i))
        }
        let first = await s.get("/dead").text
        #expect(first.contains(Self.jid(0)) && first.contains(Self.jid(9)) && !first.contains(Self.jid(10)))
        #expect(first.contains("1–10 of 35"))
        #expect(first.contains("href=\"/dead?page=2\""))
        let third = await s.get("/dead?page=4").text
        #expect(third.contains(Self.jid(34)) && !third.contains(Self.jid(29)))
        #expect(!third.contains("Older →"))
        // Filtered: odd jids only. The first page stops after its tenth match (jid 19, position 20) and links on from there.
        let first10 = await s.get("/dead?class=email.send").text
        #expect(first10.contains(Self.jid(1)) && first10.contains(Self.jid(19)) && !first10.contains(Self.jid(21)) && !first10.contains(Self.jid(2)))
        #expect(first10.contains("10 matching among entries 1–20 of 35"))
        #expect(first10.contains("href=\"/dead?class=email.send&amp;from=20\""))
        let filtered = await s.get("/dead?class=email.send&from=20").text
        #expect(filtered.contains(Self.jid(21)) && filtered.contains(Self.jid(33)))
        #expect(!filtered.contains(Self.jid(19)) && !filtered.contains(Self.jid(22)))
        #expect(filtered.contains("value=\"email.send\""))
        #expect(filtered.contains("7 matching among entries 21–35 of 35") && !filtered.contains("Look further"))
        #expect(await s.get("/dead?error=(").text.contains("not a valid regular expression"))
        #expect(await s.get("/dead?since=yesterday-ish").text.contains("since yesterday-ish: not a time"))
    }

    @Test func retryingADeadJobPutsItBackOnItsQueueOnce() async throws {
        let s = try Session()
        let jid = Self.jid(1, "r")
        let score = Date().timeIntervalSince1970.rounded()
        try s.addToSet(s.keys.dead, jid: jid, queue: "critical", score: score)
        let detail = await s.get("/dead/job?jid=\(jid)&score=\(score)")
        #expect(detail.status == 200 && detail.text.contains("RuntimeError: boom"))
        let r = await s.post("/dead/retry", [("one", "\(jid) \(score)")])
        #expect(r.status == 303)
        #expect(try s.redis.command("ZCARD", s.keys.dead).check().int == 0)
        let queued = try #require(try s.redis.command("LINDEX", s.keys.queue("critical"), 0).check().text)
        #expect(queued.contains(jid) && queued.contains("replayed_at"))
        #expect(try s.redis.command("SISMEMBER", s.keys.queues, "critical").check().int == 1)
        // Again: it is gone, nothing is pushed twice.
        await s.post("/dead/retry", [("one", "\(jid) \(score)")])
        #expect(try s.redis.command("LLEN", s.keys.queue("critical")).check().int == 1)
        #expect(await s.get("/dead").text.contains("is no longer in dead"))
        let actions = await s.get("/actions").text
        #expect(actions.contains("replay \(jid) from dead") && actions.contains("-@127.0.0.1"))
    }

    @Test func bulkDeleteWithAFilterIsConfirmedThenTouchesOnlyMatchingJobs() async throws {
        let s = try Session()
        for i in 0..<12 {
            try s.addToSet(s.keys.dead, jid: Self.jid(i, "b"), error: i < 5 ? "Timeout: upstream slow" : "RuntimeError: boom")
        }
        let ask = await s.post("/dead/delete", [("scope", "all"), ("error", "^Timeout")])
        #expect(ask.status == 200)
        #expect(ask.text.contains("Delete 5 jobs in dead (matching error ~ ^Timeout)?"))
        #expect(try s.redis.command("ZCARD", s.keys.dead).check().int == 12)
        let go = await s.post("/dead/delete", [("scope", "all"), ("error", "^Timeout"), ("confirm", "1")])
        #expect(go.status == 303 && go.header("Location") == "/actions")
        #expect(try s.eventually { try s.redis.command("ZCARD", s.keys.dead).check().int == 7 })
        let left = try JobSet(.dead, keys: s.keys, connection: s.redis).list(JobFilter())
        #expect(left.allSatisfy { $0.errorClass == "RuntimeError" })
        var finished = false
        for _ in 0..<200 where !finished {
            finished = await s.get("/actions").text.contains("finished #")
            if !finished { try await Task.sleep(for: .milliseconds(25)) }
        }
        #expect(finished)
        // Selected: two jids, confirmed.
        let two = [Self.jid(6, "b"), Self.jid(7, "b")]
        let confirm = await s.post("/dead/retry", [("scope", "selected"), ("jid", two[0]), ("jid", two[1])])
        #expect(confirm.text.contains("Retry 2 jobs in dead (2 selected)?"))
        await s.post("/dead/retry", [("scope", "selected"), ("jid", two[0]), ("jid", two[1]), ("confirm", "1"), ("rate", "100/s")])
        #expect(try s.eventually { try s.redis.command("LLEN", s.keys.queue("default")).check().int == 2 })
        #expect(try s.redis.command("ZCARD", s.keys.dead).check().int == 5)
        #expect(await s.post("/dead/retry", [("scope", "all"), ("rate", "fast"), ("confirm", "1")]).status == 400)
    }

    @Test func scheduledJobsRunNowAndRetriesCanBeDeleted() async throws {
        let s = try Session()
        let later = Date().timeIntervalSince1970 + 3600
        try s.addToSet(s.keys.schedule, jid: Self.jid(1, "s"), queue: "low", error: nil, score: later)
        try s.addToSet(s.keys.retry, jid: Self.jid(2, "s"), score: later)
        #expect(await s.get("/scheduled").text.contains("Run now"))
        await s.post("/scheduled/retry", [("one", "\(Self.jid(1, "s")) \(later)")])
        #expect(try s.redis.command("LLEN", s.keys.queue("low")).check().int == 1)
        await s.post("/retry/delete", [("one", "\(Self.jid(2, "s")) \(later)")])
        #expect(try s.redis.command("ZCARD", s.keys.retry).check().int == 0)
    }

    @Test func queuesArePausedResumedPagedAndTheirJobsDeleted() async throws {
        let s = try Session(pageSize: 5)
        let queue = "media"
        _ = try s.redis.command("SADD", s.keys.queues, queue).check()
        for i in 0..<8 {
            let job = #"{"class":"noop","args":[\#(i)],"queue":"media","jid":"\#(Self.jid(i, "q"))","enqueued_at":\#(Date().timeIntervalSince1970 - 30)}"#
            _ = try s.redis.command("LPUSH", s.keys.queue(queue), job).check()
        }
        let list = await s.get("/queues").text
        #expect(list.contains("href=\"/queues/media\"") && list.contains(">8<"))
        let page = await s.get("/queues/media").text
        #expect(page.contains(Self.jid(7, "q")) && !page.contains(Self.jid(2, "q")) && page.contains("?page=2"))
        await s.post("/queues/media/pause", [])
        #expect(try QueuePauses(keys: s.keys, connection: s.redis).paused() == ["media"])
        #expect(try QueueSnapshot.read(s.redis, keys: s.keys).queues.first { $0.name == "media" }?.paused == true)
        #expect(await s.get("/queues").text.contains("paused"))
        let metrics = ConveyorMetrics()
        metrics.update(from: try QueueSnapshot.read(s.redis, keys: s.keys))
        #expect(String(decoding: metrics.render(), as: UTF8.self).contains(#"conveyor_queue_paused{queue="media"} 1"#))
        await s.post("/queues/media/resume", [])
        #expect(try QueuePauses(keys: s.keys, connection: s.redis).paused().isEmpty)
        // Delete the newest job by its exact bytes.
        let newest = try #require(try s.redis.command("LINDEX", s.keys.queue(queue), 0).check().bytes)
        await s.post("/queues/media/delete", [("member", Data(newest).base64EncodedString())])
        #expect(try s.redis.command("LLEN", s.keys.queue(queue)).check().int == 7)
        #expect(!(await s.get("/queues/media").text.contains("<td class=\"mono\">\(Self.jid(7, "q"))</td>")))
        #expect(await s.get("/queues/media").text.contains("<td class=\"mono\">\(Self.jid(6, "q"))</td>"))
    }

    @Test func aPausedQueueIsNotFetchedFromWithinASecondAndResumes() async throws {
        let s = try Session()
        let queue = TestEnv.unique("paused")
        let backend = SidekiqBackend(redis: try TestEnv.endpoint(), keys: s.keys, identity: TestEnv.unique("proc"))
        defer { backend.close() }
        // This backend read the paused set before the pause; it rereads it at most once a second.
        _ = try await backend.fetch(from: [queue], count: 1)
        try QueuePauses(keys: s.keys, connection: s.redis).pause(queue)
        _ = try s.redis.command("LPUSH", s.keys.queue(queue), #"{"class":"noop","args":[],"jid":"ffffffffffffffffffffffff"}"#).check()
        let fresh = SidekiqBackend(redis: try TestEnv.endpoint(), keys: s.keys, identity: TestEnv.unique("proc"))
        defer { fresh.close() }
        #expect(try await fresh.fetch(from: [queue], count: 10).isEmpty)
        // The promise is "within a second": past it, the older backend must have seen the pause too.
        try await Task.sleep(for: .milliseconds(1050))
        #expect(try await backend.fetch(from: [queue], count: 10).isEmpty)
        #expect(try await backend.waitForJob(on: queue, timeout: 1) == nil)
        #expect(try s.redis.command("LLEN", s.keys.queue(queue)).check().int == 1)
        try QueuePauses(keys: s.keys, connection: s.redis).resume(queue)
        var got: [FetchedJob] = []
        let deadline = Date().addingTimeInterval(3)
        while got.isEmpty && Date() < deadline {
            got = try await backend.fetch(from: [queue], count: 10)
            if got.isEmpty { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(got.count == 1)
    }

    @Test func busyShowsProcessesAndTheirJobsAndSendsQuietAndStop() async throws {
        let s = try Session()
        let identity = "host-1:4242:abc"
        let now = Date().timeIntervalSince1970
        let info = #"{"hostname":"host-1","pid":4242,"tag":"conveyor","concurrency":10,"queues":["default"],"started_at":\#(now - 600),"identity":"\#(identity)"}"#
        let payload = #"{\"class\":\"image.thumbnail\",\"jid\":\"bbbbbbbbbbbbbbbbbbbbbbbb\",\"args\":[{\"source\":\"<x>.jpg\"}],\"queue\":\"default\"}"#
        _ = try s.redis.pipeline([
            RedisCommand("SADD", s.keys.processes, identity),
            RedisCommand("HSET", s.keys.process(identity), "info", info, "busy", "1", "beat", String(now), "quiet", "false", "rss", "204800"),
            RedisCommand("HSET", s.keys.workers(identity), "t1", #"{"queue":"default","payload":"\#(payload)","run_at":\#(Int(now) - 5)}"#),
        ])
        let page = await s.get("/busy").text
        #expect(page.contains("host-1") && page.contains("4242") && page.contains("200 MB") && page.contains("1/10"))
        #expect(page.contains("bbbbbbbbbbbbbbbbbbbbbbbb") && page.contains("image.thumbnail") && page.contains("&lt;x&gt;.jpg"))
        await s.post("/busy/quiet", [("identity", identity)])
        await s.post("/busy/stop", [("identity", identity)])
        #expect(try s.redis.command("LRANGE", s.keys.signals(identity), 0, -1).check().array?.compactMap(\.text) == ["TERM", "TSTP"])
        #expect(await s.get("/busy").text.contains("Sent stop"))
        await s.post("/busy/stop", [("identity", "no-such-process")])
        #expect(try s.redis.command("EXISTS", s.keys.signals("no-such-process")).check().int == 0)
    }

    @Test func theOverviewShowsCountsChartsAndTheJournalBacklog() async throws {
        let s = try Session()
        let today = JobTime.day(Date().timeIntervalSince1970)
        _ = try s.redis.pipeline([
            RedisCommand("SET", s.keys.processed, "12345"), RedisCommand("SET", s.keys.failed, "67"),
            RedisCommand("SET", s.keys.processed(day: today), "321"), RedisCommand("SET", s.keys.failed(day: today), "9"),
            RedisCommand("SADD", s.keys.conveyorProcesses, "p1"), RedisCommand("HSET", s.keys.outcomes("p1"), "j1:1", "x", "j2:1", "y"),
        ])
        try s.addToSet(s.keys.dead, jid: Self.jid(1, "o"))
        await s.dashboard.sampler.sample()
        let page = await s.get("/")
        #expect(page.status == 200)
        #expect(page.text.contains(">12.3k<") && page.text.contains(">67<"))
        #expect(page.text.contains("<svg") && page.text.contains("321 processed") && page.text.contains("9 failed"))
        #expect(page.text.contains("2 job outcomes acknowledged in Redis"))
        #expect(page.text.contains("data-refresh=\"5\""))
        #expect(page.text.contains("CONVEYOR_WEB_METRICS_URLS"))
    }
}

