import ConveyorCore
import Foundation
import Images
import Logging
import Postgres
import Redis
import SidekiqQueue
import Sandbox
import Storage
import Synchronization
import Testing

@testable import Media

/// The media jobs with their media in a bucket of the SeaweedFS that scripts/services.sh starts: sources are
/// downloaded to a scratch root, the helpers (real `conveyor helper` processes) work there, outputs go back up.
@Suite(.enabled(if: S3Media.endpoint != nil, "needs CONVEYOR_TEST_S3_ENDPOINT (scripts/services.sh start)"))
struct S3MediaTests {
    /// A bucket of its own, a scratch folder inside the fixture's directory (the helpers' writable path).
    func store(
        _ fixture: MediaFixture, endpoint: String? = nil, secret: String? = nil, allowing: Set<String> = [],
        requests: RequestLog? = nil
    ) async throws -> S3MediaStore {
        let bucket = "media-" + UUID().uuidString.prefix(13).lowercased()
        let admin = S3Media.admin
        try await admin.createBucket(bucket, deadline: .now + .seconds(10))
        var onRequest: (@Sendable (S3RequestEvent) -> Void)?
        if let requests { onRequest = { event in requests.events.withLock { $0.append(event) } } }
        let client = S3Client(S3Media.configuration(secret: secret, endpoint: endpoint), onRequest: onRequest)
        return try S3MediaStore(
            client: client, location: S3Location(bucket: bucket), scratch: fixture.directory + "/scratch", cacheControl: "public, max-age=60",
            allowedBuckets: allowing)
    }

    func put(_ store: S3MediaStore, _ fixture: MediaFixture, _ key: String, type: String = "application/octet-stream") async throws {
        try await store.client.put(
            bucket: store.bucket, key: key, from: fixture.path(key), contentType: type, cacheControl: nil, deadline: .now + .seconds(20))
    }

    func head(_ store: S3MediaStore, _ key: String) async throws -> S3ObjectInfo? {
        try await S3Media.admin.head(bucket: store.bucket, key: key, deadline: .now + .seconds(10))
    }

    func download(_ store: S3MediaStore, _ key: String, to path: String) async throws {
        _ = try await S3Media.admin.get(
            bucket: store.bucket, key: key, to: path, maxBytes: 1 << 30, deadline: .now + .seconds(20))
    }

