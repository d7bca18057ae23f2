import ConveyorCore
import Foundation
import Redis
import Testing

/// The BullMQ pages of the real `conveyor web` over a real socket: counts per queue, failed jobs with Retry (BullMQ's
/// own reprocessJob, loaded from the pinned package), active jobs with their locks, and the borders of each.
@Suite(.enabled(if: TestEnv.hasServers && WebProcess.binary != nil, "needs the test servers and CONVEYOR_BIN"))
struct DashboardBullMQTests {
    /// A failed job as BullMQ's moveToFinished leaves it.
    static func failed(_ redis: RedisConnection, prefix: String, queue: String, id: String, reason: String, at ms: Int) throws {
        let key = "\(prefix):\(queue):\(id)"
        _ = try redis.command(
            "HSET", key, "name", "image.thumbnail", "data", #"{"<b>n</b>":\#(id)}"#, "opts", #"{"attempts":3}"#, "atm", "3", "ats", "3",
            "failedReason", reason, "finishedOn", String(ms), "processedOn", String(ms - 5), "timestamp", String(ms - 10)
        ).check()
        _ = try redis.command("ZADD", "\(prefix):\(queue):failed", ms, id).check()
    }

    @Test func failedJobsAreShownEscapedAndRetriedThroughBullMQsScript() async throws {
        let prefix = TestEnv.unique("bdash").replacingOccurrences(of: ":", with: "")
        let web = try await WebProcess.start(environment: ["CONVEYOR_BULLMQ_QUEUES": "bq", "CONVEYOR_BULLMQ_PREFIX": prefix])
        let redis = try TestEnv.redis()
        let now = Int(Date().timeIntervalSince1970 * 1000)
        try Self.failed(redis, prefix: prefix, queue: "bq", id: "1", reason: "<script>alert(1)</script> boom", at: now - 1000)
        try Self.failed(redis, prefix: prefix, queue: "bq", id: "2", reason: "second", at: now)
        // Active: job 3 lost its lock (stalled), job 4 holds one.
        _ = try redis.command("HSET", "\(prefix):bq:3", "name", "video.transcode", "processedOn", String(now), "data", "{}", "opts", "{}").check()
        _ = try redis.command("HSET", "\(prefix):bq:4", "name", "video.transcode", "processedOn", String(now), "pb", "worker-a", "data", "{}", "opts", "{}").check()
        _ = try redis.command("RPUSH", "\(prefix):bq:active", "4", "3").check()
        _ = try redis.command("SET", "\(prefix):bq:4:lock", "token", "PX", 60_000).check()

        let overview = try await web.get("/bullmq")
        #expect(overview.status == 200)
        #expect(overview.text.contains(#"href="/bullmq/bq""#))
        #expect(overview.text.contains(#"<a href="/bullmq" aria-current="page">BullMQ</a>"#), "the nav names the page")

        let page = try await web.get("/bullmq/bq")
        #expect(page.status == 200)
        let html = page.text
        #expect(!html.contains("<script>alert(1)</script>") && html.contains("&lt;script&gt;alert(1)&lt;/script&gt; boom"), "reasons are escaped")
        #expect(!html.contains("<b>n</b>"), "data is escaped")
        #expect(html.contains("3/3"), "attempts made of attempts")
        #expect(html.contains(#"<span class="tag warn">stalled</span>"#), "the job without a lock is stalled")
        #expect(html.contains("worker-a"))
        // Newest failure first.
        let second = try #require(html.range(of: #"value="2"><button>Retry"#)), first = try #require(html.range(of: #"value="1"><button>Retry"#))
        #expect(second.lowerBound < first.lowerBound)

        let cookie = try #require(page.csrfCookie), token = try #require(page.formToken)
        let own = ["Origin": "http://\(web.authority)", "Cookie": "conveyor_csrf=\(cookie)"]
        // Forged: no token. Nothing moves.
        #expect(try await web.post("/bullmq/bq/retry", body: "id=1", own).status == 403)
        #expect(try redis.command("ZCARD", "\(prefix):bq:failed").check().int == 2)
        // Not a configured queue, not an id.
        #expect(try await web.post("/bullmq/other/retry", body: "csrf=\(token)&id=1", own).status == 404)
        #expect(try await web.get("/bullmq/other").status == 404)
        #expect(try await web.post("/bullmq/bq/retry", body: "csrf=\(token)&id=a%3Ab", own).status == 400)

        let retried = try await web.post("/bullmq/bq/retry", body: "csrf=\(token)&id=1", own)
        #expect(retried.status == 303)
        #expect(try redis.command("ZSCORE", "\(prefix):bq:failed", "1").check().isNull)
        #expect(try redis.command("LRANGE", "\(prefix):bq:wait", 0, -1).check().array?.compactMap(\.text) == ["1"])
        #expect(try redis.command("HEXISTS", "\(prefix):bq:1", "failedReason").check().int == 0, "BullMQ's script clears the reason")
        // Twice: the job is no longer failed, and nothing moves again.
        #expect(try await web.post("/bullmq/bq/retry", body: "csrf=\(token)&id=1", own).status == 303)
        #expect(try redis.command("LLEN", "\(prefix):bq:wait").check().int == 1)

        // Retry all: confirmed first, with the count.
        let confirm = try await web.post("/bullmq/bq/retry", body: "csrf=\(token)&all=1", own)
        #expect(confirm.status == 200 && confirm.text.contains("Retry all 1 failed jobs of BullMQ queue bq?"))
        #expect(try redis.command("ZCARD", "\(prefix):bq:failed").check().int == 1)
        #expect(try await web.post("/bullmq/bq/retry", body: "csrf=\(token)&all=1&confirm=1", own).status == 303)
        #expect(try redis.command("ZCARD", "\(prefix):bq:failed").check().int == 0)
        #expect(try redis.command("LLEN", "\(prefix):bq:wait").check().int == 2)

        let actions = try await web.get("/actions").text
        #expect(actions.contains("retry BullMQ job 1 of bq") && actions.contains("retry all failed jobs of BullMQ queue bq (1)"))
    }

    @Test func withoutBullMQQueuesThereIsNoPageAndReadOnlyRefusesRetry() async throws {
        let plain = try await WebProcess.start(environment: ["CONVEYOR_BULLMQ_QUEUES": ""])
        #expect(try await plain.get("/bullmq").status == 404)
        #expect(try await !plain.get("/").text.contains(#"href="/bullmq""#))

        let prefix = TestEnv.unique("bro").replacingOccurrences(of: ":", with: "")
        let readOnly = try await WebProcess.start(
            environment: ["CONVEYOR_BULLMQ_QUEUES": "bq", "CONVEYOR_BULLMQ_PREFIX": prefix, "CONVEYOR_WEB_READ_ONLY": "on"])
        let redis = try TestEnv.redis()
        try Self.failed(redis, prefix: prefix, queue: "bq", id: "7", reason: "x", at: Int(Date().timeIntervalSince1970 * 1000))
        let page = try await readOnly.get("/bullmq/bq")
        #expect(page.status == 200 && page.text.contains(">7<") && !page.text.contains("<button>Retry"))
        let cookie = try #require(page.csrfCookie)
        let r = try await readOnly.post("/bullmq/bq/retry", body: "id=7", ["Origin": "http://\(readOnly.authority)", "Cookie": "conveyor_csrf=\(cookie)"])
        #expect(r.status == 403 && r.text.contains("read-only"), "\(r.text)")
        #expect(try redis.command("ZCARD", "\(prefix):bq:failed").check().int == 1)
    }
}
