import ConveyorCore
import Foundation
import Postgres
import Redis
import SidekiqQueue
import Testing

@testable import Media

private let environment = ProcessInfo.processInfo.environment

/// An API polls a running transcode's progress hash (`conveyor:job:<jid>`) through the real worker.
@Suite(.enabled(if: environment["REDIS_URL"] != nil && environment["DATABASE_URL"] != nil, "needs REDIS_URL and DATABASE_URL"))
struct TranscodeProgressWorkerTests {
    @Test func anAPIPollReadsProgressWhileATranscodeRunsAndTheFinalStateAfter() async throws {
        let fixture = try MediaFixture()
        // Long enough for the helper to report while it runs (on two idle cores it may finish after one report).
        try await fixture.clip("uploads/long.mp4", size: "1280x720", rate: 30, seconds: 20)
        let media = try await MediaWorkerProcess.start(fixture, name: "progress")
        defer { media.stop() }
        let worker = media.process
        let redis = media.redis
        let keys = media.keys
        let jid = try await media.jobs.enqueue(
            "video.transcode", arguments: JSONObject([("source", "uploads/long.mp4"), ("output", "out/long.mp4")]), queue: "media")
        let key = keys.conveyor("job:" + jid)

        func hash() async throws -> [String: String] {
            let reply = try await redis.run { connection in try connection.command("HGETALL", key).check() }
            let items = reply.array?.compactMap(\.text) ?? []
            var fields: [String: String] = [:]
            for i in stride(from: 0, to: items.count - 1, by: 2) { fields[items[i]] = items[i + 1] }
            return fields
        }

        // While it runs: a percent within 0...100 and frames in the detail; two reports at least a second apart.
        var running: [[String: String]] = []
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline, worker.isRunning {
            let fields = try await hash()
            if fields["status"] == "running", let p = fields["progress"].flatMap(Double.init), p >= 0, p <= 100,
               let detail = try? JSONValue(parsing: fields["detail"] ?? ""), (detail["frames"]?.intValue ?? 0) > 0 {
                if running.last?["updated_at"] != fields["updated_at"] { running.append(fields) }
                if running.count >= 2 { break }
            }
            if fields["status"] == "succeeded" { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(running.count >= 1, "progress seen while running: \(running)")
        if running.count >= 2 {
            let (a, b) = (running[0], running[1])
            #expect(Double(b["progress"]!)! >= Double(a["progress"]!)!)
            // At most one write a second.
            #expect(Double(b["updated_at"]!)! - Double(a["updated_at"]!)! >= 0.95, "\(a) then \(b)")
            let detail = try JSONValue(parsing: b["detail"] ?? "")
            #expect((detail["frames"]?.intValue ?? 0) > 0, "\(b)")
            #expect(abs(Double(b["updated_at"]!)! - Date().timeIntervalSince1970) < 60)
        }

        // After it: the outcome row, and the hash says succeeded, then expires within the hour.
        let database = try PostgresConnection(url: environment["DATABASE_URL"]!)
        var row: [String?] = []
        while ContinuousClock.now < deadline, worker.isRunning {
            if let first = try database.query("SELECT status FROM conveyor.job_results WHERE jid = $1", [jid]).rows.first { row = first; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(row == ["succeeded"])
        var final: [String: String] = [:]
        while ContinuousClock.now < deadline {
            final = try await hash()
            if final["status"] == "succeeded" { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(final["status"] == "succeeded", "\(final)")
        #expect(final["progress"].flatMap(Double.init) ?? -1 > 0, "\(final)")
        let ttl = try await redis.run { connection in try connection.command("TTL", key).check().int }
        #expect((1...JobProgressReporter.finishedTTL).contains(ttl ?? -1), "TTL \(String(describing: ttl))")
    }
}
