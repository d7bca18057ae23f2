import ConveyorCore
import Foundation
import Operations
import Redis
import SidekiqQueue
import Testing

/// `conveyor queue clear`, the warning for a queue nobody uses, and the shared action history the CLI writes.
@Suite(.enabled(if: TestEnv.redisURL != nil && TestEnv.binary != nil, "needs REDIS_URL and CONVEYOR_BIN"))
struct QueueClearAndHistoryTests {
    @Test func clearAsksForYesThenDeletesEveryReadyJobAndIsInTheHistory() throws {
        let namespace = TestEnv.unique("clear")
        let keys = QueueKeys(namespace: namespace)
        let redis = try TestEnv.redis()
        _ = try redis.command("SADD", keys.queues, "bulk").check()
        for i in 0..<25 { _ = try redis.command("LPUSH", keys.queue("bulk"), "{\"class\":\"noop\",\"jid\":\"j\(i)\",\"args\":[{}]}").check() }
        let refused = try TestEnv.conveyor(["queue", "clear", "bulk", "--namespace", namespace])
        #expect(refused.code == 64)
        #expect(refused.err.contains("queue bulk holds 25 jobs; pass --yes"), "\(refused.err)")
        #expect(try redis.command("LLEN", keys.queue("bulk")).check().int == 25)
        let done = try TestEnv.conveyor(["queue", "clear", "bulk", "--yes", "--namespace", namespace])
        #expect(done.code == 0, "\(done.err)")
        #expect(done.out.contains("deleted 25 jobs from bulk"))
        #expect(try redis.command("EXISTS", keys.queue("bulk")).check().int == 0)
        #expect(try redis.command("SISMEMBER", keys.queues, "bulk").check().int == 0)
        let history = try ActionLog(keys: keys, connection: redis).recent()
        #expect(history.first?.what == "clear queue bulk (25 jobs)", "\(history)")
        #expect(history.first?.via == "cli")
        #expect(history.first?.who.contains("@") == true)
    }

    /// A cleared queue's unique jobs give up their locks: the same keys are accepted again at once, and no stale
    /// lock is left for `conveyor stats`; a job without `unique_for` among them changes nothing.
    @Test func clearingAQueueReleasesTheUniqueLocksOfItsJobs() throws {
        let namespace = TestEnv.unique("clearunique")
        func enqueue(_ key: String) throws -> Int32 {
            try TestEnv.conveyor(["enqueue", "noop", "--queue", "bulk", "--unique-for", "3600", "--unique-key", key, "--namespace", namespace]).code
        }
        for i in 0..<3 { #expect(try enqueue("k\(i)") == 0) }
        #expect(try TestEnv.conveyor(["enqueue", "noop", "--queue", "bulk", "--namespace", namespace]).code == 0)
        #expect(try enqueue("k0") == 5, "held while queued")
        let done = try TestEnv.conveyor(["queue", "clear", "bulk", "--yes", "--namespace", namespace])
        #expect(done.out.contains("deleted 4 jobs from bulk"), "\(done.out) \(done.err)")
        for i in 0..<3 { #expect(try enqueue("k\(i)") == 0, "k\(i) released by the clear") }
        let redis = try TestEnv.redis()
        let keys = QueueKeys(namespace: namespace)
        #expect(try redis.command("LLEN", keys.queue("bulk")).check().int == 3)
        #expect(try redis.command("KEYS", keys.queue("bulk") + ":clearing:*").check().array?.isEmpty == true, "the aside list is gone")
    }

    @Test func pausingAQueueNobodyUsesWarnsWithTheNearestName() throws {
        let namespace = TestEnv.unique("pausewarn")
        let keys = QueueKeys(namespace: namespace)
        let redis = try TestEnv.redis()
        _ = try redis.command("SADD", keys.queues, "mailers").check()
        let typo = try TestEnv.conveyor(["queue", "pause", "mailer", "--namespace", namespace])
        #expect(typo.code == 0, "it still pauses: \(typo.err)")
        #expect(typo.err.contains("no job was ever pushed to queue mailer and no live worker serves it (did you mean mailers?)"), "\(typo.err)")
        let known = try TestEnv.conveyor(["queue", "pause", "mailers", "--namespace", namespace])
        #expect(known.code == 0 && known.err.isEmpty, "\(known.err)")
        let history = try ActionLog(keys: keys, connection: redis).recent().map(\.what)
        #expect(history.prefix(2) == ["pause queue mailers", "pause queue mailer"], "\(history)")
    }

    @Test func theHistoryIsCappedAndSkipsUnreadableEntries() throws {
        let keys = QueueKeys(namespace: TestEnv.unique("history"))
        let redis = try TestEnv.redis()
        let log = ActionLog(keys: keys, connection: redis)
        for i in 0..<(ActionLog.capacity + 20) {
            try log.record(.init(at: Double(i), who: "u", what: "action \(i)", via: "cli"))
        }
        _ = try redis.command("LPUSH", log.key, "not json").check()
        _ = try redis.command("LPUSH", log.key, "{\"at\":\"x\"}").check()
        #expect(try redis.command("LLEN", log.key).check().int == ActionLog.capacity + 2)
        let recent = try log.recent(limit: 5)
        #expect(recent.map(\.what) == ["action 1019", "action 1018", "action 1017"])
        try log.record(.init(at: 0, who: String(repeating: "w", count: 10_000), what: String(repeating: "x", count: 10_000), via: "dashboard"))
        #expect(try redis.command("LLEN", log.key).check().int == ActionLog.capacity)
        #expect(try log.recent(limit: 1).first?.what.count == ActionLog.maximumText)
        _ = try redis.command("DEL", log.key).check()
    }
}
