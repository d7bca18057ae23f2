import ConveyorCore
import Foundation
import Images
import Storage
import Testing

/// Values from outside (job arguments, configuration) checked at the border: out of range is a clean permanent
/// error naming the value, never a trap, and nothing is written before the check.
@Suite struct ImagesBorderTests {
    static let extremeNumbers: [JSONValue] = [
        .number("1e308"), .number("-1e308"), .number("1e400"), .number("-1e400"), .number("9223372036854775807"),
        .number("9223372036854775808"), .number("-9223372036854775808"), .number("-1"), .number("0"), .number("0.5"),
        .number("1e-400"), .number("64.0"), .string("64"), .bool(true), .array([]),
    ]

    static let extremeSettings = [
        "inf", "-inf", "nan", "1e300", "-1e300", "1e400", "-1", "0", "9223372036854775807", "-9223372036854775808",
        "18446744073709551616", "0x10", "abc",
    ]

    @Test(arguments: [
        "CONVEYOR_IMAGE_MAX_MEGAPIXELS", "CONVEYOR_IMAGE_MAX_DIMENSION", "CONVEYOR_IMAGE_MAX_FILE_MB", "CONVEYOR_IMAGE_MAX_FRAMES",
        "CONVEYOR_IMAGE_MAX_PROGRESSIVE_MEGAPIXELS", "CONVEYOR_IMAGE_TIMEOUT_SECONDS", "CONVEYOR_HELPERS", "CONVEYOR_HELPER_MAX_JOBS",
        "CONVEYOR_HELPER_MEMORY_MB", "CONVEYOR_HELPER_CPU_SECONDS", "CONVEYOR_HELPER_OPEN_FILES",
    ])
    func everySettingIsFiniteAndInRangeOrANamedConfigurationError(name: String) throws {
        let root = NSTemporaryDirectory() + "conveyor-images-settings-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        for value in Self.extremeSettings {
            do {
                let configuration = try ImagesConfiguration(environment: ["CONVEYOR_MEDIA_ROOT": root, name: value])
                Issue.record("\(name)=\(value) was accepted: \(configuration.limits)")
            } catch let failure as JobFailure {
                #expect(failure.errorClass == "InvalidConfiguration" && failure.message.hasPrefix("\(name)="), "\(name)=\(value): \(failure.message)")
            }
        }
    }

    @Test func theDocumentedRangesAreAccepted() throws {
        let limits = try ImageLimits(environment: [
            "CONVEYOR_IMAGE_MAX_MEGAPIXELS": "0.5", "CONVEYOR_IMAGE_MAX_DIMENSION": "1000000", "CONVEYOR_IMAGE_MAX_FILE_MB": "0.001",
            "CONVEYOR_IMAGE_MAX_FRAMES": "1", "CONVEYOR_IMAGE_MAX_PROGRESSIVE_MEGAPIXELS": "100000",
        ])
        #expect(limits.maxMegapixels == 0.5 && limits.maxDimension == 1_000_000 && limits.maxFileBytes == 1049 && limits.maxFrames == 1)
        #expect(throws: JobFailure.self) { try ImageLimits(environment: ["CONVEYOR_IMAGE_MAX_DIMENSION": "1.5"]) }
    }

    /// Every numeric argument of both image classes, with every extreme: InvalidArguments naming it, or a thumbnail.
    @Test func extremeNumbersInEveryArgument() async throws {
        let box = try MediaSandbox()
        try await box.run("vips", "black", "src.png", "32", "24")
        let base: (String, JSONValue) -> JSONObject = { key, value in
            var variant = JSONObject([("name", "v"), ("width", 64), ("height", 64), ("format", "webp"), ("quality", 80), ("effort", 4)])
            variant[key] = value
            return JSONObject([("source", "src.png"), ("variants", .array([.object(variant)]))])
        }
        for key in ["width", "height", "quality", "effort"] {
            for value in Self.extremeNumbers {
                do {
                    let result = try await box.perform("image.thumbnail", base(key, value))
                    #expect(result["variants"]?.arrayValue?.count == 1, "\(key)=\(value)")
                } catch let failure as JobFailure {
                    #expect(failure.errorClass == "InvalidArguments" && failure.isPermanent && failure.message.contains("variants[0].\(key)"),
                            "\(key)=\(value): \(failure)")
                }
            }
        }
        for value in Self.extremeNumbers {
            do {
                _ = try await box.perform("image.strip_metadata", JSONObject([("source", "src.png"), ("destination", "clean.png"), ("quality", value)]))
            } catch let failure as JobFailure {
                #expect(failure.errorClass == "InvalidArguments" && failure.isPermanent && failure.message.contains("quality"), "quality=\(value): \(failure)")
            }
        }
    }

    /// Over-long keys are refused before anything is created: the media root holds exactly what it held before.
    @Test(arguments: [
        ("destination", "thumbs/" + String(repeating: "d", count: 256)),
        ("destination", "a/b/" + String(repeating: "n", count: 201) + "/c"),
        ("destination", Array(repeating: "deep", count: 400).joined(separator: "/")),
        ("destination", Array(repeating: "x", count: 449).joined(separator: "/")),
        ("source", "uploads/" + String(repeating: "s", count: 300) + ".png"),
        ("source", Array(repeating: "ssss", count: 400).joined(separator: "/")),
    ])
    func overLongKeysArePermanentAndLeaveNoFolder(field: String, key: String) async throws {
        let box = try MediaSandbox()
        try await box.run("vips", "black", "src.png", "32", "24")
        let before = try FileManager.default.subpathsOfDirectory(atPath: box.media).sorted()
        var arguments = JSONObject([("source", "src.png"), ("variants", variants([("v", 16, 16, "inside", "webp")]))])
        arguments[field] = .string(key)
        let f = await box.failure("image.thumbnail", arguments)
        #expect(f?.errorClass == "InvalidArguments" && f?.isPermanent == true, "\(String(describing: f))")
        #expect(f?.message.contains(field) == true)
        #expect(try FileManager.default.subpathsOfDirectory(atPath: box.media).sorted() == before)
    }

    @Test func aLongVariantNameOnALongDestinationIsRefusedBeforeTheFirstVariantIsWritten() async throws {
        let box = try MediaSandbox()
        try await box.run("vips", "black", "src.png", "32", "24")
        let before = try FileManager.default.subpathsOfDirectory(atPath: box.media).sorted()
        // Fits alone, not with the 64-character variant name.
        let destination = Array(repeating: String(repeating: "p", count: 105), count: 8).joined(separator: "/")
        let f = await box.failure("image.thumbnail", JSONObject([
            ("source", "src.png"), ("destination", .string(destination)),
            ("variants", variants([("a", 16, 16, "inside", "webp"), (String(repeating: "v", count: 64), 16, 16, "inside", "webp")])),
        ]))
        #expect(f?.errorClass == "InvalidArguments" && f?.message.contains("destination") == true, "\(String(describing: f))")
        #expect(try FileManager.default.subpathsOfDirectory(atPath: box.media).sorted() == before)
    }

    @Test func keyLimitsAreTheDocumentedOnes() throws {
        try MediaRoot.validate(String(repeating: "k", count: MediaRoot.maxSegmentBytes), field: "source")
        try MediaRoot.validate(Array(repeating: "k", count: MediaRoot.maxKeyBytes / 2).joined(separator: "/") + "k", field: "source")
        #expect(throws: JobFailure.self) { try MediaRoot.validate(String(repeating: "k", count: MediaRoot.maxSegmentBytes + 1), field: "source") }
        #expect(throws: JobFailure.self) { try MediaRoot.validate(String(repeating: "é", count: 101), field: "source") }
    }
}

/// Every top-level argument of both image classes (from their schemas) set to each extreme number.
@Suite struct ImageArgumentPropertyTests {
    @Test(arguments: ["image.thumbnail", "image.strip_metadata"])
    func extremeNumbersInEveryArgument(jobClass: String) async throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Jobs/\(jobClass).schema.json")
        let fields = try #require(try JSONValue(parsing: Array(try Data(contentsOf: url)))["properties"]?.objectValue).keys
        let box = try MediaSandbox()
        try await box.run("vips", "black", "src.png", "32", "24")
        for field in fields {
            for value in ImagesBorderTests.extremeNumbers {
                var arguments = JSONObject([("source", "src.png")])
                arguments[field] = value
                do {
                    _ = try await box.perform(jobClass, arguments)
                } catch let failure as JobFailure {
                    #expect(failure.isPermanent && failure.message.contains(field), "\(jobClass) \(field)=\(value): \(failure)")
                }
            }
        }
    }
}
