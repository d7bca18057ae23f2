import AV
import ConveyorCore
import Foundation
import Testing

@testable import Media

@Suite struct ProbeAndTranscodeTests {
    @Test func probeReportsContainerAndStreamsLikeFFprobe() async throws {
        let fixture = try MediaFixture()
        try await fixture.clip("uploads/a.mp4", size: "320x240", rate: 25, seconds: 2)
        let handler = fixture.probeHandler()
        let result = try await handler.perform(fixture.job("video.probe", ["source": "uploads/a.mp4"]))
        let reference = try await ffprobe(fixture.path("uploads/a.mp4"))

        #expect(result["source"]?.stringValue == "uploads/a.mp4")
        #expect(result["format"]?["format_name"] == reference["format"]?["format_name"])
        let duration = try #require(result["format"]?["duration"]?.stringValue.flatMap(Double.init))
        #expect(abs(duration - 2.0) < 0.1)
        #expect(result["format"]?["bit_rate"] != nil)
        let streams = try #require(result["streams"]?.arrayValue)
        #expect(streams.count == 2)
        let video = try #require(streams.first { $0["codec_type"] == "video" })
        let referenceVideo = try #require(reference["streams"]?.arrayValue?.first { $0["codec_type"] == "video" })
        for field in ["codec_name", "profile", "width", "height", "pix_fmt", "r_frame_rate", "avg_frame_rate", "time_base"] {
            #expect(video[field] == referenceVideo[field], "\(field)")
        }
        let audio = try #require(streams.first { $0["codec_type"] == "audio" })
        #expect(audio["codec_name"] == "aac")
        #expect(audio["sample_rate"] == "44100")
        #expect(audio["channels"] == 1)
        #expect(audio["channel_layout"] == "mono")
    }

    @Test func probeReportsRotationFromTheDisplayMatrix() async throws {
        let fixture = try MediaFixture()
        try await fixture.clip("r.mp4", audio: false)
        try await fixture.rotate("r.mp4", degrees: 90)
        let result = try await fixture.probeHandler()
            .perform(fixture.job("video.probe", ["source": "r.mp4"]))
        let video = try #require(result["streams"]?[0])
        // ffprobe prints 90 for this file too (counter-clockwise degrees of the display matrix).
        #expect(video["side_data_list"]?[0]?["rotation"] == 90)
    }