    func scratchIsEmpty(_ store: S3MediaStore) -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: store.scratch)) ?? []).isEmpty
    }

    func images(_ fixture: MediaFixture, store: S3MediaStore) throws -> (ImagesConfiguration, HelperPool) {
        var configuration = try ImagesConfiguration(environment: [
            "CONVEYOR_MEDIA_ROOT": fixture.root.path, "CONVEYOR_HELPER_BIN": conveyorBinary(), "CONVEYOR_HELPERS": "1",
        ])
        configuration.store = store
        configuration.pool.limits.writablePaths = [store.scratch]
        return (configuration, HelperPool(configuration.pool, operations: ImagesJobs.helperOperations))
    }

    /// Video helpers as a worker runs them (sandboxed, the real binary), writing only the store's scratch folder.
    func videoHelpers(_ store: S3MediaStore) -> (VideoConfiguration, HelperPool) {
        var configuration = VideoConfiguration()
        configuration.helperPool.executable = conveyorBinary()
        configuration.helperPool.size = 1
        configuration.helperPool.limits.writablePaths = [store.scratch]
        return (configuration, HelperPool(configuration.helperPool, operations: VideoOperations.helperOperations))
    }

    /// `media.ingest` over the store, with both families' helpers.
    func ingestHandler(
        _ store: S3MediaStore, _ configuration: VideoConfiguration, _ pool: HelperPool, _ imageConfiguration: ImagesConfiguration,
        _ imagePool: HelperPool, _ recorder: any IngestRecorder
    ) -> IngestHandler {
        IngestHandler(
            store: store, probe: ProbeHandler(store: store, configuration: configuration, pool: pool),
            transcode: TranscodeHandler(store: store, configuration: configuration, pool: pool),
            images: IngestHandler.imagePipeline(configuration: imageConfiguration, pool: imagePool), recorder: recorder)
    }

    @Test func thumbnailsAndACleanCopyGoBackToTheBucket() async throws {
        let fixture = try MediaFixture()
        let store = try await store(fixture)
        try FileManager.default.createDirectory(atPath: fixture.path("uploads"), withIntermediateDirectories: true)
        _ = try await runAsync("/usr/bin/convert", ["-size", "800x600", "gradient:red-blue", fixture.path("uploads/photo.jpg")])
        _ = try await runAsync("/usr/bin/exiftool", [
            "-overwrite_original", "-GPSLatitude=48.85", "-GPSLatitudeRef=N", "-GPSLongitude=2.35", "-GPSLongitudeRef=E",
            "-SerialNumber=123456", fixture.path("uploads/photo.jpg"),
        ])
        try await put(store, fixture, "uploads/photo.jpg", type: "image/jpeg")
        try FileManager.default.removeItem(atPath: fixture.path("uploads/photo.jpg"))
        let (configuration, pool) = try images(fixture, store: store)
        defer { pool.shutdown() }

        let strip = ImageJobHandler(kind: .stripMetadata, configuration: configuration, pool: pool)
        let clean = try await strip.perform(fixture.job("image.strip_metadata", ["source": "uploads/photo.jpg"]))
        #expect(clean["key"] == "uploads/photo.clean.jpg")
        #expect(clean["store"] == JSONValue(store.location))
        #expect(clean["path"] == nil, "no scratch path in a result on S3")
        let cleanInfo = try #require(try await head(store, "uploads/photo.clean.jpg"))
        #expect(cleanInfo.contentType == "image/jpeg")
        #expect(cleanInfo.cacheControl == "public, max-age=60")
        try await download(store, "uploads/photo.clean.jpg", to: fixture.directory + "/clean.jpg")
        let tags = try await runAsync("/usr/bin/exiftool", ["-j", "-G", "-a", fixture.directory + "/clean.jpg"])
        #expect(!tags.contains("GPS") && !tags.contains("SerialNumber"), "the object in the bucket carries no location: \(tags)")

        let thumbnail = ImageJobHandler(kind: .thumbnail, configuration: configuration, pool: pool)
        let result = try await thumbnail.perform(fixture.job("image.thumbnail", [
            "source": "uploads/photo.jpg", "destination": "thumbs/photo",
            "variants": [["name": "small", "width": 160, "height": 160, "fit": "cover", "format": "webp"]],
        ]))
        #expect(result["variants"]?[0]?["key"] == "thumbs/photo/small.webp")
        #expect(result["variants"]?[0]?["path"] == nil)
        #expect(result["store"] == JSONValue(store.location))
        #expect(try await head(store, "thumbs/photo/small.webp")?.contentType == "image/webp")
        // The source was only read: it is not uploaded again, and nothing is left on this machine.
        #expect(try await head(store, "uploads/photo.jpg")?.contentType == "image/jpeg")
        #expect(scratchIsEmpty(store))
    }

    @Test func transcodeAndPosterAndTheIngestRowNameTheBucket() async throws {
        let fixture = try MediaFixture()
        let store = try await store(fixture)
        try await fixture.clip("clips/c.mp4", size: "640x360", seconds: 1)
        try await put(store, fixture, "clips/c.mp4", type: "video/mp4")
        try FileManager.default.removeItem(atPath: fixture.path("clips/c.mp4"))
        let (configuration, pool) = videoHelpers(store)
        defer { pool.shutdown() }
        let probe = ProbeHandler(store: store, configuration: configuration, pool: pool)
        let transcode = TranscodeHandler(store: store, configuration: configuration, pool: pool)

        let result = try await transcode.perform(fixture.job("video.transcode", ["source": "clips/c.mp4", "profile": "720p"]))
        #expect(result["output"] == "clips/c.720p.mp4")
        #expect(result["store"] == JSONValue(store.location))
        let output = try #require(try await head(store, "clips/c.720p.mp4"))
        #expect(output.contentType == "video/mp4")
        #expect(output.size == result["output_bytes"]?.intValue)
        #expect(try await head(store, "clips/c.poster.jpg")?.contentType == "image/jpeg")
        #expect(scratchIsEmpty(store))

        let recorder = PublishedCheckingRecorder(store: store)
        let ingest = IngestHandler(store: store, probe: probe, transcode: transcode, images: nil, recorder: recorder)
        let row = try await ingest.perform(fixture.job("media.ingest", ["upload_id": "u-s3", "source": "clips/c.mp4"]))
        #expect(row["status"] == "ready")
        #expect(row["store"] == JSONValue(store.location))
        #expect(row["variants"]?[0]?["key"] == "clips/c.1080p.mp4")
        #expect(try await head(store, "clips/c.1080p.mp4")?.contentType == "video/mp4")
        #expect(recorder.rows.withLock { $0["u-s3"] } == row.objectValue)
        #expect(recorder.variantsPublishedWhenRecorded.withLock { $0 } == [true], "the ready row is written after the upload")
        #expect(scratchIsEmpty(store))
    }

    @Test func anAudioUploadIngestsFromTheBucketInTheSandboxedHelpers() async throws {
        let fixture = try MediaFixture()
        let store = try await store(fixture)
        try await AudioIngestTests.songWithCover(fixture, key: "voice/song.mp3")
        try await put(store, fixture, "voice/song.mp3", type: "audio/mpeg")
        try FileManager.default.removeItem(atPath: fixture.path("voice/song.mp3"))
        let (configuration, pool) = videoHelpers(store)
        defer { pool.shutdown() }
        let (imageConfiguration, imagePool) = try images(fixture, store: store)
        defer { imagePool.shutdown() }
        let recorder = PublishedCheckingRecorder(store: store)
        let ingest = ingestHandler(store, configuration, pool, imageConfiguration, imagePool, recorder)
        let row = try await ingest.perform(fixture.job("media.ingest", ["upload_id": "a-s3", "source": "voice/song.mp3"]))
        #expect(row["status"] == "ready", "\(row.text)")
        #expect(row["kind"] == "audio")
        #expect(row["store"] == JSONValue(store.location))
        #expect(row["variants"]?[0]?["key"] == "voice/song.web.m4a")
        #expect(try await head(store, "voice/song.web.m4a")?.contentType == "audio/mp4")
        #expect(try await head(store, "voice/song.waveform.dat") != nil)
        let json = try #require(try await head(store, "voice/song.waveform.json"))
        #expect(json.contentType == "application/json")
        let poster = try #require(row["poster"]?.stringValue)
        #expect(try await head(store, poster) != nil)
        // The waveform in the bucket is the one the row describes.
        try await download(store, "voice/song.waveform.json", to: fixture.directory + "/w.json")
        let waveform = try JSONValue(parsing: [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture.directory + "/w.json"))))
        #expect(waveform["length"] == row["waveform"]?["length"])
        #expect(waveform["bits"] == 8)
        #expect(recorder.variantsPublishedWhenRecorded.withLock { $0 } == [true], "the ready row is written after the upload")
        #expect(scratchIsEmpty(store))
    }

    /// A job naming an allowed bucket (`"bucket"`) reads its upload there and publishes every output there, the
    /// nested steps of `media.ingest` (waveform, web audio, cover art through the image pipeline) included; a bucket
    /// the deployment does not list is refused before any request.
    @Test func aJobsOwnBucketIsReadAndWrittenWhenAllowed() async throws {
        let fixture = try MediaFixture()
        let tenant = "tenant-" + UUID().uuidString.prefix(12).lowercased()
        try await S3Media.admin.createBucket(tenant, deadline: .now + .seconds(10))
        let requests = RequestLog()
        let store = try await store(fixture, allowing: [tenant], requests: requests)
        func inTenant(_ key: String) async throws -> S3ObjectInfo? {
            try await S3Media.admin.head(bucket: tenant, key: key, deadline: .now + .seconds(10))
        }
        try await AudioIngestTests.songWithCover(fixture, key: "voice/song.mp3")
        try FileManager.default.createDirectory(atPath: fixture.path("uploads"), withIntermediateDirectories: true)
        _ = try await runAsync("/usr/bin/convert", ["-size", "400x300", "gradient:red-blue", fixture.path("uploads/photo.jpg")])
        for (key, type) in [("voice/song.mp3", "audio/mpeg"), ("uploads/photo.jpg", "image/jpeg")] {
            try await S3Media.admin.put(
                bucket: tenant, key: key, from: fixture.path(key), contentType: type, cacheControl: nil, deadline: .now + .seconds(20))
            try FileManager.default.removeItem(atPath: fixture.path(key))
        }
        let (configuration, pool) = videoHelpers(store)
        defer { pool.shutdown() }
        let (imageConfiguration, imagePool) = try images(fixture, store: store)
        defer { imagePool.shutdown() }
        let recorder = RowRecorder()
        let ingest = ingestHandler(store, configuration, pool, imageConfiguration, imagePool, recorder)

        let row = try await ingest.perform(fixture.job("media.ingest", ["upload_id": "t-1", "source": "voice/song.mp3", "bucket": .string(tenant)]))
        #expect(row["status"] == "ready", "\(row.text)")
        #expect(row["store"] == JSONValue.string("s3://" + tenant))
        #expect(recorder.rows.withLock { $0["t-1"]?["store"] } == JSONValue.string("s3://" + tenant))
        #expect(try await inTenant("voice/song.web.m4a")?.contentType == "audio/mp4")
        #expect(try await inTenant("voice/song.waveform.dat") != nil)
        let poster = try #require(row["poster"]?.stringValue)
        #expect(try await inTenant(poster) != nil, "the cover art's variants went to the job's bucket")
        #expect(try await head(store, "voice/song.web.m4a") == nil, "nothing went to the deployment's bucket")
        #expect(try await head(store, poster) == nil)

        let strip = ImageJobHandler(kind: .stripMetadata, configuration: imageConfiguration, pool: imagePool)
        let clean = try await strip.perform(fixture.job("image.strip_metadata", ["source": "uploads/photo.jpg", "bucket": .string(tenant)]))
        #expect(clean["store"] == JSONValue.string("s3://" + tenant))
        #expect(try await inTenant("uploads/photo.clean.jpg")?.contentType == "image/jpeg")
        // Without the argument the job reads the deployment's bucket, where the upload is not.
        await #expect(throws: JobFailure.self) { _ = try await strip.perform(fixture.job("image.strip_metadata", ["source": "uploads/photo.jpg"])) }

        let before = requests.events.withLock { $0.count }
        for handler in [strip as any JobHandler, ingest] {
            let arguments: JSONValue = ["upload_id": "t-2", "source": "uploads/photo.jpg", "bucket": "someone-elses-bucket"]
            var object = arguments.objectValue!
            if handler is ImageJobHandler { object["upload_id"] = nil }
            do {
                _ = try await handler.perform(fixture.job("any", .object(object)))
                Issue.record("a bucket outside the allow-list was used")
            } catch let failure as JobFailure {
                #expect(failure.errorClass == "BucketNotAllowed" && failure.isPermanent, "\(failure)")
            }
        }
        #expect(requests.events.withLock { $0.count } == before, "a refused bucket is never asked")
        #expect(recorder.rows.withLock { $0["t-2"] } == nil)
        #expect(scratchIsEmpty(store))
    }

    @Test func missingOversizedAndRefusedObjectsFailWithTheirClasses() async throws {
        let fixture = try MediaFixture()
        let store = try await store(fixture)
        try await fixture.clip("big.mp4", seconds: 1)
        try await put(store, fixture, "big.mp4")
        var configuration = VideoConfiguration()
        configuration.helperPool.inProcess = true
        configuration.maxSourceBytes = 1000
        let pool = HelperPool(configuration.helperPool, operations: VideoOperations.helperOperations)
        let probe = ProbeHandler(store: store, configuration: configuration, pool: pool)

        func failure(_ handler: ProbeHandler, _ source: String) async -> JobFailure? {
            do {
                _ = try await handler.perform(fixture.job("video.probe", ["source": .string(source)]))
                return nil
            } catch { return JobFailure(error) }
        }
        let missing = await failure(probe, "nope.mp4")
        #expect(missing?.errorClass == "SourceNotFound" && missing?.isPermanent == true)
        let oversized = await failure(probe, "big.mp4")
        #expect(oversized?.errorClass == "StorageObjectTooLarge" && oversized?.isPermanent == true)
        let escaping = await failure(probe, "../etc/passwd")
        #expect(escaping?.errorClass == "PathOutsideMediaRoot")

        let wrong = try await self.store(fixture, secret: "not-the-secret")
        try await S3Media.admin.put(
            bucket: wrong.bucket, key: "big.mp4", from: fixture.path("big.mp4"), contentType: "video/mp4", cacheControl: nil,
            deadline: .now + .seconds(20))
        let denied = await failure(ProbeHandler(store: wrong, configuration: configuration, pool: pool), "big.mp4")
        #expect(denied?.errorClass == "StorageAccessDenied" && denied?.isPermanent == true)
        #expect(scratchIsEmpty(store) && scratchIsEmpty(wrong))
    }

    /// The store goes away while an output is uploading: the job fails as retryable, no object (whole or half) is
    /// visible, nothing is left in scratch, and the retry (the store back) publishes the output.
    @Test func aStoreThatDiesMidUploadLeavesNoHalfObjectAndTheRetryPublishes() async throws {
        let fixture = try MediaFixture()
        let direct = try await store(fixture)
        try await fixture.clip("clips/d.mp4", size: "640x360", seconds: 2)
        try await put(direct, fixture, "clips/d.mp4", type: "video/mp4")
        let port = Int(URL(string: S3Media.endpoint!)!.port!)
        let proxy = try CuttingProxy(target: port, limit: 4096)
        defer { proxy.stop() }
        let cut = try S3MediaStore(
            client: S3Client(S3Media.configuration(endpoint: "http://127.0.0.1:\(proxy.port)")),
            location: S3Location(bucket: direct.bucket), scratch: direct.scratch)
        var configuration = VideoConfiguration()
        configuration.helperPool.inProcess = true
        let pool = HelperPool(configuration.helperPool, operations: VideoOperations.helperOperations)
        let arguments: JSONValue = ["source": "clips/d.mp4", "profile": "720p", "poster": false]

        var failure: JobFailure?
        do {
            _ = try await TranscodeHandler(store: cut, configuration: configuration, pool: pool).perform(fixture.job("video.transcode", arguments))
        } catch { failure = JobFailure(error) }
        #expect(failure?.errorClass == "StorageUnavailable" && failure?.isPermanent == false, "\(String(describing: failure))")
        #expect(try await head(direct, "clips/d.720p.mp4") == nil, "no half object")
        #expect(try await S3Media.admin.multipartUploads(bucket: direct.bucket, deadline: .now + .seconds(10)).isEmpty)
        #expect(scratchIsEmpty(direct))

        let retried = try await TranscodeHandler(store: direct, configuration: configuration, pool: pool)
            .perform(fixture.job("video.transcode", arguments))
        let bytes = try #require(retried["output_bytes"]?.intValue)
        #expect(bytes > 4096, "the output is larger than what the proxy let through")
        #expect(try await head(direct, "clips/d.720p.mp4")?.size == bytes)
    }

    /// A 200 MB output (a long transcode's size) goes up as a multipart upload in parallel parts and arrives whole.
    @Test func aLargeOutputGoesUpInPartsAndArrivesWhole() async throws {
        let fixture = try MediaFixture()
        let store = try await store(fixture)
        let size = 200 << 20
        let digest = try await store.staged([], jid: "large", deadline: .now + .seconds(120)) { root -> String in
            let path = try root.destination("renditions/large.mp4", field: "output")
            _ = try await runAsync("/usr/bin/dd", ["if=/dev/urandom", "of=\(path)", "bs=1M", "count=\(size >> 20)", "status=none"])
            return try await runAsync("/usr/bin/sha256sum", [path]).prefix(64).description
        }
        let info = try #require(try await head(store, "renditions/large.mp4"))
        #expect(info.size == size)
        #expect(info.contentType == "video/mp4")
        try await download(store, "renditions/large.mp4", to: fixture.directory + "/large.mp4")
        #expect(try await runAsync("/usr/bin/sha256sum", [fixture.directory + "/large.mp4"]).prefix(64).description == digest)
        #expect(scratchIsEmpty(store))
    }

    @Test func scratchRootsOfDeadProcessesAreRemovedAtStart() throws {
        let fixture = try MediaFixture()
        let scratch = fixture.directory + "/scratch"
        try FileManager.default.createDirectory(atPath: scratch + "/999999-deadjob-1/uploads", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: scratch + "/999999-deadjob-1/uploads/a.jpg"))
        try FileManager.default.createDirectory(atPath: scratch + "/1-livejob-2", withIntermediateDirectories: true)
        _ = try S3MediaStore(client: S3Media.admin, location: S3Location(bucket: "unused"), scratch: scratch)
        let left = try FileManager.default.contentsOfDirectory(atPath: scratch)
        #expect(left == ["1-livejob-2"], "a live process's (pid 1) root stays, a dead one's goes")
    }
}

