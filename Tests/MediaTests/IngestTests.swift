import ConveyorCore
import Foundation
import Images
import Postgres
import Sandbox
import Synchronization
import Testing

@testable import Media

final class RowRecorder: IngestRecorder {
    let rows = Mutex<[String: JSONObject]>([:])
    func record(uploadID: String, jid: String, row: JSONObject) async throws { rows.withLock { $0[uploadID] = row } }
    func recordIfAbsent(uploadID: String, jid: String, row: JSONObject) async throws {
        rows.withLock { if $0[uploadID] == nil { $0[uploadID] = row } }
    }
}

@Suite struct IngestTests {
    func handler(_ fixture: MediaFixture, recorder: RowRecorder, images: ImageIngest? = nil) -> IngestHandler {
        IngestHandler(
            root: fixture.root, probe: fixture.probeHandler(), transcode: fixture.transcodeHandler(), images: images,
            recorder: recorder)
    }

    @Test func sniffsTheRealTypeFromTheBytes() {
        #expect(MediaKind(sniffing: [0xFF, 0xD8, 0xFF, 0xE0]) == .jpeg)
        #expect(MediaKind(sniffing: [0x1A, 0x45, 0xDF, 0xA3, 0x01]) == .matroska)
        #expect(MediaKind(sniffing: [0, 0, 0, 0x18] + Array("ftypisom".utf8) + [0, 0, 2, 0] + Array("isomiso2".utf8)) == .mp4)
        #expect(MediaKind(sniffing: [0, 0, 0, 0x18] + Array("ftypheic".utf8) + [0, 0, 0, 0] + Array("mif1heic".utf8)) == .heif)
        #expect(MediaKind(sniffing: Array("RIFF\u{0}\u{0}\u{0}\u{0}WEBPVP8 ".utf8)) == .webp)
        #expect(MediaKind(sniffing: Array("#EXTM3U\n".utf8)) == .playlist)
        #expect(MediaKind(sniffing: Array("ID3\u{4}".utf8)) == .mp3)
        #expect(MediaKind(sniffing: [0xFF, 0xFB, 0x90, 0x64]) == .mp3)
        #expect(MediaKind(sniffing: [0xFF, 0xF1, 0x50, 0x80]) == .aac)
        #expect(MediaKind(sniffing: Array("OggS\u{0}".utf8)) == .ogg)
        #expect(MediaKind(sniffing: Array("fLaC".utf8)) == .flac)
        #expect(MediaKind(sniffing: Array("RIFF\u{0}\u{0}\u{0}\u{0}WAVEfmt ".utf8)) == .wav)
        #expect(MediaKind(sniffing: Array("hello".utf8)) == .unknown)
    }

    @Test func videoUploadWithAnImageNameIsTranscodedAndRecorded() async throws {
        let fixture = try MediaFixture()
        // Named .jpg, really an MP4: the bytes decide.
        try await fixture.clip("uploads/u1.mp4", size: "640x360", seconds: 1)
        try FileManager.default.moveItem(atPath: fixture.path("uploads/u1.mp4"), toPath: fixture.path("uploads/u1.jpg"))
        let recorder = RowRecorder()
        let result = try await handler(fixture, recorder: recorder).perform(
            fixture.job("media.ingest", ["upload_id": "u1", "source": "uploads/u1.jpg"]))
        #expect(result["kind"] == "video")
        #expect(result["status"] == "ready")
        #expect(result["width"] == 640)
        #expect(result["variants"]?[0]?["key"] == "uploads/u1.1080p.mp4")
        #expect(result["poster"] == "uploads/u1.poster.jpg")
        #expect(result["probe"]?["streams"]?.arrayValue?.count == 2)
        #expect(FileManager.default.fileExists(atPath: fixture.path("uploads/u1.1080p.mp4")))
        #expect(recorder.rows.withLock { $0["u1"] } == result.objectValue)
    }

    @Test func imageUploadGoesToTheImagesPipeline() async throws {
        let fixture = try MediaFixture()
        try Data([0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10] + Array("JFIF".utf8)).write(to: URL(fileURLWithPath: fixture.path("p.bin")))
        let recorder = RowRecorder()
        let seen = Mutex<[String]>([])
        let images: ImageIngest = { _, source in
            seen.withLock { $0.append(source) }
            return JSONObject([("width", 10), ("height", 20), ("variants", [])])
        }
        let result = try await handler(fixture, recorder: recorder, images: images).perform(
            fixture.job("media.ingest", ["upload_id": "u2", "source": "p.bin"]))
        #expect(seen.withLock { $0 } == ["p.bin"])
        #expect(result["kind"] == "image")
        #expect(result["height"] == 20)
        #expect(recorder.rows.withLock { $0["u2"]?["status"] } == "ready")
        // Without an images pipeline an image upload is retried, not dropped.
        do {
            _ = try await handler(fixture, recorder: recorder).perform(fixture.job("media.ingest", ["upload_id": "u3", "source": "p.bin"]))
            Issue.record("image ingest without an images pipeline succeeded")
        } catch let failure as JobFailure {
            #expect(failure.errorClass == "IngestNotConfigured")
            #expect(!failure.isPermanent)
        }
    }

