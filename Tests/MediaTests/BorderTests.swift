import AV
import ConveyorCore
import Foundation
import Postgres
import Redis
import SidekiqQueue
import Storage
import Testing

@testable import Media

/// Values from outside checked at the border of the media families: a clean permanent error naming the argument,
/// never a trap, a PostgreSQL error or a retried write failure.
@Suite struct VideoBorderTests {
    static let extremeNumbers: [JSONValue] = [
        .number("1e308"), .number("-1e308"), .number("1e400"), .number("-1e400"), .number("9223372036854775807"),
        .number("9223372036854775808"), .number("-9223372036854775808"), .number("-1"), .number("0"), .number("0.5"),
        .number("1e-400"), .string("100"), .bool(true), .array([]),
    ]

    /// Every numeric argument of `audio.waveform` (the media classes with numbers), with every extreme.
    @Test func extremeNumbersInEveryWaveformArgument() async throws {
        let fixture = try MediaFixture()
        try await AudioClips.make(fixture, "sine-44k-mono.mp3")
        let handler = waveformHandler(fixture)
        let fields: [(String, (JSONValue) -> JSONObject)] = [
            ("pixels_per_second", { JSONObject([("source", "sine-44k-mono.mp3"), ("pixels_per_second", $0)]) }),
            ("samples_per_pixel", { JSONObject([("source", "sine-44k-mono.mp3"), ("samples_per_pixel", $0)]) }),
            ("bits", { JSONObject([("source", "sine-44k-mono.mp3"), ("bits", $0)]) }),
            ("image.width", { JSONObject([("source", "sine-44k-mono.mp3"), ("image", ["width": $0])]) }),
            ("image.height", { JSONObject([("source", "sine-44k-mono.mp3"), ("image", ["height": $0])]) }),
        ]
        for (field, arguments) in fields {
            for value in Self.extremeNumbers {
                do {
                    let result = try await handler.perform(fixture.job("audio.waveform", .object(arguments(value))))
                    #expect(result["data"] != nil || result["output"] != nil || result.objectValue?.isEmpty == false, "\(field)=\(value)")
                } catch let failure as JobFailure {
                    #expect(failure.errorClass == "InvalidArguments" && failure.isPermanent && failure.message.contains(field),
                            "\(field)=\(value): \(failure)")
                }
            }
        }
    }

    @Test(arguments: ["u\u{0}x", "\u{0}", "u\u{1B}[2J", "line\nbreak", "del\u{7F}", String(repeating: "u", count: 201), ""])
    func uploadIDsPostgreSQLCannotKeyAreInvalidArguments(id: String) async throws {
        let fixture = try MediaFixture()
        let recorder = RowRecorder()
        let handler = IngestHandler(root: fixture.root, probe: fixture.probeHandler(), transcode: fixture.transcodeHandler(), images: nil, recorder: recorder)
        let message = await expectPermanent("InvalidArguments") {
            try await handler.perform(fixture.job("media.ingest", .object(JSONObject([("upload_id", .string(id)), ("source", "a.mp4")]))))
        }
        #expect(message.contains("upload_id"))
        #expect(recorder.rows.withLock { $0.isEmpty })
    }

    @Test(arguments: [
        ("video.transcode", JSONObject([("source", "in.mp4"), ("poster", .string("p/" + String(repeating: "p", count: 256) + ".jpg"))]), "poster"),
        ("video.transcode", JSONObject([("source", "in.mp4"), ("output", .string(Array(repeating: "o", count: 500).joined(separator: "/")))]), "output"),
        ("video.probe", JSONObject([("source", .string("d/" + String(repeating: "s", count: 300)))]), "source"),
        ("audio.waveform", JSONObject([("source", "in.mp4"), ("output", .string("w/" + String(repeating: "w", count: 196)))]), "output"),
        ("media.ingest", JSONObject([("upload_id", "u"), ("source", .string(Array(repeating: "i", count: 600).joined(separator: "/")))]), "source"),
    ])
    func overLongKeysArePermanentAndLeaveNoFolder(jobClass: String, arguments: JSONObject, field: String) async throws {
        let fixture = try MediaFixture()
        try await fixture.clip("in.mp4", seconds: 0.5)
        let before = try FileManager.default.subpathsOfDirectory(atPath: fixture.root.path).sorted()
        let handler: any JobHandler = switch jobClass {
        case "video.transcode": fixture.transcodeHandler()
        case "video.probe": fixture.probeHandler()
        case "audio.waveform": waveformHandler(fixture)
        default: IngestHandler(root: fixture.root, probe: fixture.probeHandler(), transcode: fixture.transcodeHandler(), images: nil, recorder: RowRecorder())
        }
        let message = await expectPermanent("InvalidArguments") { try await handler.perform(fixture.job(jobClass, .object(arguments))) }
        #expect(message.contains(field), "\(message)")
        #expect(try FileManager.default.subpathsOfDirectory(atPath: fixture.root.path).sorted() == before)
    }
}

