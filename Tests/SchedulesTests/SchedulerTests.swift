import ConveyorCore
import Foundation
import Redis
import Testing

@testable import Schedules

/// A connection handed to one thread at a time.
final class Box: @unchecked Sendable {
    let scheduler: Scheduler
    init(_ s: Scheduler) { scheduler = s }
}

@Suite("Scheduler", .serialized)
struct SchedulerTests {
    static let url = ProcessInfo.processInfo.environment["REDIS_URL"]

    static func connect() throws -> RedisConnection { try RedisConnection(try RedisEndpoint(url: url!)) }

    static func fresh() -> (ScheduleStore, String) {
        let ns = "sch-" + Job.newJID().prefix(10) + ":"
        return (ScheduleStore(prefix: ns), ns)
    }

    static func scheduler(_ schedules: [Schedule], _ store: ScheduleStore, _ ns: String) throws -> Scheduler {
        Scheduler(schedules: schedules, store: store, redis: try connect(), queueKey: { ns + "queue:" + $0 }, queuesKey: ns + "queues")
    }

    /// The payloads on a queue, oldest first.
    static func jobs(_ ns: String, _ queue: String) throws -> [JSONValue] {
        let r = try connect()
        return (try r.command("LRANGE", ns + "queue:" + queue, "0", "-1").check().array ?? []).reversed().map { try! JSONValue(parsing: $0.text!) }
    }

    static func ticks(_ jobs: [JSONValue]) -> [Int64] {
        jobs.map { Int64($0["cron"]!["tick"]!.intValue!) }
    }

    @Test(.enabled(if: url != nil)) func fakeClockDrivesADayThroughEightSchedulersSomeKilled() throws {
        let (store, ns) = Self.fresh()
        let schedule = Schedule(name: "every-minute", cron: try CronExpression("* * * * *"), className: "noop", queue: "cron", catchUp: .latest)
        let redis = try Self.connect()
        try store.sync([schedule], on: redis)
        let start = CronExpressionTests.utc(2026, 12, 7)
        var live = try (0..<8).map { _ in Box(try Self.scheduler([schedule], store, ns)) }
        var rng = SplitMix(seed: 8)
        var killed = 0
        for minute in 1...1440 {
            let now = Double(start + Int64(minute) * 60) + Double(rng.next(900)) / 1000
            // A scheduler dies at a random tick and a fresh one takes its place (it starts from Redis' last tick).
            if rng.next(40) == 0 {
                live[Int(rng.next(8))] = Box(try Self.scheduler([schedule], store, ns))
                killed += 1
            }
            let boxes = live
            DispatchQueue.concurrentPerform(iterations: boxes.count) { i in
                _ = try? boxes[i].scheduler.evaluate(now: now)
            }
        }
        let jobs = try Self.jobs(ns, "cron")
        let ticks = Self.ticks(jobs)
        #expect(jobs.count == 1440)
        #expect(Set(ticks).count == 1440)
        #expect(Set(jobs.map { $0["jid"]!.stringValue! }).count == 1440)
        #expect(ticks == (1...1440).map { start + Int64($0) * 60 })
        #expect(killed > 10)
        let first = jobs[0]
        #expect(first["jid"]?.stringValue == ScheduleStore.jid(name: "every-minute", tick: start + 60))
        #expect(first["cron"]?["name"]?.stringValue == "every-minute")
        #expect(first["class"]?.stringValue == "noop")
    }

    /// Every process was down from 10:00:30 to 10:31:00; ticks every minute. Replayed under each policy.
    @Test(.enabled(if: url != nil), arguments: Schedule.CatchUp.allCases)
    func thirtyMinuteOutage(_ policy: Schedule.CatchUp) throws {
        let (store, ns) = Self.fresh()
        let base = CronExpressionTests.utc(2026, 12, 7, 10)
        let schedule = Schedule(name: "outage-\(policy)", cron: try CronExpression("* * * * *"), className: "noop", queue: "q", catchUp: policy,
                                catchUpWindow: 20 * 60)
        try store.sync([schedule], on: try Self.connect())
        let before = try Self.scheduler([schedule], store, ns)
        try before.evaluate(now: Double(base) + 0.5)  // 10:00 pushed (a schedule never run starts now)
        #expect(try Self.ticks(Self.jobs(ns, "q")) == [base])
        // Down until 10:31:00.5: 10:01 ... 10:31 came and went; the window (20 min) reaches back to 10:11.
        let after = try Self.scheduler([schedule], store, ns)
        try after.evaluate(now: Double(base + 31 * 60) + 0.5)
        try after.evaluate(now: Double(base + 32 * 60) + 0.5)
        let ticks = try Self.ticks(Self.jobs(ns, "q"))
        switch policy {
        case .skip: #expect(ticks == [base, base + 31 * 60, base + 32 * 60])
        // 10:31 is on time (0.5 s), so it is the run; nothing older is added.
        case .latest: #expect(ticks == [base, base + 31 * 60, base + 32 * 60])
        case .all: #expect(ticks == [base] + (11...32).map { base + Int64($0) * 60 })
        }
        // Late restart between ticks: at 10:45:30 (13 ticks missed, none on time).
        let (store2, ns2) = Self.fresh()
        try store2.sync([schedule], on: try Self.connect())
        try Self.scheduler([schedule], store2, ns2).evaluate(now: Double(base) + 0.5)
        try Self.scheduler([schedule], store2, ns2).evaluate(now: Double(base + 13 * 60) + 30)
        let late = try Self.ticks(Self.jobs(ns2, "q"))
        switch policy {
        case .skip: #expect(late == [base])
        case .latest: #expect(late == [base, base + 13 * 60])
        case .all: #expect(late == (0...13).map { base + Int64($0) * 60 })
        }
    }

