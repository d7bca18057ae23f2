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
        #expect(object["duration_ms"] == 3, "a whole number is a JSON number")
        #expect(object["job.class"]?.stringValue?.hasPrefix("evil\n") == true, "the value is kept, escaped by JSON")
        #expect(object["time"]?.stringValue?.count == 24)
    }

    /// JSON lines carry typed values: whole numbers as numbers, lists as arrays, dictionaries as objects; what only
    /// looks numeric to a lax parser (`inf`, `nan`, `1e400`, `0x10`, `007`, `+5`, ids longer than 2^53) stays text,
    /// and a huge list is cut.
    @Test func jsonLinesCarryTypedValues() throws {
        let huge = (0..<1000).map { Logger.Metadata.Value.string("q\($0)") }
        let out = lines(.json) { logger in
            logger.info("typed", metadata: [
                "attempt": "3", "negative": "-7", "zero": "0", "pid": .stringConvertible(Int32(4242)), "ratio": .stringConvertible(0.25),
                "flag": .stringConvertible(true), "queues": ["critical", "default", "7"], "limits": ["max": "10", "name": "x"],
                "inf": "inf", "nan": "nan", "overflow": "1e400", "hex": "0x10", "octal": "007", "plus": "+5", "spaced": " 5",
                "minus_zero": "-0", "big": "9007199254740993", "jid": "123456789012345678901234", "int64_max": .stringConvertible(Int64.max),
                "int64_min": "\(Int64.min)", "double_inf": .stringConvertible(Double.infinity), "empty": "", "huge": .array(huge),
                "deep": .array([.array([.array([.array([.array(["x"])])])])]),
            ])
        }
        #expect(out.count == 1)
        let o = try #require(try JSONValue(parsing: String(out[0].dropLast())).objectValue, "\(out)")
        #expect(o["attempt"] == 3 && o["negative"] == -7 && o["zero"] == 0 && o["pid"] == 4242)
        #expect(o["ratio"]?.doubleValue == 0.25 && o["flag"] == true)
        #expect(o["queues"] == .array(["critical", "default", 7]))
        #expect(o["limits"]?.objectValue?["max"] == 10 && o["limits"]?.objectValue?["name"] == "x")
        for (key, text) in [("inf", "inf"), ("nan", "nan"), ("overflow", "1e400"), ("hex", "0x10"), ("octal", "007"), ("plus", "+5"),
                            ("spaced", " 5"), ("minus_zero", "-0"), ("big", "9007199254740993"), ("jid", "123456789012345678901234"),
                            ("int64_max", "\(Int64.max)"), ("int64_min", "\(Int64.min)"), ("double_inf", "inf"), ("empty", "")] {
            #expect(o[key] == .string(text), "\(key): \(String(describing: o[key]))")
        }
        let list = try #require(o["huge"]?.arrayValue)
        #expect(list.count == LineLogHandler.maximumEntries + 1 && list.last == .string("…(\(1000 - LineLogHandler.maximumEntries) more entries)"))
        #expect(out[0].utf8.count < 8000)
        // Nesting past four levels is written as text, so a log line stays bounded.
        let deep = try #require(o["deep"]?.arrayValue?.first?.arrayValue?.first?.arrayValue?.first?.arrayValue?.first)
        #expect(deep.stringValue != nil)
    }
}
