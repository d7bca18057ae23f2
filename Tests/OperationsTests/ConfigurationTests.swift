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

    @Test func configPrintsMaskedValuesAndChecksEverySetting() throws {
        let env = [
            "REDIS_URL": "redis://worker:s3cret@127.0.0.1:6390/0", "OPENAI_API_KEY": "sk-live-123", "CONVEYOR_CONCURENCY": "4",
            "CONVEYOR_VIDEO_CRF": "23",
        ]
        let ok = try TestEnv.conveyor(["config"], environment: env)
        #expect(ok.code == 0, "\(ok.err)")
        #expect(ok.out.contains("redis://worker:****@127.0.0.1:6390/0"))
        #expect(!ok.out.contains("s3cret") && !ok.out.contains("sk-live-123"))
        #expect(ok.err.contains("CONVEYOR_CONCURENCY is not a Conveyor setting"), "a typo is reported: \(ok.err)")
        let json = try TestEnv.conveyor(["config", "--json"], environment: env)
        let object = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any]
        #expect((object?["unknown"] as? [String])?.contains("CONVEYOR_CONCURENCY") == true)
        let bad = try TestEnv.conveyor(["config"], environment: ["CONVEYOR_VIDEO_CRF": "99", "CONVEYOR_QUEUES": "a:x"])
        #expect(bad.code == 64)
        #expect(bad.err.contains("CONVEYOR_VIDEO_CRF") && bad.err.contains("CONVEYOR_QUEUES"), "\(bad.err)")
    }

    /// Every variable docs/configuration.md documents is one `conveyor config` knows, so none is warned as a typo.
    @Test func everyDocumentedVariableIsKnown() throws {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/configuration.md")
        let text = try String(contentsOf: docs.standardized, encoding: .utf8)
        var documented = Set<String>()
        for line in text.split(separator: "\n") where line.hasPrefix("| `") {
            let cell = line.split(separator: "|").first.map(String.init) ?? ""
            for match in cell.matches(of: /`((?:CONVEYOR|SMTP|OPENAI|ANTHROPIC)_[A-Z0-9_]+)`/) { documented.insert(String(match.1)) }
        }
        #expect(documented.count > 60, "\(documented.count) documented")
        let r = try TestEnv.conveyor(["config", "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        let known = Set(((object?["settings"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String })
        #expect(documented.subtracting(known).isEmpty, "documented but unknown to conveyor config: \(documented.subtracting(known).sorted())")
    }
}
