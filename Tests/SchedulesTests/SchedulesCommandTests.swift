import ConveyorCore
import Foundation
import Redis
import Testing

@testable import Schedules

/// `conveyor schedules` through the real binary, and the file's block read into schedules.
@Suite("SchedulesCommand")
struct SchedulesCommandTests {
    static func conveyor(_ arguments: [String]) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: WorkerSchedulesTests.binary!)
        p.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    @Test(.enabled(if: WorkerSchedulesTests.binary != nil && WorkerSchedulesTests.url != nil)) func listDisableRunEnable() throws {
        let ns = "sch-cli-" + Job.newJID().prefix(8)
        let store = ScheduleStore(prefix: ns + ":")
        let redis = try RedisConnection(try RedisEndpoint(url: WorkerSchedulesTests.url!))
        let s = Schedule(name: "nightly", cron: try CronExpression("30 2 * * * Europe/Berlin"), className: "noop", queue: "cli")
        try store.sync([s], on: redis)
        let base = ["--namespace", String(ns)]
        #expect(try Self.conveyor(["schedules", "disable", "nightly"] + base).0 == 0)
        let list = try Self.conveyor(["schedules", "list", "--json"] + base)
        let rows = try JSONValue(parsing: list.1).arrayValue ?? []
        #expect(rows.count == 1)
        #expect(rows.first?["status"]?.stringValue == "disabled")
        #expect(rows.first?["cron"]?.stringValue == "30 2 * * * Europe/Berlin")
        let run = try Self.conveyor(["schedules", "run", "nightly"] + base)
        #expect(run.0 == 0, "\(run.2)")
        let jid = run.1.trimmingCharacters(in: .whitespacesAndNewlines)
        let queued = try redis.command("LRANGE", ns + ":queue:cli", "0", "-1").check().array ?? []
        #expect(queued.count == 1)
        #expect(try JSONValue(parsing: queued[0].text!)["jid"]?.stringValue == jid)
        #expect(try Self.conveyor(["schedules", "enable", "nightly"] + base).0 == 0)
        #expect(try store.info("nightly", on: redis)["status"] == "enabled")
        let missing = try Self.conveyor(["schedules", "run", "no-such"] + base)
        #expect(missing.0 == 4 && missing.2.contains("conveyor: no schedule no-such"))
        try store.sync([], on: redis)
        _ = try redis.command("DEL", ns + ":queue:cli", ns + ":queues")
    }

    @Test func theFileBlockIsReadWithArgsAsJSON() {
        let file = SettingsFile(path: "c.yml", text: """
            schedules:
              nightly-digest:
                cron: "30 2 * * * Europe/Berlin"
                class: email.send
                args: {template: digest, to: ops@example.net, n: 3, big: 1e400, ok: true}
                catch_up: all
                catch_up_window: 2h
              listed:
                cron: "*/5 * * * * *"
                class: noop
                args: [1, "two", null]
            """)
        let (schedules, problems) = Schedule.check(file) { ["email.send": "mail", "noop": "default"][$0] }
        #expect(problems.isEmpty, "\(problems)")
        let digest = schedules.first { $0.name == "nightly-digest" }
        #expect(digest?.queue == "mail")
        #expect(digest?.catchUp == .all && digest?.catchUpWindow == 7200)
        #expect(digest?.args.count == 1)
        #expect(digest?.args.first?["to"]?.stringValue == "ops@example.net")
        // 1e400 is not a finite double: it stays the string the file wrote.
        #expect(digest?.args.first?["big"]?.stringValue == "1e400")
        #expect(schedules.first { $0.name == "listed" }?.args.count == 3)
        let bad = SettingsFile(path: "c.yml", text: "schedules:\n  - a\n")
        #expect(Schedule.check(bad) { _ in "q" }.problems == ["c.yml line 2: schedules: expected one mapping per schedule name"])
    }
}
