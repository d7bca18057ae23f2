import AV
import ConveyorCore
import Foundation
import Testing

@testable import Media

/// Uploads built to make FFmpeg read other files or reach the network, or to exhaust it.
@Suite struct HostileInputTests {
    /// The upload, a canary it names, and tripwires on both the canary and a loopback port.
    struct Trap {
        let fixture: MediaFixture
        let canary: FileTripwire
        let listener: ConnectionTripwire

        static func make() async throws -> Trap {
            let fixture = try MediaFixture()
            try await fixture.clip("uploads/secret.mp4", seconds: 0.4, audio: false)
            return Trap(fixture: fixture, canary: try FileTripwire(fixture.path("uploads/secret.mp4")), listener: try ConnectionTripwire())
        }

        /// Asserts nothing touched the canary or the port, then proves both tripwires fire.
        func expectUntouched(sourceLocation: SourceLocation = #_sourceLocation) throws {
            #expect(canary.events() == 0, "the canary file was opened or read", sourceLocation: sourceLocation)
            #expect(listener.connections() == 0, "a connection reached the loopback listener", sourceLocation: sourceLocation)
            _ = try Data(contentsOf: URL(fileURLWithPath: fixture.path("uploads/secret.mp4")))
            #expect(canary.events() > 0, "control: the inotify tripwire does not fire", sourceLocation: sourceLocation)
            try listener.knock()
            #expect(listener.connections() == 1, "control: the listener does not accept", sourceLocation: sourceLocation)
        }

        var hlsLocal: String {
            "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\nsecret.mp4\n#EXTINF:10.0,\n"
                + "file://\(fixture.path("uploads/secret.mp4"))\n#EXT-X-ENDLIST\n"
        }
        var hlsRemote: String {
            "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\n"
                + "http://127.0.0.1:\(listener.port)/segment.ts\n#EXT-X-ENDLIST\n"
        }
        // A relative sibling name passes the concat demuxer's own safe=1 check.
        var concat: String { "ffconcat version 1.0\nfile secret.mp4\n" }
    }

    @Test(arguments: ["hls-local", "hls-remote", "concat"])
    func playlistsNamedMP4AreRejectedWithoutTouchingAnythingElse(kind: String) async throws {
        let trap = try await Trap.make()
        let text = kind == "hls-local" ? trap.hlsLocal : kind == "hls-remote" ? trap.hlsRemote : trap.concat
        try trap.fixture.write(text, to: "uploads/evil.mp4")
        let probe = trap.fixture.probeHandler(sandboxed: true)
        let transcode = trap.fixture.transcodeHandler(sandboxed: true)
        let message = await expectPermanent("UnsupportedMedia") {
            try await probe.perform(trap.fixture.job("video.probe", ["source": "uploads/evil.mp4"]))
        }
        #expect(message.contains("uploads/evil.mp4"))
        #expect(message.contains("container is not accepted"), "\(message)")
        _ = await expectPermanent("UnsupportedMedia") {
            try await transcode.perform(trap.fixture.job("video.transcode", ["source": "uploads/evil.mp4"]))
        }
        #expect(!FileManager.default.fileExists(atPath: trap.fixture.path("uploads/evil.1080p.mp4")))
        try trap.expectUntouched()
    }

    /// The second wall: even with HLS and concat let through the demuxer allow-list, io_open refuses
    /// every nested open and nested contexts have no protocol, so the playlist still reaches nothing.
    @Test(arguments: ["hls-local", "hls-remote", "concat"])
    func nestedOpensAreRefusedEvenWhenTheDemuxerIsAllowed(kind: String) async throws {
        let trap = try await Trap.make()
        let text = kind == "hls-local" ? trap.hlsLocal : kind == "hls-remote" ? trap.hlsRemote : trap.concat
        try trap.fixture.write(text, to: "uploads/evil.mp4")
        var policy = InputPolicy()
        policy.formats += ["hls", "concat"]
        let widened = policy
        let path = trap.fixture.path("uploads/evil.mp4")
        switch try await offCooperativePool({ () throws(AVFailure) in try MediaProbe.probe(path: path, policy: widened, deadline: .now + .seconds(20)) }) {
        case .success(let probe):
            Issue.record("probe accepted a playlist: \(probe)")
        case .failure(let error):
            #expect(error.isPermanent, "\(error)")
            if kind != "concat" {
                // HLS goes through io_open, which counts and names what it refused.
                #expect(error.kind == .nestedOpenRefused, "\(error)")
                #expect(error.message.contains("secret.mp4") || error.message.contains("127.0.0.1"), "\(error.message)")
            }
        }
        try trap.expectUntouched()
    }