    @Test func transcodeWritesAWebMP4AndAPoster() async throws {
        let fixture = try MediaFixture()
        // 2560x1440 at 10 fps (light on CI) for 4.4 s, with a location tag that must not survive.
        try await fixture.clip(
            "uploads/big.mov", size: "2560x1440", rate: 10, seconds: 4.4,
            extra: ["-metadata", "location=+48.8584+002.2945/", "-metadata", "title=secret title"])
        let hooked = ProgressSink()
        // Through a real helper process: progress still reaches the hook.
        let handler = fixture.transcodeHandler(sandboxed: true, onProgress: { jid, p in hooked.add(jid, p) })
        let job = fixture.job("video.transcode", ["source": "uploads/big.mov"])
        let result = try await handler.perform(job)

        #expect(result["output"] == "uploads/big.1080p.mp4")
        #expect(result["poster"] == "uploads/big.poster.jpg")
        #expect(result["width"] == 1920)
        #expect(result["height"] == 1080)
        #expect(result["has_audio"] == true)
        let out = fixture.path("uploads/big.1080p.mp4")
        let probe = try await ffprobe(out)
        let video = try #require(probe["streams"]?.arrayValue?.first { $0["codec_type"] == "video" })
        #expect(video["codec_name"] == "h264")
        #expect(video["profile"] == "High")
        #expect(video["pix_fmt"] == "yuv420p")
        #expect(video["width"] == 1920)
        #expect(video["height"] == 1080)
        let audio = try #require(probe["streams"]?.arrayValue?.first { $0["codec_type"] == "audio" })
        #expect(audio["codec_name"] == "aac")
        #expect(audio["channels"] == 2)
        let duration = try #require(probe["format"]?["duration"]?.stringValue.flatMap(Double.init))
        #expect(abs(duration - 4.4) < 0.2)

        // +faststart: the moov box comes before mdat.
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: out)))
        let moov = try #require(find(Array("moov".utf8), in: bytes))
        let mdat = try #require(find(Array("mdat".utf8), in: bytes))
        #expect(moov < mdat)
        // No container metadata: neither the QuickTime location atom nor the title.
        #expect(find([0xA9] + Array("xyz".utf8), in: bytes) == nil)
        #expect(find(Array("secret title".utf8), in: bytes) == nil)
        #expect(find(Array("+48.8584".utf8), in: bytes) == nil)
        #expect(probe["format"]?["tags"]?["location"] == nil)

        // A keyframe every 2 s: at 0, 2 and 4 s (testsrc has no scene cuts).
        let keyframes = try run(
            "/usr/bin/ffprobe",
            ["-v", "error", "-select_streams", "v", "-skip_frame", "nokey", "-show_entries", "frame=pts_time", "-of", "csv=p=0", out])
        let times = keyframes.split(separator: "\n").compactMap { $0.split(separator: ",").first.flatMap { Double($0) } }
        #expect(times.map { Int(($0 * 10).rounded()) } == [0, 20, 40], "\(keyframes)")

        // The poster is a JPEG of the video's size from the middle of the clip.
        let poster = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture.path("uploads/big.poster.jpg"))))
        #expect(poster.starts(with: [0xFF, 0xD8, 0xFF]))
        let posterProbe = try await ffprobe(fixture.path("uploads/big.poster.jpg"))
        #expect(posterProbe["streams"]?[0]?["width"] == 1920)
        let posterTime = try #require(result["poster_time"]?.doubleValue)
        #expect(abs(posterTime - 2.2) < 0.1)

        // No temporary files left behind.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: fixture.path("uploads")).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty)
        #expect(fixture.helpers.helpersStarted == 1)
        #expect(!hooked.events.isEmpty)
        #expect(hooked.events.allSatisfy { $0.0 == job.jid })
        #expect(hooked.events.last.map { $0.1.frames > 0 && $0.1.duration != nil } == true)
    }

    @Test func transcodeAppliesRotationKeepsSizeBelowTheProfileAndEvensDimensions() async throws {
        let fixture = try MediaFixture()
        // 4:4:4 so the source can have odd dimensions; the output is 4:2:0.
        try await fixture.clip("rot.mp4", size: "321x241", extra: ["-pix_fmt", "yuv444p"])
        try await fixture.rotate("rot.mp4", degrees: 90)
        let handler = fixture.transcodeHandler()
        let result = try await handler.perform(
            fixture.job("video.transcode", ["source": "rot.mp4", "profile": "720p", "poster": false]))
        // A display rotation of 90 (counter-clockwise) is undone by turning the pixels 270 clockwise,
        // as ffmpeg's autorotate does: the first frame matches the CLI's autorotated output.
        #expect(result["rotation_applied"] == 270)
        #expect(result["poster"] == nil)
        #expect(!FileManager.default.fileExists(atPath: fixture.path("rot.poster.jpg")))
        let probe = try await ffprobe(fixture.path("rot.720p.mp4"))
        let video = try #require(probe["streams"]?.arrayValue?.first { $0["codec_type"] == "video" })
        // 321x241 shown rotated is 241x321: not upscaled, rounded down to even.
        #expect(video["width"] == 240)
        #expect(video["height"] == 320)
        #expect(video["side_data_list"] == nil)
        try await runAsync("/usr/bin/ffmpeg", ["-nostdin", "-v", "error", "-y", "-i", fixture.path("rot.mp4"), "-vf", "scale=240:320", "-frames:v", "1", fixture.path("cli.png")])
        try await runAsync("/usr/bin/ffmpeg", ["-nostdin", "-v", "error", "-y", "-i", fixture.path("rot.720p.mp4"), "-frames:v", "1", fixture.path("ours.png")])
        let psnr = try await runAsync("/usr/bin/ffmpeg", ["-nostdin", "-i", fixture.path("cli.png"), "-i", fixture.path("ours.png"), "-lavfi", "psnr", "-f", "null", "-"])
        let average = try #require(psnr.range(of: "average:").map { psnr[$0.upperBound...].prefix { $0 != " " } }.flatMap { Double($0) })
        #expect(average > 25, "PSNR against ffmpeg's autorotated frame: \(average) dB")
    }

    @Test func transcodeOf720pProfileBoundsPortraitVideoByItsShortSide() async throws {
        let fixture = try MediaFixture()
        try await fixture.clip("tall.mp4", size: "1080x1920", seconds: 0.4, audio: false)
        let result = try await fixture.transcodeHandler()
            .perform(fixture.job("video.transcode", ["source": "tall.mp4", "profile": "720p", "output": "out/tall.mp4"]))
        #expect(result["width"] == 720)
        #expect(result["height"] == 1280)
        #expect(result["has_audio"] == false)
        let probe = try await ffprobe(fixture.path("out/tall.mp4"))
        #expect(probe["streams"]?.arrayValue?.count == 1)
    }

    @Test func frameRateIsCappedAt60() async throws {
        let fixture = try MediaFixture()
        try await fixture.clip("fast.mkv", size: "160x120", rate: 120, seconds: 2, audio: false)
        let result = try await fixture.transcodeHandler().perform(
            fixture.job("video.transcode", ["source": "fast.mkv", "poster": false]))
        let frames = try #require(result["frames"]?.intValue)
        #expect((115...121).contains(frames), "\(frames) frames from 2 s of 120 fps")
        let probe = try await ffprobe(fixture.path("fast.1080p.mp4"))
        let rate = try #require(probe["streams"]?[0]?["avg_frame_rate"]?.stringValue)
        let parts = rate.split(separator: "/").compactMap { Double($0) }
        #expect(parts.count == 2 && parts[0] / parts[1] <= 62, "\(rate)")
    }

    @Test func outputSizeNeverUpscalesAndStaysEven() {
        #expect(TranscodeProfile.web1080p.outputSize(width: 3840, height: 2160) == (1920, 1080))
        #expect(TranscodeProfile.web1080p.outputSize(width: 641, height: 359) == (640, 358))
        #expect(TranscodeProfile.web720p.outputSize(width: 1080, height: 1920) == (720, 1280))
        #expect(TranscodeProfile.web720p.outputSize(width: 1, height: 1) == (2, 2))
    }
}

final class ProgressSink: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var events: [(String, TranscodeProgress)] = []
    func add(_ jid: String, _ p: TranscodeProgress) { lock.withLock { events.append((jid, p)) } }
}

func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
    guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
    for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
        if Array(haystack[i..<(i + needle.count)]) == needle { return i }
    }
    return nil
}
