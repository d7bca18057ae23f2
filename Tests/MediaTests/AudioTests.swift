import AV
import ConveyorCore
import Foundation
import Images
import Postgres
import Sandbox
import Storage
import Synchronization
import Testing

@testable import Media

/// Audio fixtures made by the ffmpeg CLI: tones, noise, silence, stereo with different channels, 5.1, 44.1 and 48 kHz.
enum AudioClips {
    static let all: [(key: String, arguments: [String])] = [
        ("sine-44k-mono.mp3", ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=3.3", "-c:a", "libmp3lame", "-b:a", "128k"]),
        ("noise-48k-stereo.m4a", [
            "-filter_complex", "sine=frequency=220:sample_rate=48000:duration=2.7[l];anoisesrc=d=2.7:r=48000:a=0.6:c=pink[r];[l][r]amerge=inputs=2",
            "-c:a", "aac", "-b:a", "160k",
        ]),
        ("silence-44k-mono.flac", ["-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono", "-t", "2.1", "-c:a", "flac"]),
        ("split-44k-stereo.wav", [
            "-filter_complex", "sine=frequency=300:sample_rate=44100:duration=2.2[l];anoisesrc=d=2.2:r=44100:a=0.9:c=white[r];[l][r]amerge=inputs=2",
            "-c:a", "pcm_s16le",
        ]),
        // Six channels, 24-bit FLAC: the mono average divides by 6, and the decoder's s32 is converted to 16-bit.
        ("surround-48k-5.1.flac", [
            "-f", "lavfi", "-i",
            "aevalsrc=sin(440*2*PI*t)|0.5*sin(220*2*PI*t)|0.3*sin(1000*2*PI*t)|0.2*sin(60*2*PI*t)|0.7*sin(3000*2*PI*t)|-0.9*sin(550*2*PI*t):s=48000:d=1.9:c=5.1",
            "-c:a", "flac",
        ]),
        ("voice-48k-stereo.opus", [
            "-filter_complex", "sine=frequency=880:sample_rate=48000:duration=2.5[l];sine=frequency=110:sample_rate=48000:duration=2.5,volume=0.3[r];[l][r]join=inputs=2:channel_layout=stereo",
            "-c:a", "libopus", "-b:a", "96k",
        ]),
    ]

    static func make(_ fixture: MediaFixture, _ key: String) async throws {
        let arguments = try #require(all.first { $0.key == key }).arguments
        try await fixture.ffmpeg(arguments, output: key)
    }
}

func waveformHandler(_ fixture: MediaFixture, sandboxed: Bool = false, configuration: VideoConfiguration = VideoConfiguration()) -> AudioWaveformHandler {
    AudioWaveformHandler(store: localStore(fixture), configuration: configuration, pool: sandboxed ? fixture.helpers : fixture.inProcess)
}

func audioTranscodeHandler(_ fixture: MediaFixture, configuration: VideoConfiguration = VideoConfiguration()) -> AudioTranscodeHandler {
    AudioTranscodeHandler(store: localStore(fixture), configuration: configuration, pool: fixture.inProcess)
}

func localStore(_ fixture: MediaFixture) -> any MediaStore { LocalMediaStore(root: fixture.root) }

@Suite struct AudioWaveformTests {
    static let oracle = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("waveform_oracle.py").path

    /// Variants per file: mono and split, 8 and 16 bits, rates from pixels per second and samples per pixel.
    static let variants: [(name: String, arguments: JSONObject)] = [
        ("mono-16-pps=100", [:]),
        ("mono-8-spp=256", ["bits": 8, "samples_per_pixel": 256]),
        ("split-16-spp=1000", ["channels": "split", "samples_per_pixel": 1000]),
        ("split-8-pps=30", ["channels": "split", "bits": 8, "pixels_per_second": 30]),
        ("mono-16-spp=333", ["samples_per_pixel": 333]),
    ]