/// The requests a store's client made.
final class RequestLog: Sendable {
    let events = Mutex<[S3RequestEvent]>([])
}

/// The SeaweedFS of scripts/services.sh, from the test-only variables it exports.
enum S3Media {
    static let environment = ProcessInfo.processInfo.environment
    static let endpoint = environment["CONVEYOR_TEST_S3_ENDPOINT"]

    /// One client for the tests' own reads and writes (a client keeps threads and connections for its lifetime).
    static let admin = S3Client(configuration())

    static func configuration(secret: String? = nil, endpoint: String? = nil) -> S3Configuration {
        S3Configuration(
            endpoint: endpoint ?? Self.endpoint ?? "", accessKeyID: environment["CONVEYOR_TEST_S3_ACCESS_KEY"] ?? "",
            secretAccessKey: secret ?? environment["CONVEYOR_TEST_S3_SECRET_KEY"] ?? "", pathStyle: true)
    }
}

/// cutting_proxy.py: forwards to the store until `limit` bytes went up, then drops everything.
final class CuttingProxy: @unchecked Sendable {
    let process = Process()
    let port: Int

    init(target: Int, limit: Int) throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("cutting_proxy.py").path
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, String(target), String(limit)]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { throw CocoaError(.fileReadUnknown) }
            line.append(chunk)
        }
        port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))!
    }

    /// SIGKILL: a test process may have SIGTERM ignored, which its children inherit.
    func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// A whole `conveyor worker` configured for a bucket: the composition builds one store for the image and video
