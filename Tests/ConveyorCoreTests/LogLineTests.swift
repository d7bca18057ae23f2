import Logging
import Synchronization
import Testing

@testable import ConveyorCore

/// What reaches a log from a job is escaped and cut, in both line formats.
struct LogLineTests {
    func lines(_ format: LineLogHandler.Format, _ body: (Logger) -> Void) -> [String] {
        let written = Mutex<[String]>([])
        var logger = Logger(label: "conveyor.test") { label in
            LineLogHandler(label: label, level: .info, format: format) { line in written.withLock { $0.append(line) } }
        }
        logger[metadataKey: "job.class"] = "evil\n2026-12-01T00:00:00+0000 critical conveyor.worker: FAKE"
        body(logger)
        return written.withLock { $0 }
    }

    @Test func textLinesEscapeControlCharactersAndCutLongValues() {
        let out = lines(.text) { logger in
            logger.error("job failed \u{1B}[2J", metadata: ["error": "\(String(repeating: "y", count: 5000))", "job.id": "abc"])
        }
        #expect(out.count == 1)
        let line = out[0]
        #expect(line.hasSuffix("\n") && line.dropLast().contains("\n") == false)
        #expect(line.contains(#"job.class="evil\n2026-12-01T00:00:00+0000 critical conveyor.worker: FAKE""#))
        #expect(line.contains(#"job failed \u{1B}[2J"#))
        #expect(line.contains("job.id=abc"))
        #expect(line.contains("…(4488 more characters)"))
        #expect(line.utf8.count < 1200)
    }

    @Test func jsonLinesCarryJobMetadataAsFields() throws {
        let out = lines(.json) { logger in
            logger.info("job succeeded", metadata: ["job.id": "abc", "duration_ms": "3"])
        }
        #expect(out.count == 1)
        #expect(out[0].hasSuffix("\n") && !out[0].dropLast().contains("\n"))
        let object = try #require(try JSONValue(parsing: String(out[0].dropLast())).objectValue)
        #expect(object["message"] == "job succeeded")
        #expect(object["level"] == "info")
        #expect(object["label"] == "conveyor.test")
        #expect(object["job.id"] == "abc")
        #expect(object["duration_ms"] == "3")
        #expect(object["job.class"]?.stringValue?.hasPrefix("evil\n") == true, "the value is kept, escaped by JSON")
        #expect(object["time"]?.stringValue?.count == 24)
    }
}