    @Test(arguments: AudioClips.all.map(\.key))
    func datAndJSONMatchTheNumpyOracleExactly(key: String) async throws {
        let fixture = try MediaFixture()
        try await AudioClips.make(fixture, key)
        let expected = fixture.directory + "/expected"
        try FileManager.default.createDirectory(atPath: expected, withIntermediateDirectories: true)
        let facts = try JSONValue(parsing: Array(try await runAsync(
            "/usr/bin/env", ["python3", Self.oracle, fixture.path(key), expected] + Self.variants.map(\.name)).utf8))
        let frames = try #require(facts["frames"]?.intValue)
        #expect(frames > 40_000)
        var partialBlocks = 0
        for variant in Self.variants {
            var arguments = variant.arguments
            arguments["source"] = JSONValue(key)
            arguments["output"] = JSONValue("out/\(key).\(variant.name)")
            let result = try await waveformHandler(fixture).perform(fixture.job("audio.waveform", .object(arguments)))
            let dat = try Data(contentsOf: URL(fileURLWithPath: fixture.path("out/\(key).\(variant.name).dat")))
            let json = try Data(contentsOf: URL(fileURLWithPath: fixture.path("out/\(key).\(variant.name).json")))
            let wantDat = try Data(contentsOf: URL(fileURLWithPath: "\(expected)/\(variant.name).dat"))
            let wantJSON = try Data(contentsOf: URL(fileURLWithPath: "\(expected)/\(variant.name).json"))
            #expect(dat.count == wantDat.count, "\(key) \(variant.name): .dat is \(dat.count) bytes, oracle \(wantDat.count)")
            #expect(dat == wantDat, "\(key) \(variant.name): .dat differs from the oracle at byte \(Self.firstDifference(dat, wantDat))")
            #expect(json == wantJSON, "\(key) \(variant.name): JSON differs from the oracle at byte \(Self.firstDifference(json, wantJSON))")
            let spp = try #require(result["samples_per_pixel"]?.intValue)
            if frames % spp != 0 { partialBlocks += 1 }
            #expect(result["length"]?.intValue == (frames + spp - 1) / spp)
            #expect(result["sample_rate"] == facts["sample_rate"])
            #expect(result["dat"] == JSONValue("out/\(key).\(variant.name).dat"))
            #expect(result["json"] == JSONValue("out/\(key).\(variant.name).json"))
            let duration = try #require(result["duration"]?.doubleValue)
            #expect(abs(duration - Double(frames) / Double(facts["sample_rate"]?.intValue ?? 1)) < 0.001)
        }
        #expect(partialBlocks > 0, "at least one variant ends in a partial block")
        // Not a vacuous match: silence is all zeros, everything else moves.
        let mono = try JSONValue(parsing: [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture.path("out/\(key).mono-16-pps=100.json")))))
        let peak = (mono["data"]?.arrayValue ?? []).compactMap(\.intValue).map(abs).max() ?? -1
        if key.hasPrefix("silence") { #expect(peak == 0) } else { #expect(peak > 1000, "\(key): peak \(peak)") }
    }

    static func firstDifference(_ a: Data, _ b: Data) -> Int {
        zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
    }

