import ConveyorCore
import Foundation
import Redis
import Schedules
import SidekiqQueue
import Testing
import Web

/// The Schedules page over schedules written into Redis as workers write them (`ScheduleStore.sync`), and its buttons.
@Suite(.enabled(if: TestEnv.hasServers, "needs REDIS_URL and DATABASE_URL"))
struct DashboardScheduleTests {
    static func schedule(_ name: String, _ line: String, queue: String = "low") throws -> Schedule {
        Schedule(name: name, cron: try CronExpression(line), className: "noop", queue: queue, args: [.string("<b>x</b>")], origin: "conveyor.yml")
    }

    @Test func listsEachScheduleWithItsCronLineNextRunAndStatus() async throws {
        let s = try Session()
        let store = ScheduleStore(prefix: s.keys.prefix)
        try store.sync(
            [try Self.schedule("nightly-digest", "30 2 * * * Europe/Berlin"), try Self.schedule("every-second", "* * * * * *")], on: s.redis)
        let page = await s.get("/schedules")
        #expect(page.status == 200)
        let html = page.text
        #expect(html.contains("nightly-digest"))
        #expect(html.contains("30 2 * * * Europe/Berlin"))
        #expect(html.contains("every-second"))
        #expect(html.contains(">never<"), "no tick has run yet")
        // The next run of the Berlin schedule, in UTC as every time on the dashboard: 00:30 or 01:30 depending on DST.
        let next = try #require(try CronExpression("30 2 * * * Europe/Berlin").next(after: Int64(Date().timeIntervalSince1970)))
        let shown = html.contains(Self.utc(next)) || html.contains(Self.utc(next - 86_400))
        #expect(shown, "the next run is on the page")
        // Arguments are escaped, never markup.
        #expect(!html.contains("<b>x</b>"))
        #expect(html.contains("Run now"))
        #expect(html.contains("/schedules/nightly-digest/disable"))
    }

    @Test func runNowPushesOneJobAndTheLastJobLinksToIt() async throws {
        let s = try Session()
        let store = ScheduleStore(prefix: s.keys.prefix)
        try store.sync([try Self.schedule("cleanup", "0 3 * * *")], on: s.redis)
        let r = await s.post("/schedules/cleanup/run", [])
        #expect(r.status == 303)
        #expect(try s.redis.command("LLEN", s.keys.queue("low")).check().int == 1)
        let member = try #require(try s.redis.command("LINDEX", s.keys.queue("low"), "0").check().text)
        let job = try JSONValue(parsing: Array(member.utf8))
        #expect(job["class"]?.stringValue == "noop")
        #expect(job["cron"]?["name"]?.stringValue == "cleanup")
        let jid = try #require(job["jid"]?.stringValue)
        let page = await s.get("/schedules").text
        #expect(page.contains("/lookup?q=\(jid)"))
        #expect(page.contains("Queued cleanup as \(jid)"), "the flash names the jid")
        // The action is in the Actions history with who did it.
        #expect(await s.get("/actions").text.contains("run schedule cleanup now"))
    }

    @Test func disableStopsTicksAndEnableLetsThemRunAgain() async throws {
        let s = try Session()
        let store = ScheduleStore(prefix: s.keys.prefix)
        let schedule = try Self.schedule("hourly", "0 * * * *")
        try store.sync([schedule], on: s.redis)
        await s.post("/schedules/hourly/disable", [])
        #expect(try store.info("hourly", on: s.redis)["status"] == "disabled")
        let disabled = await s.get("/schedules").text
        #expect(disabled.contains("/schedules/hourly/enable"))
        // What every worker's scheduler does for a tick: a disabled schedule pushes nothing.
        let tick = Int64(Date().timeIntervalSince1970) / 3600 * 3600
        let claim = try store.claim(schedule, tick: tick, now: Double(tick), queueKey: s.keys.queue("low"), queuesKey: s.keys.queues, on: s.redis)
        #expect(claim == .disabled)
        await s.post("/schedules/hourly/enable", [])
        #expect(try store.info("hourly", on: s.redis)["status"] == "enabled")
        let again = try store.claim(schedule, tick: tick, now: Double(tick), queueKey: s.keys.queue("low"), queuesKey: s.keys.queues, on: s.redis)
        #expect(again == .pushed(jid: ScheduleStore.jid(name: "hourly", tick: tick)))
    }

    @Test func unknownOrMalformedNamesAndForgedFormsChangeNothing() async throws {
        let s = try Session()
        let store = ScheduleStore(prefix: s.keys.prefix)
        try store.sync([try Self.schedule("cleanup", "0 3 * * *")], on: s.redis)
        let missing = await s.post("/schedules/nope/run", [])
        #expect(missing.status == 303)
        #expect(await s.get("/schedules").text.contains("No schedule nope in Redis"))
        #expect(await s.post("/schedules/%3Cscript%3E/run", []).status == 404)
        #expect(await s.post("/schedules/cleanup/explode", []).status == 404)
        // Without the form token (a cross-site form), nothing runs.
        let forged = await s.post("/schedules/cleanup/run", [], csrf: "forged")
        #expect(forged.status == 403)
        #expect(try s.redis.command("LLEN", s.keys.queue("low")).check().int == 0)
        let readOnly = try Session(readOnly: true)
        try ScheduleStore(prefix: readOnly.keys.prefix).sync([try Self.schedule("cleanup", "0 3 * * *")], on: readOnly.redis)
        #expect(await readOnly.post("/schedules/cleanup/run", []).status == 403)
        #expect(!(await readOnly.get("/schedules").text.contains("Run now")))
    }

    static func utc(_ t: Int64) -> String {
        var seconds = time_t(t)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02d %02d:%02d", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min)
    }
}
