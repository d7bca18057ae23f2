import ConveyorCore
import Foundation
import Postgres
import Redis
import SidekiqQueue
import Testing

@testable import Media

private let environment = ProcessInfo.processInfo.environment

/// `conveyor cancel` on a running 20-second transcode through the real worker: the job ends `cancelled` within a
/// second, its FFmpeg helper is killed, and no output (final or temporary) is left in the media folder.
@Suite(.enabled(if: environment["REDIS_URL"] != nil && environment["DATABASE_URL"] != nil, "needs REDIS_URL and DATABASE_URL"))
struct CancelTranscodeTests {
    /// The direct children of `pid` (the worker's helpers).
    static func children(of pid: pid_t) -> Set<pid_t> {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        var found: Set<pid_t> = []
        for entry in entries {
            guard let child = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            // After "pid (comm) ": state, then the parent's pid.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, pid_t(fields[1]) == pid { found.insert(child) }
        }
        return found
    }

    static func alive(_ pid: pid_t) -> Bool {
        // A zombie (reaped later by its parent) counts as gone: it runs nothing.
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].split(separator: " ").first != "Z"
    }

    @Test func aRunningTranscodeCancelledFromTheCLIStopsWithinASecondAndLeavesNothing() async throws {
        let fixture = try MediaFixture()
        try await fixture.clip("uploads/long.mp4", size: "1280x720", rate: 30, seconds: 20)
        let media = try await MediaWorkerProcess.start(fixture, name: "cancel-video")
        defer { media.stop() }
        let worker = media.process
        let redis = media.redis
        let keys = media.keys
        let namespace = media.namespace
        let jid = try await media.jobs.enqueue(
            "video.transcode", arguments: JSONObject([("source", "uploads/long.mp4"), ("output", "out/long.mp4"), ("poster", "out/long.jpg")]),
            queue: "media")
        let key = keys.conveyor("job:" + jid)
        func status() async throws -> (String?, Int) {
            let reply = try await redis.run { connection in try connection.command("HMGET", key, "status", "detail").check() }
            let items = reply.array ?? []
            let detail = items.count > 1 ? items[1].text.flatMap { try? JSONValue(parsing: $0) } : nil
            return (items.first?.text, detail?["frames"]?.intValue ?? 0)
        }

        // Running: the helper has encoded frames.
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline, worker.isRunning {
            let (s, frames) = try await status()
            if s == "running", frames > 0 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(try await status().0 == "running", "the transcode was not seen running")
        // The partial output the helper is writing: what the cancel must remove.
        let partial = (try? FileManager.default.contentsOfDirectory(atPath: fixture.root.path + "/out")) ?? []
        #expect(partial.contains { $0.hasPrefix(".long.mp4.tmp-") }, "out/ while running: \(partial)")
        let helpers = Self.children(of: worker.processIdentifier)
        #expect(!helpers.isEmpty, "a helper runs the transcode")

        let cancel = try await runAsync(conveyorBinary(), ["cancel", "--namespace", namespace, jid])
        let cancelled = ContinuousClock.now
        #expect(cancel.contains("cancelling (taken by "), "\(cancel)")
        while ContinuousClock.now < deadline, try await status().0 != "cancelled" {
            try await Task.sleep(for: .milliseconds(10))
        }
        let took = ContinuousClock.now - cancelled
        #expect(try await status().0 == "cancelled")
        #expect(took < .seconds(1), "cancel to outcome took \(took)")
        // The helper is gone, nothing is left in out/ (neither the outputs nor their temporaries).
        var leftovers: [String] = []
        var running: [pid_t] = []
        while ContinuousClock.now < cancelled + .seconds(1) {
            running = helpers.filter(Self.alive)
            leftovers = (try? FileManager.default.contentsOfDirectory(atPath: fixture.root.path + "/out")) ?? []
            if running.isEmpty && leftovers.isEmpty { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(running.isEmpty, "helpers still running a second after the cancel: \(running)")
        #expect(leftovers.isEmpty, "left in out/: \(leftovers)")
        // One outcome row: cancelled, not retried.
        let database = try PostgresConnection(url: environment["DATABASE_URL"]!)
        var row: [String?] = []
        while ContinuousClock.now < deadline {
            if let first = try database.query("SELECT status, error_class FROM conveyor.job_results WHERE jid = $1", [jid]).rows.first { row = first; break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(row == ["cancelled", "JobCancelled"])
        let retries = try await redis.run { connection in try connection.command("ZCARD", keys.retry).check().int }
        #expect(retries == 0)
        #expect(worker.isRunning, "the worker serves on")
    }
}