    @Test func truncatedMP4IsAPermanentError() async throws {
        let fixture = try MediaFixture()
        try await fixture.clip("whole.mp4", seconds: 1)
        let whole = try Data(contentsOf: URL(fileURLWithPath: fixture.path("whole.mp4")))
        // Without +faststart the moov box is at the end: cutting the file loses it.
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: fixture.path("cut.mp4")))
        let message = await expectPermanent("UnsupportedMedia") {
            try await fixture.probeHandler(sandboxed: true).perform(fixture.job("video.probe", ["source": "cut.mp4"]))
        }
        #expect(message.contains("cut.mp4"))
    }

    @Test func hugeDimensionsAreRejectedBeforeDecoding() async throws {
        let fixture = try MediaFixture()
        try await fixture.clip("small.mp4", size: "320x256", seconds: 0.2, audio: false)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture.path("small.mp4"))))
        // Rewrite the avc1 sample entry's width and height (28 bytes after its type) to 20000x20000.
        let stsd = try #require(find(Array("stsd".utf8), in: bytes))
        let avc1 = try #require(find(Array("avc1".utf8), in: Array(bytes[stsd...]))) + stsd
        #expect(bytes[avc1 + 28] == 0x01 && bytes[avc1 + 29] == 0x40)
        bytes.replaceSubrange((avc1 + 28)..<(avc1 + 32), with: [0x4E, 0x20, 0x4E, 0x20])
        try Data(bytes).write(to: URL(fileURLWithPath: fixture.path("huge.mp4")))
        let message = await expectPermanent("UnsupportedMedia") {
            try await fixture.probeHandler(sandboxed: true).perform(fixture.job("video.probe", ["source": "huge.mp4"]))
        }
        #expect(message.contains("20000x20000"), "\(message)")
        _ = await expectPermanent("UnsupportedMedia") {
            try await fixture.transcodeHandler(sandboxed: true).perform(fixture.job("video.transcode", ["source": "huge.mp4"]))
        }
    }

    /// A container that understates the size (16x16 in stsd, 320x256 in the H.264 SPS) still meets the
    /// pixel limit once the decoder sees the real size.
    @Test func understatedDimensionsAreCaughtByTheDecoder() async throws {
        let fixture = try MediaFixture()
        try await fixture.clip("small.mp4", size: "320x256", seconds: 0.2, audio: false)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture.path("small.mp4"))))
        let stsd = try #require(find(Array("stsd".utf8), in: bytes))
        let avc1 = try #require(find(Array("avc1".utf8), in: Array(bytes[stsd...]))) + stsd
        bytes.replaceSubrange((avc1 + 28)..<(avc1 + 32), with: [0x00, 0x10, 0x00, 0x10])
        try Data(bytes).write(to: URL(fileURLWithPath: fixture.path("liar.mp4")))
        var policy = InputPolicy()
        policy.maxPixels = 320 * 256 - 1
        let input = fixture.path("liar.mp4"), output = fixture.path("liar.out.mp4")
        let strict = policy
        let transcoded = try await offCooperativePool { () throws(AVFailure) in
            try Transcoder.transcode(
                inputPath: input, outputPath: output, profile: .web720p, policy: strict, posterAt: nil, deadline: .now + .seconds(30))
        }
        if case .success = transcoded { Issue.record("a 320x256 stream was transcoded under a 320x256-1 pixel limit") }
        let probed = try await offCooperativePool { () throws(AVFailure) in
            try MediaProbe.probe(path: input, policy: strict, deadline: .now + .seconds(30))
        }
        switch probed {
        case .success: Issue.record("a 320x256 stream passed a 320x256-1 pixel limit")
        case .failure(let error): #expect(error.isPermanent, "\(error)")
        }
    }

    @Test func zeroLengthFileIsAPermanentError() async throws {
        let fixture = try MediaFixture()
        try fixture.write("", to: "empty.mp4")
        _ = await expectPermanent("UnsupportedMedia") {
            try await fixture.probeHandler().perform(fixture.job("video.probe", ["source": "empty.mp4"]))
        }
    }

    @Test func audioOnlyProbesButDoesNotTranscode() async throws {
        let fixture = try MediaFixture()
        try await fixture.ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac"], output: "voice.m4a")
        let probe = try await fixture.probeHandler().perform(fixture.job("video.probe", ["source": "voice.m4a"]))
        #expect(probe["streams"]?.arrayValue?.count == 1)
        #expect(probe["streams"]?[0]?["codec_type"] == "audio")
        let message = await expectPermanent("UnsupportedMedia") {
            try await fixture.transcodeHandler().perform(fixture.job("video.transcode", ["source": "voice.m4a"]))
        }
        #expect(message.contains("no video stream"), "\(message)")

        // An M4A with cover art has a video stream, but only an attached picture: still audio-only.
        try await fixture.ffmpeg(["-f", "lavfi", "-i", "testsrc=s=320x320:d=1", "-frames:v", "1"], output: "cover.png")
        try await fixture.ffmpeg([
            "-f", "lavfi", "-i", "sine=frequency=330:duration=1", "-i", fixture.path("cover.png"), "-map", "0:a", "-map", "1:v",
            "-c:a", "aac", "-c:v", "mjpeg", "-disposition:v", "attached_pic",
        ], output: "song.m4a")
        let covered = await expectPermanent("UnsupportedMedia") {
            try await fixture.transcodeHandler().perform(fixture.job("video.transcode", ["source": "song.m4a"]))
        }
        #expect(covered.contains("no video stream"), "\(covered)")
    }

    @Test func decoderOutsideTheAllowListIsRefused() async throws {
        let fixture = try MediaFixture()
        // MJPEG in Matroska: the container is allowed, the codec is not.
        try await fixture.ffmpeg(["-f", "lavfi", "-i", "testsrc=s=64x64:d=0.2", "-c:v", "mjpeg"], output: "mjpeg.mkv")
        let message = await expectPermanent("UnsupportedMedia") {
            try await fixture.transcodeHandler().perform(fixture.job("video.transcode", ["source": "mjpeg.mkv"]))
        }
        #expect(message.contains("mjpeg"), "\(message)")
    }

    @Test func deadlineStopsTheTranscodeAndIsRetryable() async throws {
        let fixture = try MediaFixture()
        try await fixture.clip("long.mp4", size: "1280x720", rate: 25, seconds: 6, audio: false)
        do {
            let result = try await fixture.transcodeHandler().perform(
                fixture.job("video.transcode", ["source": "long.mp4"], timeout: .milliseconds(300)))
            Issue.record("a 6 s 720p transcode finished within 300 ms: \(result.text)")
        } catch let failure as JobFailure {
            #expect(failure.errorClass == "MediaDeadline", "\(failure)")
            #expect(!failure.isPermanent)
        }
        #expect(!FileManager.default.fileExists(atPath: fixture.path("long.1080p.mp4")))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: fixture.root.path).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty, "\(leftovers)")
    }

    @Test(arguments: ["../outside.mp4", "/etc/passwd", "a/../../x.mp4", "link/secret.mp4", "", "./a.mp4"])
    func keysThatLeaveTheMediaRootArePermanentErrors(key: String) async throws {
        let fixture = try MediaFixture()
        let outside = fixture.directory + "/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try await fixture.clip("../outside/secret.mp4", seconds: 0.2, audio: false)
        try FileManager.default.createSymbolicLink(atPath: fixture.path("link"), withDestinationPath: outside)
        let expected = key.isEmpty ? "InvalidArguments" : "PathOutsideMediaRoot"
        _ = await expectPermanent(expected) {
            try await fixture.probeHandler().perform(fixture.job("video.probe", ["source": JSONValue(key)]))
        }
        try await fixture.clip("in.mp4", seconds: 0.2, audio: false)
        _ = await expectPermanent("PathOutsideMediaRoot") {
            try await fixture.transcodeHandler().perform(
                fixture.job("video.transcode", ["source": "in.mp4", "output": JSONValue(key.isEmpty ? "/tmp/x.mp4" : key)]))
        }
    }
}