private let environment = ProcessInfo.processInfo.environment

/// The real worker: poison media jobs end dead after one attempt with `InvalidArguments`, and the worker lives on.
@Suite(.enabled(if: environment["REDIS_URL"] != nil && environment["DATABASE_URL"] != nil, "needs REDIS_URL and DATABASE_URL"))
struct VideoBorderWorkerTests {
    @Test func poisonMediaJobsAreDeadOnTheFirstAttemptAndTheWorkerLivesOn() async throws {
        let fixture = try MediaFixture()
        try await fixture.clip("uploads/ok.mp4", seconds: 0.5)
        let media = try await MediaWorkerProcess.start(fixture, name: "border", concurrency: 2)
        defer { media.stop() }
        let worker = media.process
        let jobs = media.jobs
        let before = try FileManager.default.subpathsOfDirectory(atPath: fixture.root.path).sorted()
        let poison: [(String, JSONObject)] = [
            ("media.ingest", JSONObject([("upload_id", "nul\u{0}id"), ("source", "uploads/ok.mp4")])),
            ("media.ingest", JSONObject([("upload_id", "long-key"), ("source", .string("uploads/" + String(repeating: "k", count: 300) + ".mp4"))])),
            ("video.transcode", JSONObject([("source", "uploads/ok.mp4"), ("output", .string(Array(repeating: "deep", count: 300).joined(separator: "/")))])),
            ("audio.waveform", JSONObject([("source", "uploads/ok.mp4"), ("pixels_per_second", .number("1e308"))])),
            ("audio.waveform", JSONObject([("source", "uploads/ok.mp4"), ("samples_per_pixel", .number("9223372036854775807"))])),
        ]
        var jids: [String] = []
        for (jobClass, arguments) in poison { jids.append(try await jobs.enqueue(jobClass, arguments: arguments, queue: "media")) }

        let database = try PostgresConnection(url: environment["DATABASE_URL"]!)
        for (jid, (jobClass, _)) in zip(jids, poison) {
            let deadline = ContinuousClock.now + .seconds(60)
            var row: [String?] = []
            while ContinuousClock.now < deadline, worker.isRunning {
                let result = try database.query("SELECT status, error_class, attempts::text FROM conveyor.job_results WHERE jid = $1", [jid])
                if let first = result.rows.first { row = first; break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(row == ["dead", "InvalidArguments", "1"], "\(jobClass) jid=\(jid): \(row)")
        }
        // A source with a NUL: dead as PathOutsideMediaRoot, and the upload still gets its failed row.
        let upload = "nul-source-" + UUID().uuidString.prefix(8).lowercased()
        let nulJID = try await jobs.enqueue(
            "media.ingest", arguments: JSONObject([("upload_id", .string(upload)), ("source", "uploads/x\u{0}.mp4")]), queue: "media")
        var uploadRow: [String?] = []
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline, worker.isRunning {
            let result = try database.query("SELECT status, error_class, source FROM conveyor.media_uploads WHERE upload_id = $1", [upload])
            if let first = result.rows.first { uploadRow = first; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(uploadRow == ["failed", "PathOutsideMediaRoot", "uploads/x.mp4"], "\(uploadRow)")
        var nulRow: [String?]?
        while ContinuousClock.now < deadline, nulRow == nil {
            nulRow = try database.query("SELECT status, error_class FROM conveyor.job_results WHERE jid = $1", [nulJID]).rows.first
            if nulRow == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(nulRow == ["dead", "PathOutsideMediaRoot"])
        #expect(try MediaUploadQueries.byID("nul\u{0}id", on: database) == nil)

        #expect(worker.isRunning, "the worker died")
        let after = try FileManager.default.subpathsOfDirectory(atPath: fixture.root.path).sorted()
        #expect(after == before, "new files: \(Set(after).subtracting(before).sorted().prefix(5))")
    }
}

@Suite struct ProbeNumberTests {
    /// A file declares its start time and duration: any Int64 of microseconds prints without trapping.
    @Test func probeSecondsNeverTrap() {
        for value in [Double(Int64.max) / 1e6, Double(Int64.min) / 1e6, 9.3e12, -9.3e12, 1e300, -1e300, .infinity, 0, 1.5, -0.25] {
            let text = MediaProbe.seconds(value)
            #expect(!text.isEmpty && Double(text) != nil, "\(value) → \(text)")
        }
        #expect(MediaProbe.seconds(12.3456789) == "12.345679" && MediaProbe.seconds(-0.25) == "-0.250000")
    }
}

/// S3's 1024-byte object keys, with the store's prefix: refused as `InvalidArguments` before a download, and before
/// the first upload of a job whose outputs would not all fit (the job publishes all or none).
@Suite(.enabled(if: S3Media.endpoint != nil, "needs CONVEYOR_TEST_S3_ENDPOINT (scripts/services.sh start)"))
struct S3ObjectKeyTests {
    func store(_ fixture: MediaFixture, prefix: String) async throws -> S3MediaStore {
        let bucket = "keys-" + UUID().uuidString.prefix(13).lowercased()
        try await S3Media.admin.createBucket(bucket, deadline: .now + .seconds(10))
        return try S3MediaStore(client: S3Media.admin, location: S3Location(bucket: bucket, prefix: prefix), scratch: fixture.directory + "/scratch")
    }

    static let prefix = Array(repeating: String(repeating: "p", count: 150), count: 3).joined(separator: "/")

    @Test func anInputWhoseObjectKeyIsTooLongIsRefusedBeforeTheDownload() async throws {
        let fixture = try MediaFixture()
        let store = try await store(fixture, prefix: Self.prefix)
        let key = Array(repeating: String(repeating: "k", count: 150), count: 4).joined(separator: "/")
        let failure = await #expect(throws: JobFailure.self) {
            try await store.staged([MediaInput(key, maxBytes: 1 << 20)], jid: "keys-1", deadline: .now + .seconds(20)) { _ in 0 }
        }
        #expect(failure?.errorClass == "InvalidArguments" && failure?.isPermanent == true && failure?.message.contains("1024") == true)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: store.scratch)) ?? []).isEmpty)
    }

    @Test func outputsAreAllOrNothingWhenOneObjectKeyIsTooLong() async throws {
        let fixture = try MediaFixture()
        let store = try await store(fixture, prefix: Self.prefix)
        let long = Array(repeating: String(repeating: "o", count: 150), count: 4).joined(separator: "/")
        let failure = await #expect(throws: JobFailure.self) {
            try await store.staged([], jid: "keys-2", deadline: .now + .seconds(20)) { root in
                for key in ["a-short.txt", long] {
                    let path = try root.destination(key)
                    FileManager.default.createFile(atPath: path, contents: Data("x".utf8))
                }
                return 0
            }
        }
        #expect(failure?.errorClass == "InvalidArguments" && failure?.isPermanent == true && failure?.message.contains("1024") == true)
        let short = try await S3Media.admin.head(bucket: store.bucket, key: S3Location(bucket: store.bucket, prefix: Self.prefix).objectKey("a-short.txt"),
                                                 deadline: .now + .seconds(10))
        #expect(short == nil, "the short output was uploaded before the long one was refused")
    }
}

@Suite struct VideoSettingsTests {
    static let extremes = ["inf", "-inf", "nan", "1e300", "1e400", "-1", "9223372036854775807", "-9223372036854775808",
                           "18446744073709551616", "0x10", "1.5", "abc"]

    @Test(arguments: [
        "CONVEYOR_VIDEO_MAX_PIXELS", "CONVEYOR_VIDEO_MAX_DURATION", "CONVEYOR_AUDIO_MAX_DURATION", "CONVEYOR_VIDEO_CRF",
        "CONVEYOR_VIDEO_MAX_FILE_MB", "CONVEYOR_VIDEO_TRANSCODE_TIMEOUT", "CONVEYOR_VIDEO_PROBE_TIMEOUT",
        "CONVEYOR_VIDEO_TRANSCODE_CONCURRENCY", "CONVEYOR_VIDEO_HELPERS", "CONVEYOR_VIDEO_HELPER_MEMORY_MB",
    ])
    func everySettingIsInRangeOrANamedError(name: String) {
        for value in Self.extremes {
            do {
                _ = try VideoConfiguration(environment: [name: value])
                Issue.record("\(name)=\(value) was accepted")
            } catch {
                #expect("\(error)".hasPrefix("\(name)="), "\(name)=\(value): \(error)")
            }
        }
    }
}

/// Every argument its schema lists, of every media class, set to each extreme number: a permanent error naming the
/// argument (or a result), never a trap, a retry or a PostgreSQL error. The list comes from `Jobs/*.schema.json`, so
/// an argument added later is covered too.
@Suite struct MediaArgumentPropertyTests {
    static func schemaProperties(_ jobClass: String) throws -> [String] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Jobs/\(jobClass).schema.json")
        let schema = try JSONValue(parsing: Array(try Data(contentsOf: url)))
        return try #require(schema["properties"]?.objectValue).keys
    }

    @Test(arguments: ["video.probe", "video.transcode", "audio.waveform", "audio.transcode", "media.ingest"])
    func extremeNumbersInEveryArgument(jobClass: String) async throws {
        let fixture = try MediaFixture()
        try await fixture.clip("in.mp4", seconds: 0.3)
        let handler: any JobHandler = switch jobClass {
        case "video.probe": fixture.probeHandler()
        case "video.transcode": fixture.transcodeHandler()
        case "audio.waveform": waveformHandler(fixture)
        case "audio.transcode": audioTranscodeHandler(fixture)
        default: IngestHandler(root: fixture.root, probe: fixture.probeHandler(), transcode: fixture.transcodeHandler(), images: nil, recorder: RowRecorder())
        }
        let fields = try Self.schemaProperties(jobClass)
        #expect(fields.contains("source"))
        for field in fields {
            for value in VideoBorderTests.extremeNumbers {
                var arguments = JSONObject([("source", "in.mp4")])
                if jobClass == "media.ingest" { arguments["upload_id"] = "u-extreme" }
                arguments[field] = value
                do {
                    _ = try await handler.perform(fixture.job(jobClass, .object(arguments), timeout: .seconds(60)))
                } catch let failure as JobFailure {
                    #expect(failure.isPermanent && failure.message.contains(field), "\(jobClass) \(field)=\(value): \(failure)")
                }
            }
        }
    }
}
