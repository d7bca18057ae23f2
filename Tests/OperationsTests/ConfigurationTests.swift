import Foundation
import Testing

/// Settings are read strictly at start-up: a value that cannot be used stops the worker with exit 64 and names the
/// variable, instead of silently running on a default.
@Suite(.enabled(if: TestEnv.binary != nil && TestEnv.redisURL != nil, "needs CONVEYOR_BIN and REDIS_URL"))
struct ConfigurationTests {
    @Test(arguments: [
        ("CONVEYOR_CONCURRENCY", "ten"), ("CONVEYOR_CONCURRENCY", "0"), ("CONVEYOR_LOG_LEVEL", "loud"),
        ("CONVEYOR_METRICS_POLL_SECONDS", "soon"), ("CONVEYOR_RESULTS_BATCH", "0"), ("CONVEYOR_RESULTS_BATCH", "9000"),
        ("CONVEYOR_RESULTS_WRITERS", "x"), ("CONVEYOR_RESULTS_FLUSH_MS", "-5"), ("CONVEYOR_RESULTS_BUFFER", "lots"), ("CONVEYOR_LOG_FORMAT", "xml"),
    ])
    func anUnusableSettingStopsTheWorker(name: String, value: String) throws {
        let r = try TestEnv.conveyor(["worker", "--queues", "default"], environment: [name: value])
        #expect(r.code == 64, "\(name)=\(value): exit \(r.code), \(r.err.suffix(300))")
        #expect(r.err.contains(name), "the message names \(name): \(r.err.suffix(300))")
    }

    @Test func versionIsPrinted() throws {
        let r = try TestEnv.conveyor(["--version"])
        #expect(r.code == 0)
        #expect(r.out.trimmingCharacters(in: .whitespacesAndNewlines).wholeMatch(of: /\d+\.\d+\.\d+/) != nil, "\(r.out)")
    }

    @Test func durationDefaultsReadAsDurations() throws {
        let r = try TestEnv.conveyor(["worker", "--help"])
        #expect(r.out.contains("(default: 25s)"), "\(r.out)")
        #expect(!r.out.contains("DurationArgument"))
    }
}
