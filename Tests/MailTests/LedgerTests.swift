import ConveyorCore
import Foundation
@testable import Mail
import Postgres
import Redis
import Testing

let databaseURL = ProcessInfo.processInfo.environment["DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
let redisURL = ProcessInfo.processInfo.environment["REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 }

@Suite(.enabled(if: databaseURL != nil, "needs DATABASE_URL (scripts/test.sh starts PostgreSQL)"))
struct PostgresLedgerTests {
    @Test func claimSentReleaseAndLease() async throws {
        let ledger = PostgresMailLedger(url: databaseURL!)
        let key = "ledger-\(UUID().uuidString)"
        #expect(try await ledger.claim(key: key, messageID: "m@x", jid: "j1", recipient: "a@example.com", lease: .seconds(600)) == .send)
        // Another job with the same key while the first is sending.
        #expect(try await ledger.claim(key: key, messageID: "m@x", jid: "j2", recipient: "a@example.com", lease: .seconds(600)) == .inFlight(heldBy: "j1"))
        // The same job retried after a crash takes its claim back.
        #expect(try await ledger.claim(key: key, messageID: "m@x", jid: "j1", recipient: "a@example.com", lease: .seconds(600)) == .send)
        // A surely failed send releases the key for anyone.
        try await ledger.release(key: key, jid: "j1", reason: "451 try later")
        #expect(try await ledger.claim(key: key, messageID: "m@x", jid: "j2", recipient: "a@example.com", lease: .seconds(600)) == .send)
        try await ledger.markSent(key: key, jid: "j2", reply: "250 OK")
        guard case .alreadySent(let id, let reply, _) = try await ledger.claim(key: key, messageID: "m@x", jid: "j3", recipient: "a@example.com", lease: .zero) else {
            Issue.record("a sent key must stay sent")
            return
        }
        #expect(id == "m@x")
        #expect(reply == "250 OK")

        // An abandoned claim (older than the lease) can be taken over.
        let stale = "ledger-\(UUID().uuidString)"
        #expect(try await ledger.claim(key: stale, messageID: "m@x", jid: "j1", recipient: "a@example.com", lease: .seconds(600)) == .send)
        #expect(try await ledger.claim(key: stale, messageID: "m@x", jid: "j9", recipient: "a@example.com", lease: .zero) == .send)
        let attempts = try await PostgresThread(url: databaseURL!, name: "ledger-test").run { c in
            try c.query("SELECT attempts, jid FROM conveyor.mail_ledger WHERE idempotency_key = $1", [stale]).rows
        }
        #expect(attempts.first == ["2", "j9"])
    }

    @Test func concurrentClaimsLetExactlyOneSend() async throws {
        let ledger = PostgresMailLedger(url: databaseURL!)
        _ = try await ledger.claim(key: "warm-\(UUID().uuidString)", messageID: "m", jid: "w", recipient: "a@example.com", lease: .seconds(60))
        let key = "race-\(UUID().uuidString)"
        let decisions = try await withThrowingTaskGroup(of: MailLedgerDecision.self) { group in
            for i in 0..<8 {
                let other = PostgresMailLedger(url: databaseURL!)
                group.addTask { try await other.claim(key: key, messageID: "m", jid: "j\(i)", recipient: "a@example.com", lease: .seconds(600)) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(decisions.filter { $0 == .send }.count == 1)
        _ = ledger
    }

    @Test func handlerWithPostgresLedgerSendsOnce() async throws {
        let sink = try SMTPSink()
        defer { sink.stop() }
        let ledger = PostgresMailLedger(url: databaseURL!)
        let handler = try smtpHandler(sink, ledger: ledger)
        let key = "pg-\(UUID().uuidString)"
        let args = welcome(to: "tempfail1-dave@example.net", key: key)
        let first = await #expect(throws: JobFailure.self) { try await handler.perform(job(args, jid: "jid-\(key)")) }
        #expect(first?.errorClass == "SMTPTemporaryFailure")
        #expect(try await handler.perform(job(args, jid: "jid-\(key)", attempt: 2))["status"]?.stringValue == "sent")
        // A second worker process (its own ledger object and transport) sees the key as sent.
        let otherProcess = try smtpHandler(sink, ledger: PostgresMailLedger(url: databaseURL!))
        #expect(try await otherProcess.perform(job(args, jid: "jid-\(key)", attempt: 3))["status"]?.stringValue == "already_sent")
        #expect(try sink.messages().count == 1)
    }
}

@Suite(.enabled(if: redisURL != nil, "needs REDIS_URL (scripts/test.sh starts Redis)"))
struct RateLimiterTests {
    @Test func sharedBudgetPerSecond() async throws {
        let redis = RedisThread(try RedisEndpoint(url: redisURL!), name: "mail-rate-test")
        defer { redis.stop() }
        let prefix = "test-\(UUID().uuidString):conveyor:mail:rate:smtp"
        // Two limiters stand for two worker processes sharing the budget.
        let a = MailRateLimiter(redis: redis, keyPrefix: prefix, perSecond: 2)
        let b = MailRateLimiter(redis: RedisThread(try RedisEndpoint(url: redisURL!), name: "mail-rate-test-b"), keyPrefix: prefix, perSecond: 2)
        var seconds: [Int] = []
        for limiter in [a, b, a, b, a] {
            seconds.append(try await limiter.acquire(before: .now + .seconds(10)))
        }
        let perSecond = Dictionary(grouping: seconds, by: { $0 }).mapValues(\.count)
        #expect(perSecond.values.allSatisfy { $0 <= 2 }, "at most 2 per second: \(perSecond)")
        #expect(perSecond.count >= 3)
        // One declared key holds the count (Redis Cluster runs a script only on the keys it declares).
        let keys = try await redis.run { try $0.command("KEYS", prefix + "*").check() }
        #expect(keys.array?.compactMap(\.text) == [prefix], "\(keys)")
        let type = try await redis.run { try $0.command("TYPE", prefix).check() }
        #expect(type.text == "hash", "\(type)")
        // No slot before the deadline: a transient failure, not a hang.
        for _ in 0..<2 { _ = try? await a.acquire(before: .now + .seconds(2)) }
        let error = await #expect(throws: JobFailure.self) {
            for _ in 0..<3 { try await a.acquire(before: .now + .milliseconds(1)) }
        }
        #expect(error?.errorClass == "MailRateLimited")
        #expect(error?.isPermanent == false)
    }

    /// `SMTP_RATE_LIMIT_PER_DOMAIN`: each recipient domain has its own budget, shared by the processes: a third send to
    /// one domain within a second waits for the next second, while another domain's send goes at once.
    @Test func perDomainBudgetsAreSeparateAndShared() async throws {
        let prefix = "test-\(UUID().uuidString):conveyor:mail:rate:smtp"
        let a = MailRateLimiter(redis: RedisThread(try RedisEndpoint(url: redisURL!), name: "mail-domain-a"), keyPrefix: prefix, perSecond: 2)
        let b = MailRateLimiter(redis: RedisThread(try RedisEndpoint(url: redisURL!), name: "mail-domain-b"), keyPrefix: prefix, perSecond: 2)
        #expect(MailRateLimiter.bucket("Someone@Example.COM") == "example.com")
        var seconds: [Int] = []
        for limiter in [a, b, a, b, a, b] {
            seconds.append(try await limiter.acquire(before: .now + .seconds(10), bucket: "example.com"))
        }
        let perSecond = Dictionary(grouping: seconds, by: { $0 }).mapValues(\.count)
        #expect(perSecond.values.allSatisfy { $0 <= 2 }, "at most 2 per second to example.com: \(perSecond)")
        #expect(perSecond.count >= 3)
        // example.com's budget is spent for this second; other.org's is its own.
        let start = ContinuousClock.now
        _ = try await b.acquire(before: .now + .seconds(10), bucket: "other.org")
        #expect(ContinuousClock.now - start < .milliseconds(500), "another domain waited")
        let error = await #expect(throws: JobFailure.self) {
            for _ in 0..<3 { try await a.acquire(before: .now + .milliseconds(1), bucket: "example.com") }
        }
        #expect(error?.message.contains("SMTP_RATE_LIMIT_PER_DOMAIN") == true)
        #expect(error?.message.contains("example.com") == true)
    }
}
