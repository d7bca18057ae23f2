import ConveyorCore
import Foundation
import Redis
import SidekiqQueue
import Testing
import Web

/// The dashboard's Cancel buttons (`POST /jobs/cancel`): what `conveyor cancel` does, behind the form token.
@Suite(.enabled(if: TestEnv.hasServers, "needs REDIS_URL and DATABASE_URL"))
struct DashboardCancelTests {
    @Test func aScheduledJobIsCancelledFromItsPageAndFlaggedTheSidekiqWay() async throws {
        let s = try Session()
        let jid = "c" + String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(23)).lowercased()
        try s.addToSet(s.keys.schedule, jid: jid, queue: "low", error: nil, score: Date().timeIntervalSince1970 + 3600)
        let page = await s.get("/scheduled/job?jid=\(jid)").text
        #expect(page.contains("action=\"/jobs/cancel\""), "the job page has a Cancel button")
        let r = await s.post("/jobs/cancel", [("jid", jid), ("back", "scheduled")])
        #expect(r.status == 303)
        #expect(r.header("Location") == "/scheduled")
        #expect(try s.redis.command("ZCARD", s.keys.schedule).check().int == 0)
        #expect(try s.redis.command("HGET", s.keys.prefix + "it-" + jid, "cancelled").check().text != nil)
        // Its cancelled outcome is journaled for the result writers.
        let orphans = (try s.redis.command("SMEMBERS", s.keys.orphanedOutcomes).check().array ?? []).compactMap(\.text)
        #expect(orphans.count == 1)
        let lines = (try s.redis.command("HVALS", orphans.first ?? "").check().array ?? []).compactMap(\.text).joined()
        #expect(lines.contains(jid) && lines.contains("cancelled") && lines.contains("JobCancelled"), "\(lines)")
        #expect(await s.get("/scheduled").text.contains("Cancelled \(jid) (was scheduled)"))
        #expect(await s.get("/actions").text.contains("cancel job \(jid)"))
        // The lookup finds it nowhere now; and a dead job offers no Cancel.
        try s.addToSet(s.keys.dead, jid: jid + "d")
        let lookup = await s.get("/lookup?q=\(jid)d").text
        #expect(lookup.contains("Job in dead") && !lookup.contains("action=\"/jobs/cancel\""))
    }

    @Test func badInputAndForgedFormsCancelNothing() async throws {
        let s = try Session()
        let jid = "f" + String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(23)).lowercased()
        try s.addToSet(s.keys.retry, jid: jid, score: Date().timeIntervalSince1970 + 3600)
        #expect(await s.post("/jobs/cancel", [("jid", jid)], csrf: "forged").status == 403)
        for bad in ["", "a b", "<script>", String(repeating: "x", count: 129)] {
            #expect(await s.post("/jobs/cancel", [("jid", bad)]).status == 400, "\(bad)")
        }
        // A `back` from the form never becomes an address.
        let r = await s.post("/jobs/cancel", [("jid", jid), ("back", "https://evil.example/")])
        #expect(r.header("Location") == "/busy")
        #expect(try s.redis.command("ZCARD", s.keys.retry).check().int == 0)
        let readOnly = try Session(readOnly: true)
        #expect(await readOnly.post("/jobs/cancel", [("jid", jid)]).status == 403)
    }
}
