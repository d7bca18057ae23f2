public import AV
public import ConveyorCore
import Foundation

/// The native work of the video jobs as functions of JSON arguments, so it can run in this process or in a
/// supervised helper process with the same inputs and outputs.
public enum VideoOperations {
    /// `video.probe`: `{"path", "timeout_ms", "policy"}` → ffprobe-shaped JSON.
    public static func probe(_ arguments: JSONObject) throws -> JSONValue {
        let path = try required(arguments, "path")
        let policy = InputPolicy(json: arguments["policy"]?.objectValue)
        let deadline = ContinuousClock.now + .milliseconds(arguments["timeout_ms"]?.intValue ?? 30_000)
        return try MediaProbe.probe(path: path, policy: policy, deadline: deadline).ffprobeJSON
    }

    /// `video.transcode`: `{"path", "output", "poster"?, "profile", "timeout_ms", "policy"}` → facts of the output.
    /// Writes the MP4 to `output` and the JPEG poster to `poster`; the caller renames them into place.
    public static func transcode(
        _ arguments: JSONObject, progress: (@Sendable (TranscodeProgress) -> Void)? = nil
    ) throws -> JSONValue {
        let path = try required(arguments, "path")
        let output = try required(arguments, "output")
        let posterPath = arguments["poster"]?.stringValue
        let policy = InputPolicy(json: arguments["policy"]?.objectValue)
        guard let profileObject = arguments["profile"]?.objectValue, let profile = TranscodeProfile(json: profileObject) else {
            throw AVFailure(.output, operation: "video.transcode", message: "profile argument missing or malformed")
        }
        let deadline = ContinuousClock.now + .milliseconds(arguments["timeout_ms"]?.intValue ?? 1_800_000)
        let result = try Transcoder.transcode(
            inputPath: path, outputPath: output, profile: profile, policy: policy,
            posterAt: posterPath == nil ? nil : 0.5, deadline: deadline, progress: progress)
        if let posterPath, let jpeg = result.poster {
            do {
                try Data(jpeg).write(to: URL(fileURLWithPath: posterPath))
            } catch {
                throw AVFailure(.output, operation: "write poster", message: "\(error)")
            }
        }
        var object = JSONObject()
        object["width"] = JSONValue(result.width)
        object["height"] = JSONValue(result.height)
        object["duration"] = JSONValue(result.duration)
        object["frames"] = JSONValue(result.frames)
        object["has_audio"] = JSONValue(result.hasAudio)
        object["rotation_applied"] = JSONValue(result.quarterTurns * 90)
        if let jpeg = result.poster, posterPath != nil {
            object["poster_bytes"] = JSONValue(jpeg.count)
            if let seconds = result.posterSeconds { object["poster_time"] = JSONValue(seconds) }
        }
        object["input"] = result.input.ffprobeJSON
        return .object(object)
    }

    static func required(_ arguments: JSONObject, _ key: String) throws -> String {
        guard let value = arguments[key]?.stringValue else {
            throw AVFailure(.output, operation: "video operation", message: "argument \(key) missing")
        }
        return value
    }
}

extension InputPolicy {
    public var json: JSONValue {
        [
            "formats": .array(formats.map { JSONValue($0) }), "codecs": .array(codecs.map { JSONValue($0) }),
            "probesize": JSONValue(probeSize), "analyzeduration": JSONValue(analyzeDuration),
            "max_streams": JSONValue(maxStreams), "max_pixels": JSONValue(maxPixels),
            "max_duration": JSONValue(maxDurationSeconds),
        ]
    }

    init(json: JSONObject?) {
        self.init()
        guard let json else { return }
        if let v = json["formats"]?.arrayValue?.compactMap(\.stringValue) { formats = v }
        if let v = json["codecs"]?.arrayValue?.compactMap(\.stringValue) { codecs = v }
        if let v = json["probesize"]?.intValue { probeSize = v }
        if let v = json["analyzeduration"]?.intValue { analyzeDuration = v }
        if let v = json["max_streams"]?.intValue { maxStreams = v }
        if let v = json["max_pixels"]?.intValue { maxPixels = v }
        if let v = json["max_duration"]?.doubleValue { maxDurationSeconds = v }
    }
}

extension TranscodeProfile {
    public var json: JSONValue {
        [
            "name": JSONValue(name), "max_long_side": JSONValue(maxLongSide), "max_short_side": JSONValue(maxShortSide),
            "crf": JSONValue(crf), "max_bit_rate": JSONValue(maxBitRate), "preset": JSONValue(preset),
            "keyframe_interval": JSONValue(keyframeInterval), "audio_bit_rate": JSONValue(audioBitRate),
        ]
    }

    init?(json: JSONObject) {
        guard let name = json["name"]?.stringValue, let long = json["max_long_side"]?.intValue,
            let short = json["max_short_side"]?.intValue, let maxRate = json["max_bit_rate"]?.intValue
        else { return nil }
        self.init(name: name, maxLongSide: long, maxShortSide: short, maxBitRate: maxRate)
        if let v = json["crf"]?.intValue { crf = v }
        if let v = json["preset"]?.stringValue { preset = v }
        if let v = json["keyframe_interval"]?.doubleValue { keyframeInterval = v }
        if let v = json["audio_bit_rate"]?.intValue { audioBitRate = v }
    }
}

/// Where the video operations run: in this process, or (when wired) in a supervised helper process.
struct VideoRunner: Sendable {
    var probe: @Sendable (_ path: String, _ policy: InputPolicy, _ deadline: ContinuousClock.Instant) async throws -> JSONValue
    var transcode: @Sendable (_ arguments: JSONObject, _ progress: (@Sendable (TranscodeProgress) -> Void)?) async throws -> JSONValue

    /// Runs the operations on the app-owned blocking threads of this process.
    static let inProcess = VideoRunner(
        probe: { path, policy, deadline in
            try await BlockingPool.shared.run {
                try MediaProbe.probe(path: path, policy: policy, deadline: deadline).ffprobeJSON
            }
        },
        transcode: { arguments, progress in
            try await BlockingPool.shared.run { try VideoOperations.transcode(arguments, progress: progress) }
        })
}

func milliseconds(_ duration: Duration) -> Int {
    Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
}