    @Test func stereoChannelsStayApartWhenSplit() async throws {
        let fixture = try MediaFixture()
        try await AudioClips.make(fixture, "voice-48k-stereo.opus")
        let result = try await waveformHandler(fixture).perform(
            fixture.job("audio.waveform", ["source": "voice-48k-stereo.opus", "channels": "split", "output": "w"]))
        #expect(result["channels"] == 2)
        let json = try JSONValue(parsing: [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture.path("w.json")))))
        let data = (json["data"]?.arrayValue ?? []).compactMap(\.intValue)
        // Left is a full-scale-ish tone, right the same at 0.3: the maxima of each channel tell them apart.
        let left = stride(from: 1, to: data.count, by: 4).map { data[$0] }.max() ?? 0
        let right = stride(from: 3, to: data.count, by: 4).map { data[$0] }.max() ?? 0
        #expect(left > 2 * right && right > 1000, "left \(left) right \(right)")
        let dat = try Data(contentsOf: URL(fileURLWithPath: fixture.path("w.dat")))
        #expect(dat.prefix(4) == Data([2, 0, 0, 0]), "version 2 for two channels")
        #expect(dat[20..<24] == Data([2, 0, 0, 0]), "channel count after the length")
    }

    @Test func theSandboxedHelperWritesTheSameWaveformAndAnImage() async throws {
        let fixture = try MediaFixture()
        try await AudioClips.make(fixture, "sine-44k-mono.mp3")
        let arguments: JSONValue = [
            "source": "sine-44k-mono.mp3", "bits": 8, "output": "a/in-process",
            "image": ["width": 300, "height": 80, "color": "#ff0000", "background": "#00000000", "format": "png"],
        ]
        let local = try await waveformHandler(fixture).perform(fixture.job("audio.waveform", arguments))
        var sandboxedArguments = arguments.objectValue!
        sandboxedArguments["output"] = "a/sandboxed"
        let sandboxed = try await waveformHandler(fixture, sandboxed: true).perform(fixture.job("audio.waveform", .object(sandboxedArguments)))
        #expect(sandboxed["image"] == "a/sandboxed.png")
        #expect(local["length"] == sandboxed["length"])
        for ext in ["dat", "json", "png"] {
            let a = try Data(contentsOf: URL(fileURLWithPath: fixture.path("a/in-process.\(ext)")))
            let b = try Data(contentsOf: URL(fileURLWithPath: fixture.path("a/sandboxed.\(ext)")))
            #expect(a == b, "\(ext) differs between the helper process and the in-process run")
        }
        // The picture as libvips' own CLI reads it: the asked size, four bands.
        let header = try await runAsync("/usr/bin/vipsheader", [fixture.path("a/sandboxed.png")])
        #expect(header.contains("300x80"), "\(header)")
        #expect(header.contains("4 bands"), "\(header)")
    }

    @Test func theImageDrawsEachSplitChannelInItsOwnBand() {
        // Two pixels, two channels: channel 0 full scale, channel 1 silent.
        let waveform = Waveform(
            sampleRate: 44100, samplesPerPixel: 441, channels: 2, bits: 16, data: [-32768, 32767, 0, 0, -32768, 32767, 0, 0])
        var style = WaveformImageStyle()
        style.width = 4
        style.height = 20
        style.color = [255, 0, 0, 255]
        style.background = [0, 0, 0, 0]
        let pixels = WaveformImage.render(waveform, style: style)
        func painted(_ x: Int, _ y: Int) -> Bool { pixels[(y * 4 + x) * 4] == 255 }
        // The top band (rows 0-9) is painted from top to bottom; the bottom band only on its middle row.
        #expect((0..<10).allSatisfy { painted(1, $0) })
        #expect((10..<20).filter { painted(1, $0) } == [14])
        #expect(pixels.count == 4 * 20 * 4)
    }

    @Test func badArgumentsAreInvalid() async throws {
        let fixture = try MediaFixture()
        try await AudioClips.make(fixture, "sine-44k-mono.mp3")
        let cases: [JSONValue] = [
            ["source": "sine-44k-mono.mp3", "bits": 12],
            ["source": "sine-44k-mono.mp3", "channels": "surround"],
            ["source": "sine-44k-mono.mp3", "pixels_per_second": 10, "samples_per_pixel": 512],
            ["source": "sine-44k-mono.mp3", "samples_per_pixel": 1],
            ["source": "sine-44k-mono.mp3", "image": ["color": "red"]],
            ["source": "sine-44k-mono.mp3", "image": ["width": 0]],
            ["source": "sine-44k-mono.mp3", "zoom": 2],
            ["source": "sine-44k-mono.mp3", "output": "sine-44k-mono.mp3.dat"],
        ]
        for arguments in cases.dropLast() {
            _ = await expectPermanent("InvalidArguments") {
                try await waveformHandler(fixture).perform(fixture.job("audio.waveform", arguments))
            }
        }
        // 44100 / 30000 is 1 sample per pixel: audiowaveform's minimum is 2.
        let message = await expectPermanent("UnsupportedMedia") {
            try await waveformHandler(fixture).perform(fixture.job("audio.waveform", ["source": "sine-44k-mono.mp3", "pixels_per_second": 30000]))
        }
        #expect(message.contains("at least 2"), "\(message)")
    }
}

