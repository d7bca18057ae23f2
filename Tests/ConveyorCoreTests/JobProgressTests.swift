import Foundation
import Logging
import Synchronization
import Testing

@testable import ConveyorCore

/// The progress reporter's throttle and bounds, against a recording writer.
@Suite struct JobProgressReporterTests {
    final class Recorder: Sendable {
        let writes = Mutex<[(at: ContinuousClock.Instant, fields: [String: String], ttl: Int)]>([])
        func write(_ fields: [(String, String)], _ ttl: Int) {
            writes.withLock { $0.append((.now, Dictionary(fields, uniquingKeysWith: { $1 }), ttl)) }
        }
        var count: Int { writes.withLock { $0.count } }

        func waitFor(_ n: Int) async throws {
            let deadline = ContinuousClock.now + .seconds(10)
            while count < n, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        }
    }

    @Test func atMostOneWriteASecondAndTheLastValueWins() async throws {
        let recorder = Recorder()
        let reporter = JobProgressReporter { fields, ttl in recorder.write(fields, ttl) }
        for i in 0..<500 { reporter.report(percent: Double(i) / 10, detail: JSONObject([("i", JSONValue(i))])) }
        try await recorder.waitFor(1)
        for i in 500..<1000 { reporter.report(percent: Double(i) / 10, detail: JSONObject([("i", JSONValue(i))])) }
        try await recorder.waitFor(2)
        reporter.finish(status: "succeeded")
        try await recorder.waitFor(3)
        let writes = recorder.writes.withLock { $0 }
        try #require(writes.count == 3, "\(writes.map(\.fields))")
        #expect(Double(writes[0].fields["progress"] ?? "") ?? 100 <= 49.9)
        #expect(writes[1].fields["progress"] == "99.9" && writes[1].fields["detail"] == "{\"i\":999}", "\(writes[1].fields)")
        // The throttle spaces the flushes a second apart; each write carries its flush's time as `updated_at` (the
        // writes themselves run in order on the pool, so a busy pool can start the first one late).
        let spacing = (Double(writes[1].fields["updated_at"] ?? "") ?? 0) - (Double(writes[0].fields["updated_at"] ?? "") ?? 0)
        #expect(spacing >= 0.95, "\(writes.map(\.fields))")
        #expect(writes[0].fields["status"] == "running" && writes[0].ttl == JobProgressReporter.runningTTL)
        #expect(writes[2].fields["status"] == "succeeded" && writes[2].ttl == JobProgressReporter.finishedTTL)
        // Nothing after the outcome.
        reporter.report(percent: 100, detail: JSONObject())
        try await Task.sleep(for: .milliseconds(1200))
        #expect(recorder.count == 3)
    }

    @Test(arguments: [(1e308, "100.0"), (-1e308, "0.0"), (Double.infinity, "100.0"), (-Double.infinity, "0.0"), (100.04, "100.0")])
    func extremesAreClamped(percent: Double, stored: String) async throws {
        let recorder = Recorder()
        let reporter = JobProgressReporter { fields, ttl in recorder.write(fields, ttl) }
        reporter.report(percent: percent, detail: JSONObject())
        try await recorder.waitFor(1)
        #expect(recorder.writes.withLock { $0.first?.fields["progress"] } == stored)
    }

    /// `media.ingest`'s steps: a step's 0...100 fills its slice of the job's bar, nested steps narrow it, and the
    /// detail names the step.
    @Test(arguments: [
        (5.0, 100.0, nil as (Double, Double)?, 50.0, "52.5"), (5, 100, nil, 1e308, "100.0"), (5, 100, nil, -1e308, "5.0"),
        (40, 90, (0, 50), 50, "52.5"), (90, 100, nil, .infinity, "100.0"), (.nan, .nan, nil, 10, "10.0"),
    ])
    func aStepFillsItsSliceOfTheBar(from: Double, to: Double, inner: (Double, Double)?, percent: Double, stored: String) async throws {
        let recorder = Recorder()
        let reporter = JobProgressReporter { fields, ttl in recorder.write(fields, ttl) }
        let job = JobContext(
            jid: "j", jobClass: "media.ingest", queue: "media", arguments: JSONObject(), attempt: 1, deadline: .now + .seconds(60),
            payload: JSONObject(), logger: Logger(label: "test"), progressReporter: reporter)
        var step = job.progressStep("transcode", from: from, to: to)
        if let (a, b) = inner { step = step.progressStep("inner", from: a, to: b) }
        step.progress(percent, detail: JSONObject([("frames", 10)]))
        try await recorder.waitFor(1)
        let fields = recorder.writes.withLock { $0.first?.fields } ?? [:]
        #expect(fields["progress"] == stored)
        #expect(fields["detail"]?.contains(inner == nil ? "\"step\":\"transcode\"" : "\"step\":\"inner\"") == true, "\(fields)")
    }

    @Test func nanIsIgnoredAndAHugeDetailIsLeftOut() async throws {
        let recorder = Recorder()
        let reporter = JobProgressReporter { fields, ttl in recorder.write(fields, ttl) }
        reporter.report(percent: .nan, detail: JSONObject())
        reporter.finish(status: "succeeded")
        try await Task.sleep(for: .milliseconds(300))
        #expect(recorder.count == 0, "a job that never reported a number writes nothing")

        let second = JobProgressReporter { fields, ttl in recorder.write(fields, ttl) }
        second.report(percent: 5, detail: JSONObject([("blob", JSONValue(String(repeating: "x", count: 1 << 20)))]))
        try await recorder.waitFor(1)
        let detail = recorder.writes.withLock { $0.first?.fields["detail"] } ?? ""
        #expect(detail.utf8.count < 200 && detail.contains("4096"), "\(detail.prefix(100))")
    }
}