    @Test(.enabled(if: url != nil)) func disabledSchedulesPushNothingAndTheFileIsTheTruth() throws {
        let (store, ns) = Self.fresh()
        let redis = try Self.connect()
        let a = Schedule(name: "a", cron: try CronExpression("* * * * *"), className: "noop")
        let b = Schedule(name: "b", cron: try CronExpression("0 * * * *"), className: "noop")
        try store.sync([a, b], on: redis)
        #expect(try store.setEnabled("a", false, on: redis))
        #expect(try !store.setEnabled("nope", false, on: redis))
        try store.sync([a], on: redis)  // b removed from the file; a's status survives
        let members = try redis.command("SMEMBERS", ns + "cron_jobs").array!.compactMap(\.text)
        #expect(Set(members) == [ns + "cron_job:a"])
        #expect(try redis.command("EXISTS", ns + "cron_job:b").int == 0)
        #expect(try store.info("a", on: redis)["status"] == "disabled")
        let s = try Self.scheduler([a], store, ns)
        try s.evaluate(now: Double(CronExpressionTests.utc(2026, 12, 7, 1)) + 0.1)
        #expect(try Self.jobs(ns, "default").isEmpty)
        // Run now ignores the status.
        let forced = try store.claim(a, tick: 1_000, now: 1_000, queueKey: ns + "queue:default", queuesKey: ns + "queues", on: redis, force: true)
        #expect(forced == .pushed(jid: ScheduleStore.jid(name: "a", tick: 1_000)))
        #expect(try store.claim(a, tick: 1_000, now: 1_000, queueKey: ns + "queue:default", queuesKey: ns + "queues", on: redis, force: true) == .alreadyClaimed)
    }

    /// Debian's ruby-sidekiq-cron lists the schedules, with their cron lines and last enqueue times, through its own API.
    @Test(.enabled(if: url != nil)) func sidekiqCronListsThem() throws {
        let store = ScheduleStore()
        let redis = try Self.connect()
        let digest = Schedule(name: "nightly-digest", cron: try CronExpression("30 2 * * * Europe/Berlin"), className: "email.send", queue: "mail",
                              args: [.object(JSONObject([("template", .string("digest"))]))])
        let secs = Schedule(name: "every-5s", cron: try CronExpression("*/5 * * * * *"), className: "noop")
        try store.sync([digest, secs], on: redis)
        let tick = CronExpressionTests.utc(2026, 12, 7, 1, 30)
        _ = try store.claim(digest, tick: tick, now: Double(tick), queueKey: "sch-ruby:queue:mail", queuesKey: "sch-ruby:queues", on: redis)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("sidekiq_cron_list.rb").path
        let out = try CronExpressionTests.run(["env", "REDIS_URL=\(Self.url!)", "ruby", script], input: "")
        let list = try JSONValue(parsing: out)
        let byName = Dictionary(uniqueKeysWithValues: (list.arrayValue ?? []).map { ($0["name"]!.stringValue!, $0) })
        #expect(byName["nightly-digest"]?["cron"]?.stringValue == "30 2 * * * Europe/Berlin")
        #expect(byName["nightly-digest"]?["klass"]?.stringValue == "email.send")
        #expect(byName["nightly-digest"]?["status"]?.stringValue == "enabled")
        #expect(byName["nightly-digest"]?["valid"] == .bool(true))
        #expect(byName["nightly-digest"]?["last_enqueue_time"]?.intValue == Int(tick))
        #expect(byName["every-5s"]?["cron"]?.stringValue == "*/5 * * * * *")
        #expect(byName["every-5s"]?["valid"] == .bool(true))
        try store.sync([], on: redis)
        _ = try redis.command("DEL", "sch-ruby:queue:mail", "sch-ruby:queues")
    }
}