@Suite struct AudioHostileInputTests {
    func failure(_ fixture: MediaFixture, _ key: String, configuration: VideoConfiguration = VideoConfiguration()) async -> JobFailure? {
        do {
            _ = try await waveformHandler(fixture, configuration: configuration).perform(fixture.job("audio.waveform", ["source": .string(key)]))
            return nil
        } catch let failure as JobFailure {
            return failure
        } catch {
            Issue.record("unexpected \(error)")
            return nil
        }
    }

    /// Also checks that `audio.transcode` fails with the same class.
    func expectBoth(_ fixture: MediaFixture, _ key: String, _ errorClass: String, containing text: String) async {
        let waveform = await failure(fixture, key)
        #expect(waveform?.errorClass == errorClass, "\(String(describing: waveform))")
        #expect(waveform?.isPermanent == true)
        #expect(waveform?.message.contains(text) == true, "\(String(describing: waveform?.message))")
        do {
            _ = try await audioTranscodeHandler(fixture).perform(fixture.job("audio.transcode", ["source": .string(key)]))
            Issue.record("audio.transcode accepted \(key)")
        } catch let failure as JobFailure {
            #expect(failure.errorClass == errorClass, "\(failure)")
        } catch {
            Issue.record("unexpected \(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: fixture.path(TranscodeHandler.stem(of: key) + ".waveform.dat")))
    }

    /// The Info header of a LAME MP3 counts frames: patched to 10 hours' worth while the file stays ~1 MB.
    @Test func aHeaderClaimingTenHoursInOneMegabyteIsAMismatch() async throws {
        let fixture = try MediaFixture()
        try await fixture.ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=64", "-c:a", "libmp3lame", "-b:a", "128k"], output: "long.mp3")
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture.path("long.mp3"))))
        #expect(bytes.count > 1_000_000 && bytes.count < 1_100_000)
        let info = try #require(Self.find(Array("Info".utf8), in: bytes))
        let frames = UInt32(10 * 3600 * 44100 / 1152)
        bytes.replaceSubrange((info + 8)..<(info + 12), with: withUnsafeBytes(of: frames.bigEndian, Array.init))
        try Data(bytes).write(to: URL(fileURLWithPath: fixture.path("long.mp3")))
        let probe = try await ffprobe(fixture.path("long.mp3"))
        #expect((probe["format"]?["duration"]?.stringValue.flatMap(Double.init) ?? 0) > 35_000, "ffprobe believes the header")
        await expectBoth(fixture, "long.mp3", "MediaDurationMismatch", containing: "36000 s")
    }

    @Test func aZeroByteFileIsEmpty() async throws {
        let fixture = try MediaFixture()
        try fixture.write("", to: "empty.mp3")
        await expectBoth(fixture, "empty.mp3", "EmptyMedia", containing: "0 bytes")
    }

    @Test func aTruncatedMP3IsTruncated() async throws {
        let fixture = try MediaFixture()
        try await fixture.ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=20", "-c:a", "libmp3lame", "-b:a", "128k"], output: "cut.mp3")
        let whole = try Data(contentsOf: URL(fileURLWithPath: fixture.path("cut.mp3")))
        try whole.prefix(whole.count / 2 + 77).write(to: URL(fileURLWithPath: fixture.path("cut.mp3")))
        await expectBoth(fixture, "cut.mp3", "MediaTruncated", containing: "truncated")
    }

    @Test func aWAVWithABogusDataSizeIsAnInvalidHeader() async throws {
        let fixture = try MediaFixture()
        try await fixture.ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=2", "-c:a", "pcm_s16le"], output: "bogus.wav")
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture.path("bogus.wav"))))
        let data = try #require(Self.find(Array("data".utf8), in: bytes))
        bytes.replaceSubrange((data + 4)..<(data + 8), with: [0xF0, 0xFF, 0xFF, 0x7F])
        try Data(bytes).write(to: URL(fileURLWithPath: fixture.path("bogus.wav")))
        await expectBoth(fixture, "bogus.wav", "MediaHeaderInvalid", containing: "2147483632 bytes")
    }

    @Test func anMP3ThatIsAnHLSPlaylistIsRefused() async throws {
        let fixture = try MediaFixture()
        try fixture.write("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\nhttp://169.254.169.254/latest/meta-data/\n#EXT-X-ENDLIST\n", to: "song.mp3")
        await expectBoth(fixture, "song.mp3", "MediaPlaylistRefused", containing: "playlist")
        // Without the sniff, FFmpeg's own allow-list still keeps the hls demuxer away.
        let text = "\n\n#EXTINF:10.0,\nfile:///etc/passwd\n"
        try fixture.write(text, to: "list.mp3")
        let other = await failure(fixture, "list.mp3")
        #expect(other?.errorClass == "MediaPlaylistRefused" || other?.errorClass == "UnsupportedMedia", "\(String(describing: other))")
    }

    @Test func longerThanTheLimitIsTooLong() async throws {
        let fixture = try MediaFixture()
        try await AudioClips.make(fixture, "sine-44k-mono.mp3")
        let configuration = try VideoConfiguration(environment: ["CONVEYOR_AUDIO_MAX_DURATION": "2"])
        let failure = await failure(fixture, "sine-44k-mono.mp3", configuration: configuration)
        #expect(failure?.errorClass == "MediaTooLong", "\(String(describing: failure))")
        #expect(failure?.message.contains("CONVEYOR_AUDIO_MAX_DURATION") == true)
        #expect(throws: VideoConfigurationError.self) { try VideoConfiguration(environment: ["CONVEYOR_AUDIO_MAX_DURATION": "0"]) }
    }

    @Test func theDeadlineStopsTheDecodeAndIsRetryable() async throws {
        let fixture = try MediaFixture()
        try await fixture.ffmpeg(["-f", "lavfi", "-i", "anoisesrc=d=600:r=48000", "-ac", "2", "-c:a", "flac", "-compression_level", "0"], output: "long.flac")
        for (jobClass, handler) in [("audio.waveform", waveformHandler(fixture) as any JobHandler), ("audio.transcode", audioTranscodeHandler(fixture))] {
            do {
                let result = try await handler.perform(fixture.job(jobClass, ["source": "long.flac"], timeout: .milliseconds(200)))
                Issue.record("\(jobClass) of 10 minutes finished within 200 ms: \(result.text)")
            } catch let failure as JobFailure {
                #expect(failure.errorClass == "MediaDeadline", "\(failure)")
                #expect(!failure.isPermanent)
            }
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: fixture.root.path).filter { $0.hasPrefix(".") || $0.hasPrefix("long.w") }
        #expect(leftovers.isEmpty, "\(leftovers)")
    }

    @Test func aVideoContainerOutsideTheAudioDemuxersIsRefused() async throws {
        let fixture = try MediaFixture()
        try await fixture.ffmpeg(["-f", "lavfi", "-i", "sine=duration=1", "-c:a", "mp2", "-f", "mpegts"], output: "a.mp3")
        let failure = await failure(fixture, "a.mp3")
        #expect(failure?.errorClass == "UnsupportedMedia", "\(String(describing: failure))")
    }

    static func find(_ needle: [UInt8], in bytes: [UInt8]) -> Int? {
        guard bytes.count >= needle.count else { return nil }
        return (0...(bytes.count - needle.count)).first { Array(bytes[$0..<($0 + needle.count)]) == needle }
    }
}

