import Foundation
import Logging
import Testing
@testable import Summaries

/// The conveyor_llm_* families a worker appends to /metrics, and the alert rules built on them, checked by
/// Prometheus's own tool.
@Suite struct MetricsExportTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }
    static var hasPromtool: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool") }

    private func promtool(_ arguments: [String], input: String? = nil) throws -> (code: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
        p.arguments = arguments
        let out = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = out
        p.standardInput = inp
        try p.run()
        if let input { inp.fileHandleForWriting.write(Data(input.utf8)) }
        try inp.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test(.enabled(if: hasPromtool, "needs promtool (Debian prometheus)"))
    func exportedTextPassesPromtoolAndFeedsEveryLLMAlert() async throws {
        let server = try FakeLLMServer()
        try server.fault("openai", "500")
        var logger = Logger(label: "metrics-export-tests")
        logger.logLevel = .critical
        let s = Summarizer(configuration: try SummariesConfiguration(environment: server.environment()), cache: nil)
        let request = SummaryRequest(
            postID: "post-metrics", title: "Bike lanes", body: "The council voted to add protected bike lanes on Main Street.",
            comments: [], maxWords: 30)
        let result = try await s.summarize(request, deadline: .now + .seconds(20), jid: "m1", logger: logger)
        #expect(result.provider == "anthropic")

        let text = s.metricsSnapshot().prometheusText()
        #expect(text.contains("conveyor_llm_calls_total{provider=\"openai\",outcome=\"failure\"} 1"))
        #expect(text.contains("conveyor_llm_calls_total{provider=\"anthropic\",outcome=\"success\"} 1"))
        #expect(text.contains("conveyor_llm_fallbacks_total 1"))
        let check = try promtool(["check", "metrics"], input: text)
        #expect(check.code == 0, "\(check.output)")

        // Every metric an LLM alert uses is one the summarizer exports.
        let rules = try String(contentsOfFile: Self.path("docker/prometheus/alerts-llm.yml"), encoding: .utf8)
        let used = Set(rules.matches(of: /conveyor_llm_[a-z_]+/).map { String($0.output) })
        #expect(used.count >= 4)
        let exported = Set(text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap {
            $0.split(whereSeparator: { $0 == "{" || $0 == " " }).first.map(String.init)
        })
        for name in used {
            #expect(exported.contains(name), "\(name) is used by an alert but not exported")
        }
    }

    @Test(.enabled(if: hasPromtool, "needs promtool (Debian prometheus)"))
    func llmAlertRulesAreValidAndFire() throws {
        let rules = try promtool(["check", "rules", Self.path("docker/prometheus/alerts-llm.yml")])
        #expect(rules.code == 0, "\(rules.output)")
        let tests = try promtool(["test", "rules", Self.path("docker/prometheus/alerts-llm_test.yml")])
        #expect(tests.code == 0, "\(tests.output)")
    }
}
