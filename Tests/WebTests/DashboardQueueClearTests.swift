import ConveyorCore
import Foundation
import Operations
import Redis
import SidekiqQueue
import Testing
import Web

/// "Delete all" on a queue page (confirmed with the count), buttons disabled when there is nothing to act on, and
/// the Actions page showing the shared history, the CLI's actions included.
@Suite(.enabled(if: TestEnv.hasServers, "needs REDIS_URL and DATABASE_URL"))
struct DashboardQueueClearTests {
    @Test func deleteAllIsConfirmedWithTheCountThenEmptiesTheQueue() async throws {
        let s = try Session()
        _ = try s.redis.command("SADD", s.keys.queues, "bulk").check()
        for i in 0..<7 { _ = try s.redis.command("LPUSH", s.keys.queue("bulk"), "{\"class\":\"noop\",\"jid\":\"j\(i)\",\"args\":[{}]}").check() }
        let page = await s.get("/queues/bulk").text
        #expect(page.contains("action=\"/queues/bulk/clear\""))
        #expect(!page.contains("disabled>Delete all"), "enabled with jobs")
        let confirm = await s.post("/queues/bulk/clear", [])
        #expect(confirm.status == 200)
        #expect(confirm.text.contains("Delete all 7 ready jobs of queue bulk?"))
        #expect(try s.redis.command("LLEN", s.keys.queue("bulk")).check().int == 7, "nothing deleted before the confirmation")
        let done = await s.post("/queues/bulk/clear", [("confirm", "1")])
        #expect(done.status == 303)
        #expect(try s.redis.command("EXISTS", s.keys.queue("bulk")).check().int == 0)
        let empty = await s.get("/queues/bulk").text
        #expect(empty.contains("Deleted 7 jobs from bulk."))
        #expect(empty.contains("class=\"danger\" disabled>Delete all</button>"), "disabled at zero")
        // The set pages' bulk buttons too.
        #expect(await s.get("/dead").text.contains("formaction=\"/dead/delete\" class=\"danger\" disabled>Delete selected"))
    }

    @Test func theActionsPageShowsTheSharedHistoryWithTheCLIsActions() async throws {
        let s = try Session()
        try ActionLog(keys: s.keys, connection: s.redis).record(.init(at: Date().timeIntervalSince1970, who: "ops@build-7", what: "replay dead jobs: 3 of 3 matching", via: "cli"))
        await s.post("/queues/mail/pause", [])
        // The dashboard writes its own actions to the shared history before the action's page answers.
        #expect(try ActionLog(keys: s.keys, connection: s.redis).recent().contains { $0.what == "pause queue mail" && $0.via == "dashboard" })
        let page = await s.get("/actions").text
        #expect(page.contains("ops@build-7") && page.contains("replay dead jobs: 3 of 3 matching") && page.contains(">cli<"))
        #expect(page.contains("pause queue mail"))
    }
}
