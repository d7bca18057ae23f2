import Foundation
import Testing

@testable import Schedules

/// The shipped alert rules for schedules: valid, and each fires on the series that should trigger it.
@Suite("SchedulesAlert")
struct SchedulesAlertTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let hasPromtool = FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool")

    static func promtool(_ arguments: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
        p.arguments = arguments
        p.currentDirectoryURL = root.appendingPathComponent("docker/prometheus")
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test(.enabled(if: hasPromtool, "needs promtool (Debian prometheus)")) func rulesAreValidAndFire() throws {
        let check = try Self.promtool(["check", "rules", "alerts-schedules.yml"])
        #expect(check.0 == 0, "\(check.1)")
        let test = try Self.promtool(["test", "rules", "alerts-schedules_test.yml"])
        #expect(test.0 == 0, "\(test.1)")
    }

    /// What ScheduleMetrics renders passes promtool's metric lint.
    @Test(.enabled(if: hasPromtool, "needs promtool (Debian prometheus)")) func renderedMetricsLint() throws {
        let m = ScheduleMetricsProbe.rendered()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
        p.arguments = ["check", "metrics"]
        let input = Pipe()
        let out = Pipe()
        p.standardInput = input
        p.standardOutput = out
        p.standardError = out
        try p.run()
        input.fileHandleForWriting.write(Data(m.utf8))
        try input.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(String(decoding: data, as: UTF8.self))\n\(m)")
        #expect(m.contains("conveyor_schedule_lateness_seconds{schedule=\"a\\\"b\"} 1.500"))
        #expect(m.contains("conveyor_schedule_due_tick_timestamp_seconds{schedule=\"a\\\"b\"} 120"))
    }
}


enum ScheduleMetricsProbe {
    static func rendered() -> String {
        let m = ScheduleMetrics()
        m.record(name: "a\"b", due: 60)
        m.record(name: "a\"b", due: 120)
        m.record(name: "a\"b", claimed: 60, lateness: 1.5)
        return m.render()
    }
}