@Suite struct AudioTranscodeTests {
    @Test(arguments: ["m4a", "mp3", "opus"])
    func aWebRenditionWithoutTagsAndWithTheLoudnessKept(format: String) async throws {
        let fixture = try MediaFixture()
        try await fixture.ffmpeg([
            "-filter_complex", "sine=frequency=440:sample_rate=44100:duration=3[l];sine=frequency=660:sample_rate=44100:duration=3,volume=0.5[r];[l][r]join=inputs=2:channel_layout=stereo",
            "-metadata", "title=Secret Title", "-metadata", "artist=Someone Private", "-c:a", "flac",
        ], output: "in/take.flac")
        let result = try await audioTranscodeHandler(fixture).perform(
            fixture.job("audio.transcode", ["source": "in/take.flac", "format": .string(format)]))
        let key = "in/take.web.\(format)"
        #expect(result["output"] == JSONValue(key))
        #expect(result["format"] == JSONValue(format))
        let bytes = try Data(contentsOf: URL(fileURLWithPath: fixture.path(key)))
        #expect(result["output_bytes"]?.intValue == bytes.count)
        let probe = try await ffprobe(fixture.path(key))
        let stream = try #require(probe["streams"]?[0])
        #expect(stream["codec_name"] == JSONValue(["m4a": "aac", "mp3": "mp3", "opus": "opus"][format]!))
        #expect(stream["channels"] == 2)
        if format == "m4a" { #expect(stream["profile"] == "LC") }
        let duration = try #require(probe["format"]?["duration"]?.stringValue.flatMap(Double.init))
        #expect(abs(duration - 3) < 0.1, "duration \(duration)")
        // No container metadata: neither in ffprobe's tags nor anywhere in the bytes.
        let tags = probe["format"]?["tags"]?.objectValue ?? [:]
        #expect(tags["title"] == nil && tags["artist"] == nil, "\(tags)")
        #expect(Self.find("Secret", in: bytes) == nil && Self.find("Someone", in: bytes) == nil)
        if format == "m4a" {
            let moov = try #require(Self.find("moov", in: bytes)), mdat = try #require(Self.find("mdat", in: bytes))
            #expect(moov < mdat, "+faststart puts the index first")
        }
        // Loudness kept: the mean volume of input and output agree (no normalisation, no gain).
        let before = try await Self.meanVolume(fixture.path("in/take.flac"))
        let after = try await Self.meanVolume(fixture.path(key))
        #expect(abs(before - after) < 1.0, "mean volume \(before) dB -> \(after) dB")
    }

    @Test func renditionIsRefusedOverTheSourceAndForUnknownFormats() async throws {
        let fixture = try MediaFixture()
        try await AudioClips.make(fixture, "sine-44k-mono.mp3")
        _ = await expectPermanent("InvalidArguments") {
            try await audioTranscodeHandler(fixture).perform(fixture.job("audio.transcode", ["source": "sine-44k-mono.mp3", "format": "wma"]))
        }
        _ = await expectPermanent("InvalidArguments") {
            try await audioTranscodeHandler(fixture).perform(
                fixture.job("audio.transcode", ["source": "sine-44k-mono.mp3", "output": "sine-44k-mono.mp3", "format": "mp3"]))
        }
        let result = try await audioTranscodeHandler(fixture).perform(fixture.job("audio.transcode", ["source": "sine-44k-mono.mp3"]))
        #expect(result["channels"] == 1)
        #expect(result["sample_rate"] == 44100)
        // Six channels are downmixed to stereo; Opus is always 48 kHz.
        try await AudioClips.make(fixture, "surround-48k-5.1.flac")
        let surround = try await audioTranscodeHandler(fixture).perform(
            fixture.job("audio.transcode", ["source": "surround-48k-5.1.flac", "format": "opus"]))
        let probe = try await ffprobe(fixture.path("surround-48k-5.1.web.opus"))
        #expect(surround["channels"] == 2 && probe["streams"]?[0]?["channels"] == 2)
        #expect(probe["streams"]?[0]?["sample_rate"] == "48000")
    }

    static func meanVolume(_ path: String) async throws -> Double {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ffmpeg")
        process.arguments = ["-nostdin", "-hide_banner", "-i", path, "-af", "volumedetect", "-f", "null", "-"]
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let data = try await BlockingPool.shared.run { pipe.fileHandleForReading.readDataToEndOfFile() }
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard let line = text.split(separator: "\n").first(where: { $0.contains("mean_volume:") }),
            let value = line.split(separator: " ").dropLast().last.flatMap({ Double($0) })
        else { throw FixtureError(message: "no mean_volume in \(text)") }
        return value
    }

    static func find(_ text: String, in data: Data) -> Int? {
        AudioHostileInputTests.find(Array(text.utf8), in: [UInt8](data))
    }
}

@Suite struct AudioIngestTests {
    /// An MP3 with an ID3 cover picture, as music services deliver them.
    static func songWithCover(_ fixture: MediaFixture, key: String) async throws {
        try await fixture.ffmpeg(["-f", "lavfi", "-i", "testsrc=s=320x320:d=1", "-frames:v", "1"], output: "cover-src.png")
        try await fixture.ffmpeg([
            "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=44100:duration=2.5", "-i", fixture.path("cover-src.png"),
            "-map", "0:a", "-map", "1:v", "-c:a", "libmp3lame", "-b:a", "128k", "-c:v", "mjpeg", "-disposition:v", "attached_pic",
            "-id3v2_version", "3", "-metadata", "title=Private Song", "-f", "mp3",
        ], output: key)
    }

