import ConveyorCore
import Foundation
import Redis
import Testing

@testable import Schedules

/// Through the real `conveyor` binary: the config file's schedules refused or run by worker processes.
@Suite("WorkerSchedules", .serialized)
struct WorkerSchedulesTests {
    static let binary = ProcessInfo.processInfo.environment["CONVEYOR_BIN"]
    static let url = ProcessInfo.processInfo.environment["REDIS_URL"]

    static func configFile(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sched-\(Job.newJID()).yml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func start(_ arguments: [String]) throws -> (Process, URL) {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("sched-\(Job.newJID()).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary!)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["DATABASE_URL"] = nil
        p.environment = env
        p.standardOutput = FileHandle.nullDevice
        p.standardError = try FileHandle(forWritingTo: log)
        try p.run()
        return (p, log)
    }

    static func stop(_ p: Process) {
        guard p.isRunning else { return }
        kill(p.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(30)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
    }

    @Test(.enabled(if: binary != nil && url != nil), arguments: [
        ("      cron: \"61 * * * *\"\n      class: noop\n", 5, "minute \"61\" is not in 0-59"),
        ("      cron: \"0 3 * * * Mars/Olympus\"\n      class: noop\n", 5, "unknown time zone \"Mars/Olympus\""),
        ("      cron: \"0 3 * * *\"\n      class: no.such.class\n", 6, "no job class \"no.such.class\""),
        ("      cron: \"0 3 * * *\"\n      class: noop\n      catch_up: sometimes\n", 7, "catch_up \"sometimes\""),
        ("      cron: \"0 3 * * *\"\n      class: noop\n      catch_up_window: 9223372036854775807d\n", 7, "catch_up_window"),
    ])
    func aBadScheduleRefusesTheStartNamingItAndItsLine(_ body: String, _ line: Int, _ message: String) throws {
        let path = try Self.configFile("concurrency: 2\nschedules:\n  # the nightly one\n  broken-one:\n" + body)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (p, log) = try Self.start(["worker", "--config", path, "--namespace", "sched-bad-\(Job.newJID().prefix(6))"])
        p.waitUntilExit()
        let err = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(p.terminationStatus == 64, "\(err)")
        #expect(err.contains("\(path) line \(line): schedule broken-one"), "\(err)")
        #expect(err.contains(message), "\(err)")
    }

    /// `*/1 * * * * *` (every second, seconds field first) in the file of 4 worker processes for 20 s: one job per
    /// second, none twice. The jobs go to a queue no worker serves, so they stay to be counted.
    @Test(.enabled(if: binary != nil && url != nil)) func fourWorkersOneJobPerSecond() throws {
        let ns = "sched-w-" + Job.newJID().prefix(8)
        let path = try Self.configFile("""
            schedules:
              every-second:
                cron: "* * * * * * UTC"
                class: noop
                queue: cronsink
                args: [{n: 1}]
                catch_up: skip
            """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let workers = try (0..<4).map { _ in try Self.start(["worker", "--config", path, "--namespace", String(ns), "--queues", "critical", "-c", "1"]) }
        defer { for (p, log) in workers { Self.stop(p); try? FileManager.default.removeItem(at: log) } }
        let redis = try RedisConnection(try RedisEndpoint(url: Self.url!))
        let key = ns + ":queue:cronsink"
        let deadline = Date().addingTimeInterval(60)
        while try redis.command("LLEN", key).int ?? 0 == 0 {
            for (p, log) in workers where !p.isRunning {
                Issue.record("worker exited: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
                return
            }
            #expect(Date() < deadline)
            if Date() >= deadline { return }
            usleep(50_000)
        }
        let began = Date()
        while Date().timeIntervalSince(began) < 20 { usleep(200_000) }
        for (p, _) in workers { Self.stop(p) }
        let jobs = (try redis.command("LRANGE", key, "0", "-1").check().array ?? []).reversed().map { try! JSONValue(parsing: $0.text!) }
        let ticks = jobs.map { Int64($0["cron"]!["tick"]!.intValue!) }
        #expect(Set(ticks).count == ticks.count, "a tick pushed twice")
        #expect(ticks == Array(ticks.first!...ticks.last!), "not one job per second: \(ticks)")
        #expect(ticks.count >= 19)
        #expect(Set(jobs.map { $0["jid"]!.stringValue! }).count == jobs.count)
        #expect(jobs.allSatisfy { $0["cron"]?["name"]?.stringValue == "every-second" && $0["class"]?.stringValue == "noop" })
        _ = try redis.command("DEL", key)
    }
}