/// families, the sandboxed helpers write only in the scratch folder, and the upload's row names the bucket.
@Suite(.enabled(
    if: S3Media.endpoint != nil && S3Media.environment["REDIS_URL"] != nil && S3Media.environment["DATABASE_URL"] != nil,
    "needs the S3, Redis and PostgreSQL servers of scripts/services.sh"))
struct S3WorkerTests {
    @Test func aWorkerIngestsAnUploadFromTheBucket() async throws {
        let fixture = try MediaFixture()
        let bucket = "worker-" + UUID().uuidString.prefix(12).lowercased()
        // A bucket a job names, which the deployment allows.
        let tenant = "tenant-" + UUID().uuidString.prefix(12).lowercased()
        let client = S3Media.admin
        try FileManager.default.createDirectory(atPath: fixture.path("uploads"), withIntermediateDirectories: true)
        _ = try await runAsync("/usr/bin/convert", ["-size", "640x480", "plasma:", fixture.path("uploads/e2e.jpg")])
        _ = try await runAsync("/usr/bin/exiftool", ["-overwrite_original", "-GPSLatitude=48.85", "-GPSLatitudeRef=N", fixture.path("uploads/e2e.jpg")])
        for name in [bucket, tenant] {
            try await client.createBucket(name, deadline: .now + .seconds(10))
            try await client.put(
                bucket: name, key: "uploads/e2e.jpg", from: fixture.path("uploads/e2e.jpg"), contentType: "image/jpeg", cacheControl: nil,
                deadline: .now + .seconds(20))
        }

        let environment = S3Media.environment
        // The table the rows are polled from exists before the first job writes it.
        _ = try await runAsync(conveyorBinary(), ["migrate", "--database-url", environment["DATABASE_URL"]!])
        let namespace = "s3w-" + UUID().uuidString.prefix(8).lowercased()
        let worker = Process()
        worker.executableURL = URL(fileURLWithPath: conveyorBinary())
        worker.arguments = ["worker", "--namespace", namespace, "--queues", "media", "-c", "2"]
        worker.environment = environment.merging([
            "CONVEYOR_MEDIA_STORE": "s3://\(bucket)", "CONVEYOR_S3_ALLOWED_BUCKETS": tenant, "AWS_ENDPOINT_URL_S3": S3Media.endpoint!, "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": environment["CONVEYOR_TEST_S3_ACCESS_KEY"] ?? "",
            "AWS_SECRET_ACCESS_KEY": environment["CONVEYOR_TEST_S3_SECRET_KEY"] ?? "",
            "CONVEYOR_SCRATCH_DIR": fixture.directory + "/scratch", "CONVEYOR_MAIL_OUTBOX": fixture.directory + "/outbox",
            "CONVEYOR_HELPERS": "1", "CONVEYOR_VIDEO_HELPERS": "1",
        ]) { _, new in new }
        let log = Pipe()
        worker.standardOutput = log
        worker.standardError = log
        try worker.run()
        defer {
            kill(worker.processIdentifier, SIGKILL)
            worker.waitUntilExit()
        }

        let redis = RedisThread(try RedisEndpoint(url: environment["REDIS_URL"]!), name: "s3-worker-test")
        defer { redis.stop() }
        let upload = "up-" + UUID().uuidString.prefix(8).lowercased()
        let jobs = JobClient(redis: redis, keys: QueueKeys(namespace: namespace))
        try await jobs.enqueue("media.ingest", arguments: ["upload_id": .string(upload), "source": "uploads/e2e.jpg"], queue: "media")
        try await jobs.enqueue(
            "media.ingest", arguments: ["upload_id": .string(upload + "-t"), "source": "uploads/e2e.jpg", "bucket": .string(tenant)], queue: "media")

        let database = try PostgresConnection(url: environment["DATABASE_URL"]!)
        func row(_ id: String) async throws -> [String?] {
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                let result = try database.query(
                    "SELECT status, details->>'store', details->>'clean' FROM conveyor.media_uploads WHERE upload_id = $1", [id])
                if let first = result.rows.first { return first }
                try await Task.sleep(for: .milliseconds(100))
            }
            return []
        }
        #expect(try await row(upload) == ["ready", "s3://\(bucket)", "uploads/e2e.clean.jpg"], "no ready row for the upload")
        #expect(try await row(upload + "-t") == ["ready", "s3://\(tenant)", "uploads/e2e.clean.jpg"], "no ready row for the tenant's upload")
        for name in [bucket, tenant] {
            #expect(try await client.head(bucket: name, key: "uploads/e2e.clean.jpg", deadline: .now + .seconds(10))?.contentType == "image/jpeg")
        }
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: fixture.directory + "/scratch")) ?? []).isEmpty)
    }
}

/// Records rows like `RowRecorder`, and notes whether each ready row's variants were already in the bucket.
final class PublishedCheckingRecorder: IngestRecorder {
    let store: S3MediaStore
    let rows = Mutex<[String: JSONObject]>([:])
    let variantsPublishedWhenRecorded = Mutex<[Bool]>([])

    init(store: S3MediaStore) { self.store = store }

    func record(uploadID: String, jid: String, row: JSONObject) async throws {
        if row["status"] == "ready", let key = row["variants"]?[0]?["key"]?.stringValue {
            let info = try await S3Media.admin.head(bucket: store.bucket, key: key, deadline: .now + .seconds(10))
            variantsPublishedWhenRecorded.withLock { $0.append(info != nil) }
        }
        rows.withLock { $0[uploadID] = row }
    }

    func recordIfAbsent(uploadID: String, jid: String, row: JSONObject) async throws {
        rows.withLock { if $0[uploadID] == nil { $0[uploadID] = row } }
    }
}
