import ConveyorCore
import Foundation
import Redis
import SidekiqQueue
import Testing
import Web

/// The Limits page over limits a worker's backend declared and filled: its fetch held two jobs of a key at its
/// concurrency and put the rest in the key's line.
@Suite(.enabled(if: TestEnv.hasServers, "needs REDIS_URL and DATABASE_URL"))
struct DashboardLimitsTests {
    @Test func showsEachLimitWithItsRunningAndWaitingJobs() async throws {
        let s = try Session()
        let limit = FlowLimit(name: "per-tenant", classes: ["noop", "<b>x</b>"], keyPath: ["tenant"], concurrency: 2, rate: .init(starts: 30, windowMilliseconds: 60_000))
        let backend = SidekiqBackend(redis: try TestEnv.endpoint(), keys: s.keys, identity: TestEnv.unique("limits-host"), limits: [limit])
        defer { backend.close() }
        try await backend.publishLimits()
        var commands = [RedisCommand("SADD", s.keys.queues, "default")]
        for i in 0..<5 {
            commands.append(RedisCommand("LPUSH", s.keys.queue("default"), #"{"class":"noop","args":[{"tenant":"t1"}],"queue":"default","jid":"j\#(i)"}"#))
        }
        for reply in try s.redis.pipeline(commands) { try reply.check() }
        let fetched = try await backend.fetch(from: ["default"], count: 10)
        #expect(fetched.count == 2, "two slots for the key")
        #expect(fetched.allSatisfy { $0.receipt.lease == "per-tenant\nt1" })
        #expect(try s.redis.command("LLEN", s.keys.queue("default")).check().int == 0, "the other three wait in the key's line")
        let page = await s.get("/limits")
        #expect(page.status == 200)
        let html = page.text
        #expect(html.contains("per-tenant"))
        #expect(html.contains("args.tenant"))
        #expect(html.contains("30/60s"))
        #expect(!html.contains("<b>x</b>"), "names are escaped")
        let cells = html.components(separatedBy: "data-label=\"Running\">").dropFirst().first?.prefix(40) ?? ""
        #expect(cells.hasPrefix("2<"), "running: \(cells)")
        #expect(html.contains("<span class=\"tag warn\">3</span>"), "three waiting")
        #expect(html.contains("href=\"/limits\""), "the nav links the page")
        // Once both jobs are acknowledged their slots are free, and a waiting job per freed slot is back at the head of
        // the queue.
        let moves = fetched.map { JobTransitions.Move(receipt: $0.receipt, target: .ack, counts: .processed) }
        #expect(try await backend.complete(moves, batch: 1, resent: false))
        #expect(try s.redis.command("LLEN", s.keys.queue("default")).check().int == 2)
        let after = await s.get("/limits").text
        #expect(after.contains("<span class=\"tag warn\">1</span>"), "one still waiting")
    }

    @Test func withoutLimitsThePageSaysHowToDeclareThem() async throws {
        let s = try Session()
        let page = await s.get("/limits")
        #expect(page.status == 200)
        #expect(page.text.contains("No limits"))
    }
}