extension HostileInputTests {
    /// The helper resolves and confines every key itself, as the image helper does: a request that never passed
    /// the worker's checks still cannot make it read or write outside the media root, in a helper process or in-process.
    @Test(arguments: ["../outside/secret.mp4", "/etc/passwd", "link/secret.mp4", "escape.mp4"], [true, false])
    func theHelperRefusesKeysThatLeaveTheMediaRoot(key: String, sandboxed: Bool) async throws {
        let fixture = try MediaFixture()
        let outside = fixture.directory + "/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try await fixture.clip("../outside/secret.mp4", seconds: 0.2, audio: false)
        let secret = try Data(contentsOf: URL(fileURLWithPath: outside + "/secret.mp4"))
        try FileManager.default.createSymbolicLink(atPath: fixture.path("link"), withDestinationPath: outside)
        try FileManager.default.createSymbolicLink(atPath: fixture.path("escape.mp4"), withDestinationPath: outside + "/secret.mp4")
        try await fixture.clip("in.mp4", seconds: 0.2, audio: false)
        let pool = sandboxed ? fixture.helpers : fixture.inProcess
        let root = fixture.root.path
        let policy = InputPolicy()
        let message = await expectPermanent("PathOutsideMediaRoot") {
            try await pool.run(VideoOperations.probeOperation, ProbeHelperRequest(mediaRoot: root, source: key, policy: policy), deadline: .now + .seconds(30))
        }
        #expect(message.contains(key))
        func transcode(source: String = "in.mp4", output: String = "out.mp4", poster: String? = nil, progress: String? = nil) -> TranscodeHelperRequest {
            TranscodeHelperRequest(mediaRoot: root, source: source, output: output, poster: poster, progress: progress, profile: .web720p, policy: policy)
        }
        for request in [transcode(source: key), transcode(output: key), transcode(poster: key), transcode(progress: key)] {
            _ = await expectPermanent("PathOutsideMediaRoot") {
                try await pool.run(VideoOperations.transcodeOperation, request, deadline: .now + .seconds(60))
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside) == ["secret.mp4"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: outside + "/secret.mp4")) == secret)
        #expect(!FileManager.default.fileExists(atPath: fixture.path("out.mp4")))
    }

    /// Keys inside the root work the same through the helper: the outputs and the progress file land where named.
    @Test func theHelperWritesWhereTheKeysSay() async throws {
        let fixture = try MediaFixture()
        try await fixture.clip("in.mp4", seconds: 0.5, audio: false)
        let request = TranscodeHelperRequest(
            mediaRoot: fixture.root.path, source: "in.mp4", output: "out/clip.mp4", poster: "out/clip.jpg", progress: "out/clip.progress",
            profile: .web720p, policy: InputPolicy())
        let result = try await fixture.helpers.run(VideoOperations.transcodeOperation, request, deadline: .now + .seconds(60))
        #expect(result["frames"]?.intValue ?? 0 > 0)
        for key in ["out/clip.mp4", "out/clip.jpg", "out/clip.progress"] {
            #expect(FileManager.default.fileExists(atPath: fixture.path(key)), "\(key)")
        }
        #expect(VideoOperations.readProgress(fixture.path("out/clip.progress"))?.frames ?? 0 > 0)
    }
}

/// Runs FFmpeg work on an app-owned thread, keeping its typed failure.
func offCooperativePool<T: Sendable>(_ body: @escaping @Sendable () throws(AVFailure) -> T) async throws -> Result<T, AVFailure> {
    try await BlockingPool.shared.run { () -> Result<T, AVFailure> in
        do throws(AVFailure) { return .success(try body()) } catch { return .failure(error) }
    }
}
