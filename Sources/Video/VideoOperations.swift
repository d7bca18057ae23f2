public import AV
public import ConveyorCore
import Foundation
import Sandbox

/// The native work of the video jobs as helper operations (`HelperOperation`): JSON arguments in, JSON out,
/// so it runs in a supervised `conveyor helper` process (or, for debugging, on a thread of the worker).
public enum VideoOperations {
    /// Adds `video.probe` and `video.transcode` to the process's helper operations. `conveyor helper` and
    /// `VideoJobs.register` call it.
    public static func registerHelperOperations() {
        AVLibrary.routeLog(level: ProcessInfo.processInfo.environment["CONVEYOR_VIDEO_FFMPEG_LOG"])
        SandboxOperations.register("video.probe", { try probe($0) })
        SandboxOperations.register("video.transcode", { try transcode($0) })
    }

    /// `video.probe`: `{"path", "timeout_ms"?, "policy"?}` → ffprobe-shaped JSON.
    public static func probe(_ arguments: JSONObject) throws(JobFailure) -> JSONValue {
        let path = try required(arguments, "path")
        let policy = InputPolicy(json: arguments["policy"]?.objectValue)
        do {
            return try MediaProbe.probe(path: path, policy: policy, deadline: deadline(arguments)).ffprobeJSON
        } catch {
            throw JobFailure(error)
        }
    }

    /// `video.transcode`: `{"path", "output", "poster"?, "progress"?, "profile", "timeout_ms"?, "policy"?}` →
    /// facts of the output. Writes the MP4 to `output`, the JPEG poster to `poster` and, about once a second,
    /// `{"frames", "seconds", "duration"}` to `progress`; the caller renames the outputs into place.
    public static func transcode(_ arguments: JSONObject) throws(JobFailure) -> JSONValue {
        let path = try required(arguments, "path")
        let output = try required(arguments, "output")
        let posterPath = arguments["poster"]?.stringValue
        let progressPath = arguments["progress"]?.stringValue
        let policy = InputPolicy(json: arguments["policy"]?.objectValue)
        guard let profileObject = arguments["profile"]?.objectValue, let profile = TranscodeProfile(json: profileObject) else {
            throw .permanent(.invalidHelperArguments, "video.transcode: profile argument missing or malformed")
        }
        var report: (@Sendable (TranscodeProgress) -> Void)? = nil
        if let progressPath {
            report = { p in writeProgress(p, to: progressPath) }
        }
        let result: TranscodeResult
        do {
            result = try Transcoder.transcode(
                inputPath: path, outputPath: output, profile: profile, policy: policy,
                posterAt: posterPath == nil ? nil : 0.5, deadline: deadline(arguments), progress: report)
        } catch {
            throw JobFailure(error)
        }
        if let posterPath, let jpeg = result.poster {
            do {
                try Data(jpeg).write(to: URL(fileURLWithPath: posterPath))
            } catch {
                throw .transient(.videoOutputFailed, "cannot write the poster: \(error)")
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

    static func deadline(_ arguments: JSONObject) -> ContinuousClock.Instant {
        if let deadline = SandboxOperations.currentDeadline { return deadline }
        return ContinuousClock.now + .milliseconds(arguments["timeout_ms"]?.intValue ?? 1_800_000)
    }

    static func required(_ arguments: JSONObject, _ key: String) throws(JobFailure) -> String {
        guard let value = arguments[key]?.stringValue else {
            throw .permanent(.invalidHelperArguments, "video operation: argument \(key) missing")
        }
        return value
    }

    /// Replaces the progress file in one step so the worker never reads half of it.
    static func writeProgress(_ progress: TranscodeProgress, to path: String) {
        var object = JSONObject()
        object["frames"] = JSONValue(progress.frames)
        object["seconds"] = JSONValue(progress.seconds)
        if let duration = progress.duration { object["duration"] = JSONValue(duration) }
        let temporary = path + ".new"
        if (try? Data(JSONValue.object(object).bytes).write(to: URL(fileURLWithPath: temporary))) != nil {
            rename(temporary, path)
        }
    }

    static func readProgress(_ path: String) -> TranscodeProgress? {
        guard let data = FileManager.default.contents(atPath: path),
            let object = try? JSONValue(parsing: [UInt8](data)).objectValue,
            let frames = object["frames"]?.intValue, let seconds = object["seconds"]?.doubleValue
        else { return nil }
        return TranscodeProgress(frames: frames, seconds: seconds, duration: object["duration"]?.doubleValue)
    }
}

extension JobFailure {
    /// How an FFmpeg failure is recorded: bad input is permanent, the rest retries.
    init(_ failure: AVFailure) {
        let message = "\(failure.message) [\(failure.operation)]"
        switch failure.kind {
        case .rejectedInput: self = .permanent(.unsupportedMedia, message)
        case .nestedOpenRefused: self = .permanent(.mediaReferenceRefused, message)
        case .deadline: self = .transient(.mediaDeadline, message)
        case .resource, .output: self = .transient(.videoOutputFailed, message)
        }
    }

    /// The failure with the job and its input named in front of the message.
    func about(_ job: JobContext, source: String) -> JobFailure {
        with(message: "\(job.jobClass) jid=\(job.jid) source \(source): \(message)")
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
            "max_frame_rate": JSONValue(maxFrameRate),
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
        if let v = json["max_frame_rate"]?.doubleValue, v > 0 { maxFrameRate = v }
    }
}

func milliseconds(_ duration: Duration) -> Int {
    Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
}
