import ConveyorCore
import Foundation
import Redis
import SidekiqQueue
import Testing
import Web

/// The pages' rough edges an operator meets daily: one scale in the throughput chart, one line per job on set pages,
/// Scheduled showing when, the job page saying whether an error was permanent, queues nobody serves.
@Suite(.enabled(if: TestEnv.hasServers, "needs REDIS_URL and DATABASE_URL"))
struct DashboardPagesTests {
    /// The `height` of the first `<rect>` whose title contains `title`.
    static func barHeight(_ svg: String, _ title: String) -> Double? {
        guard let t = svg.range(of: title), let rect = svg.range(of: "<rect", options: .backwards, range: svg.startIndex..<t.lowerBound),
            let h = svg.range(of: "height=\"", range: rect.upperBound..<t.lowerBound)
        else { return nil }
        return Double(svg[h.upperBound...].prefix { $0 != "\"" })
    }

    /// Today's day in UTC, as Sidekiq's `stat:*:<day>` keys name it.
    static func today() -> String {
        var day = time_t(Int(Date().timeIntervalSince1970))
        var parts = tm()
        gmtime_r(&day, &parts)
        return String(format: "%04d-%02d-%02d", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday)
    }

    @Test func processedAndFailedBarsShareOneScale() async throws {
        let s = try Session()
        let today = Self.today()
        // Today 40 processed and 40 failed; another day 80 processed: a failed bar of 40 is as tall as a processed 40.
        _ = try s.redis.pipeline([
            RedisCommand("SET", s.keys.processed(day: today), 40), RedisCommand("SET", s.keys.failed(day: today), 40),
        ])
        let html = await s.get("/").text
        let label = String(today.dropFirst(5))
        let up = try #require(Self.barHeight(html, "\(label): 40 processed"), "no processed bar for \(label)")
        let down = try #require(Self.barHeight(html, "\(label): 40 failed"))
        #expect(abs(up - down) < 0.11, "processed \(up) and failed \(down) drawn on different scales")
        #expect(html.contains(">jobs/day</text>") && html.contains(">UTC</text>"), "labelled axes")
    }

    @Test func countsAtTheExtremesDrawWithoutTrapping() async throws {
        let s = try Session()
        let today = Self.today()
        for (processed, failed) in [("9223372036854775807", "9223372036854775807"), ("-9223372036854775808", "9223372036854775807"), ("1e400", "-1")] {
            _ = try s.redis.pipeline([RedisCommand("SET", s.keys.processed(day: today), processed), RedisCommand("SET", s.keys.failed(day: today), failed)])
            let page = await s.get("/")
            #expect(page.status == 200, "\(processed) / \(failed)")
            #expect(page.text.contains("jobs/day"))
        }
    }

    @Test func setPagesShowOneLinePerJobAndScheduledShowsWhen() async throws {
        let s = try Session()
        let jid = "a" + String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(23)).lowercased()
        try s.addToSet(s.keys.retry, jid: jid, args: "[{\"to\":\"ops@example.net\",\"note\":\"line one\\nline two\"}]",
                       error: "SMTPRejected: 550 first line\nsecond line", score: Date().timeIntervalSince1970 + 600)
        let retry = await s.get("/retry").text
        #expect(retry.contains("<th>Arguments</th>"))
        #expect(retry.contains("ops@example.net"))
        #expect(retry.contains("SMTPRejected: 550 first line second line"), "the error on one line")
        let scheduled = "s" + String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(23)).lowercased()
        let at = Date().timeIntervalSince1970 + 7200
        try s.addToSet(s.keys.schedule, jid: scheduled, error: nil, score: at)
        let page = await s.get("/scheduled").text
        #expect(!page.contains("<th class=\"num\">Attempts</th>") && !page.contains("<th>Error</th>"), "no failure columns on Scheduled")
        var t = time_t(Int(at))
        var parts = tm()
        gmtime_r(&t, &parts)
        #expect(page.contains(String(format: "%02d:%02d:%02dZ", parts.tm_hour, parts.tm_min, parts.tm_sec)), "the absolute time")
        #expect(page.contains("(in 2.0 h)") || page.contains("(in 1.9 h)") || page.contains("(in 120 min)"), "and the relative one")
    }

    @Test func theJobPageSaysWhetherTheErrorWasPermanent() async throws {
        let s = try Session()
        let permanent = "p" + String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(23)).lowercased()
        let member = try s.addToSet(s.keys.dead, jid: permanent, error: "InvalidArguments: no source")
        // What JobTransitions writes for a permanent failure.
        _ = try s.redis.command("ZREM", s.keys.dead, member).check()
        _ = try s.redis.command("ZADD", s.keys.dead, Date().timeIntervalSince1970, String(member.dropLast()) + ",\"error_permanent\":true}").check()
        let exhausted = "e" + String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(23)).lowercased()
        try s.addToSet(s.keys.dead, jid: exhausted, error: "SMTPUnavailable: 421 try later")
        #expect(await s.get("/dead/job?jid=\(permanent)").text.contains("A permanent error: the job was not retried"))
        #expect(await s.get("/dead/job?jid=\(exhausted)").text.contains("Its retries were used up after 3 runs."))
    }

    @Test func aQueueNoLiveWorkerServesIsMarked() async throws {
        let s = try Session()
        _ = try s.redis.pipeline([RedisCommand("SADD", s.keys.queues, "orphans"), RedisCommand("LPUSH", s.keys.queue("orphans"), "{\"class\":\"noop\",\"args\":[{}]}")])
        let page = await s.get("/queues").text
        #expect(page.contains(">no worker</span>"))
    }
}