    @Test func anAudioUploadGetsWaveformRenditionPosterAndOneRow() async throws {
        let fixture = try MediaFixture()
        try await Self.songWithCover(fixture, key: "uploads/song.bin")
        let imageConfiguration = try ImagesConfiguration(environment: ["CONVEYOR_MEDIA_ROOT": fixture.root.path, "CONVEYOR_IMAGE_IN_PROCESS": "1"])
        let imagePool = HelperPool(imageConfiguration.pool, operations: ImagesJobs.helperOperations)
        defer { imagePool.shutdown() }
        let recorder = RowRecorder()
        let handler = IngestHandler(
            root: fixture.root, probe: fixture.probeHandler(), transcode: fixture.transcodeHandler(),
            images: IngestHandler.imagePipeline(configuration: imageConfiguration, pool: imagePool), recorder: recorder)
        let row = try await handler.perform(fixture.job("media.ingest", ["upload_id": "a1", "source": "uploads/song.bin"]))
        #expect(row["status"] == "ready", "\(row.text)")
        #expect(row["kind"] == "audio")
        #expect(row["detected_type"] == "mp3")
        #expect(abs((row["duration"]?.doubleValue ?? 0) - 2.5) < 0.05)
        #expect(row["variants"]?[0]?["key"] == "uploads/song.web.m4a")
        #expect(row["waveform"]?["dat"] == "uploads/song.waveform.dat")
        #expect(row["waveform"]?["bits"] == 8)
        #expect(row["cover"] == "uploads/song.cover.jpg")
        let poster = try #require(row["poster"]?.stringValue, "\(row.text)")
        #expect(FileManager.default.fileExists(atPath: fixture.path(poster)))
        #expect((row["poster_variants"]?.arrayValue?.count ?? 0) > 0)
        #expect(row["probe"]?["format"]?["format_name"] == "mp3")
        let m4a = try await ffprobe(fixture.path("uploads/song.web.m4a"))
        #expect(m4a["streams"]?.arrayValue?.count == 1, "no cover or metadata stream in the rendition")
        #expect(m4a["format"]?["tags"]?["title"] == nil)
        let dat = try Data(contentsOf: URL(fileURLWithPath: fixture.path("uploads/song.waveform.dat")))
        #expect(dat.prefix(8) == Data([1, 0, 0, 0, 1, 0, 0, 0]), "version 1, 8-bit")
        #expect(recorder.rows.withLock { $0["a1"] } == row.objectValue)
    }