    @Test func imageUploadIsStrippedAndThumbnailedByTheImagesFamily() async throws {
        let fixture = try MediaFixture()
        // A JPEG named .mov.
        try await fixture.ffmpeg(["-f", "lavfi", "-i", "testsrc=s=640x480", "-frames:v", "1", "-f", "image2", "-c:v", "mjpeg"], output: "uploads/photo.mov")
        let images = try ImagesConfiguration(environment: ["CONVEYOR_MEDIA_ROOT": fixture.root.path, "CONVEYOR_IMAGE_IN_PROCESS": "1"])
        let pool = HelperPool(images.pool, operations: ImagesJobs.helperOperations)
        defer { pool.shutdown() }
        let recorder = RowRecorder()
        let result = try await handler(fixture, recorder: recorder, images: IngestHandler.imagePipeline(configuration: images, pool: pool))
            .perform(fixture.job("media.ingest", ["upload_id": "u5", "source": "uploads/photo.mov"]))
        #expect(result["kind"] == "image")
        #expect(result["detected_type"] == "jpeg")
        #expect(result["width"] == 640)
        let clean = try #require(result["clean"]?.stringValue)
        #expect(FileManager.default.fileExists(atPath: fixture.path(clean)))
        let variants = try #require(result["variants"]?.arrayValue)
        #expect(!variants.isEmpty)
        for variant in variants {
            #expect(variant["path"] == nil)
            let key = try #require(variant["key"]?.stringValue)
            #expect(FileManager.default.fileExists(atPath: fixture.path(key)))
        }
        #expect(recorder.rows.withLock { $0["u5"]?["status"] } == "ready")
    }

    @Test func hostileUploadIsRecordedAsFailed() async throws {
        let fixture = try MediaFixture()
        try fixture.write("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nhttp://127.0.0.1:9/x.ts\n", to: "evil.mp4")
        let recorder = RowRecorder()
        _ = await expectPermanent("MediaPlaylistRefused") {
            try await handler(fixture, recorder: recorder).perform(fixture.job("media.ingest", ["upload_id": "u4", "source": "evil.mp4"]))
        }
        #expect(recorder.rows.withLock { $0["u4"]?["status"] } == "failed")
        #expect(recorder.rows.withLock { $0["u4"]?["error_class"] } == "MediaPlaylistRefused")
    }

    @Test func rowsLandInPostgreSQLAndAFailedRedeliveryKeepsTheReadyRow() async throws {
        let url = try #require(ProcessInfo.processInfo.environment["DATABASE_URL"], "DATABASE_URL is set by scripts/test.sh")
        let fixture = try MediaFixture()
        try await fixture.clip("uploads/v.mp4", size: "320x240", seconds: 1)
        try fixture.write("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n", to: "uploads/evil.mp4")
        let recorder = PostgresIngestRecorder(url: url)
        let handler = IngestHandler(
            root: fixture.root, probe: fixture.probeHandler(), transcode: fixture.transcodeHandler(), images: nil,
            recorder: recorder)
        let video = "pg-video-\(UUID().uuidString)", hostile = "pg-hostile-\(UUID().uuidString)"
        let job = fixture.job("media.ingest", ["upload_id": .string(video), "source": "uploads/v.mp4"])
        _ = try await handler.perform(job)
        _ = await expectPermanent("MediaPlaylistRefused") {
            try await handler.perform(fixture.job("media.ingest", ["upload_id": .string(hostile), "source": "uploads/evil.mp4"]))
        }
        // The same upload id delivered again with a source that is now hostile: the ready row stays.
        _ = await expectPermanent("MediaPlaylistRefused") {
            try await handler.perform(fixture.job("media.ingest", ["upload_id": .string(video), "source": "uploads/evil.mp4"]))
        }

        let connection = try PostgresConnection(url: url)
        let rows = try connection.query(
            """
            SELECT upload_id, status, kind, width::text, height::text, variants->0->>'key', poster #>> '{}',
                   probe->'format'->>'format_name', jid, error_class, details->>'detected_type'
              FROM conveyor.media_uploads WHERE upload_id IN ($1, $2) ORDER BY upload_id DESC
            """, [video, hostile]).rows
        #expect(rows.count == 2)
        let ready = try #require(rows.first { $0[0] == video })
        #expect(ready[1] == "ready")
        #expect(ready[2] == "video")
        #expect(ready[3] == "320" && ready[4] == "240")
        #expect(ready[5] == "uploads/v.1080p.mp4")
        #expect(ready[6] == "uploads/v.poster.jpg")
        #expect(ready[7]?.contains("mp4") == true)
        #expect(ready[8] == job.jid)
        #expect(ready[9] == nil)
        let failed = try #require(rows.first { $0[0] == hostile })
        #expect(failed[1] == "failed")
        #expect(failed[9] == "MediaPlaylistRefused")
        #expect(failed[10] == "playlist")

        // A job that died of transient failures (its retries ran out) gives a new upload a failed row, and
        // leaves an upload that already has one alone.
        let observer = IngestDeathObserver(recorder: recorder)
        let stuck = "pg-stuck-\(UUID().uuidString)"
        func dead(_ uploadID: String) -> JobOutcome {
            JobOutcome(
                jid: "dead-\(uploadID)", jobClass: "media.ingest", queue: "media", status: .dead, attempts: 3, result: nil,
                failure: .transient("MediaDeadline", "media.ingest ran out of time"), enqueuedAt: nil, startedAt: 0,
                finishedAt: 1,
                payload: JSONObject([("class", "media.ingest"), ("args", [["upload_id": .string(uploadID), "source": "uploads/s.mp4"]])]))
        }
        await observer.record(dead(stuck))
        await observer.record(dead(video))
        await observer.record(dead(hostile))
        let after = try connection.query(
            "SELECT upload_id, status, error_class, jid, source FROM conveyor.media_uploads WHERE upload_id IN ($1, $2, $3)",
            [video, hostile, stuck]).rows
        #expect(after.first { $0[0] == stuck }.map { Array($0[1...]) } == ["failed", "MediaDeadline", "dead-\(stuck)", "uploads/s.mp4"])
        #expect(after.first { $0[0] == video }?[1] == "ready")
        #expect(after.first { $0[0] == hostile }?[2] == "MediaPlaylistRefused")
    }
}
