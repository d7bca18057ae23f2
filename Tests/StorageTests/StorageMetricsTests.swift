import Foundation
import Storage
import Testing

@Suite struct StorageMetricsTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized

    @Test func requestsBytesAndLatencyAreCountedByOperationAndOutcome() {
        let metrics = StorageMetrics()
        metrics.record(S3RequestEvent(operation: "get", outcome: "ok", bytes: 1000, seconds: 0.02))
        metrics.record(S3RequestEvent(operation: "get", outcome: "ok", bytes: 500, seconds: 3))
        metrics.record(S3RequestEvent(operation: "put", outcome: "denied", bytes: 0, seconds: 0.004))
        let text = metrics.prometheusText()
        #expect(text.contains(#"conveyor_storage_requests_total{operation="get",outcome="ok"} 2"#))
        #expect(text.contains(#"conveyor_storage_requests_total{operation="put",outcome="denied"} 1"#))
        #expect(text.contains(#"conveyor_storage_bytes_total{operation="get",outcome="ok"} 1500"#))
        #expect(text.contains(#"conveyor_storage_request_seconds_bucket{operation="get",le="0.025"} 1"#))
        #expect(text.contains(#"conveyor_storage_request_seconds_bucket{operation="get",le="5.0"} 2"#))
        #expect(text.contains(#"conveyor_storage_request_seconds_bucket{operation="get",le="+Inf"} 2"#))
        #expect(text.contains(#"conveyor_storage_request_seconds_count{operation="put"} 1"#))
    }

    /// The alert rules use only series the store exports, and fire as their promtool tests say.
    @Test func alertRulesUseExportedSeriesAndFire() throws {
        let rules = try String(contentsOf: Self.root.appendingPathComponent("docker/prometheus/alerts-storage.yml"), encoding: .utf8)
        let metrics = StorageMetrics()
        metrics.record(S3RequestEvent(operation: "get", outcome: "unavailable", bytes: 0, seconds: 1))
        let exported = metrics.prometheusText()
        for match in rules.matches(of: /conveyor_[a-z_]+/) where !match.0.hasSuffix("_") {
            #expect(exported.contains(String(match.0) + "{"), "\(match.0) is used by an alert but not exported")
        }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool") else { return }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
        p.arguments = ["test", "rules", Self.root.appendingPathComponent("docker/prometheus/alerts-storage_test.yml").path]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(output)")
    }
}