    @Test func theAudioRowLandsInPostgreSQL() async throws {
        let url = try #require(ProcessInfo.processInfo.environment["DATABASE_URL"], "DATABASE_URL is set by scripts/test.sh")
        let fixture = try MediaFixture()
        try await AudioClips.make(fixture, "split-44k-stereo.wav")
        let handler = IngestHandler(
            root: fixture.root, probe: fixture.probeHandler(), transcode: fixture.transcodeHandler(), images: nil,
            recorder: PostgresIngestRecorder(url: url))
        let upload = "pg-audio-\(UUID().uuidString)"
        let job = fixture.job("media.ingest", ["upload_id": .string(upload), "source": "split-44k-stereo.wav"])
        _ = try await handler.perform(job)
        let rows = try PostgresConnection(url: url).query(
            """
            SELECT status, kind, duration::text, variants->0->>'key', details->'waveform'->>'dat', probe->'format'->>'format_name', jid
              FROM conveyor.media_uploads WHERE upload_id = $1
            """, [upload]).rows
        #expect(rows.count == 1)
        let row = try #require(rows.first)
        #expect(row[0] == "ready" && row[1] == "audio")
        #expect(abs((row[2].flatMap { Double($0) } ?? 0) - 2.2) < 0.01, "\(String(describing: row[2]))")
        #expect(row[3] == "split-44k-stereo.web.m4a")
        #expect(row[4] == "split-44k-stereo.waveform.dat")
        #expect(row[5] == "wav")
        #expect(row[6] == job.jid)
    }

    @Test func anAudioOnlyM4AIsIngestedAsAudio() async throws {
        let fixture = try MediaFixture()
        try await AudioClips.make(fixture, "noise-48k-stereo.m4a")
        let recorder = RowRecorder()
        let handler = IngestHandler(
            root: fixture.root, probe: fixture.probeHandler(), transcode: fixture.transcodeHandler(), images: nil, recorder: recorder)
        let row = try await handler.perform(fixture.job("media.ingest", ["upload_id": "a2", "source": "noise-48k-stereo.m4a"]))
        #expect(row["kind"] == "audio")
        #expect(row["variants"]?[0]?["key"] == "noise-48k-stereo.web.m4a")
        #expect(row["poster"] == .null)
        #expect(FileManager.default.fileExists(atPath: fixture.path("noise-48k-stereo.waveform.json")))
    }

    @Test func hostileAudioUploadsGetAFailedRowWithTheirClass() async throws {
        let fixture = try MediaFixture()
        try fixture.write("#EXTM3U\n#EXTINF:1,\nhttp://example.com/x.mp3\n", to: "pl.mp3")
        try await fixture.ffmpeg(["-f", "lavfi", "-i", "sine=duration=20", "-c:a", "libmp3lame"], output: "cut.mp3")
        let whole = try Data(contentsOf: URL(fileURLWithPath: fixture.path("cut.mp3")))
        try whole.prefix(whole.count / 3).write(to: URL(fileURLWithPath: fixture.path("cut.mp3")))
        let recorder = RowRecorder()
        let handler = IngestHandler(
            root: fixture.root, probe: fixture.probeHandler(), transcode: fixture.transcodeHandler(), images: nil, recorder: recorder)
        for (upload, key, errorClass) in [("h1", "pl.mp3", "MediaPlaylistRefused"), ("h2", "cut.mp3", "MediaTruncated")] {
            _ = await expectPermanent(errorClass) {
                try await handler.perform(fixture.job("media.ingest", ["upload_id": .string(upload), "source": .string(key)]))
            }
            let row = recorder.rows.withLock { $0[upload] }
            #expect(row?["status"] == "failed")
            #expect(row?["error_class"] == JSONValue(errorClass))
        }
    }
}
