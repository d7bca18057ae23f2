public import AV
public import ConveyorCore
public import Storage
import Foundation
public import Images
public import Sandbox

/// The native work of the video jobs as helper operations: typed requests that name media by key under the
/// media root, resolved and confined by the helper itself (`MediaRoot`, as the image operations do), so a job
/// argument cannot make a helper read or write outside the root. Runs in a supervised `conveyor helper` process
/// (or, for debugging, on a thread of the worker).
public enum VideoOperations {
    /// `video.probe`: ffprobe-shaped JSON of the source.
    public static let probeOperation = HelperOperation<ProbeHelperRequest, JSONValue>("video.probe") {
        request, context throws(JobFailure) in
        try probe(request, deadline: context.deadline)
    }

    /// `video.transcode`: facts of the output. Writes the MP4 to `output`, the JPEG poster to `poster` and, about
    /// once a second, `{"frames", "seconds", "duration"}` to `progress`; the worker renames the outputs into place.
    public static let transcodeOperation = HelperOperation<TranscodeHelperRequest, JSONValue>("video.transcode") {
        request, context throws(JobFailure) in
        try transcode(request, deadline: context.deadline)
    }

    /// This family's helper operations (the audio ones included), for `conveyor helper` and for an in-process `HelperPool`.
    public static let helperOperations = HelperOperations().adding(probeOperation).adding(transcodeOperation)
        .adding(AudioOperations.waveformOperation).adding(AudioOperations.transcodeOperation)

    /// FFmpeg's log goes to stderr at `CONVEYOR_VIDEO_FFMPEG_LOG`, set once per helper before its first operation:
    /// a helper is a child process, and its pool put the typed setting into its environment
    /// (`VideoConfiguration.helperPool.environment`); in-process decoding is routed by `MediaJobs.register`.
    private static let logRouted: Void = AVLibrary.routeLog(level: getenv(VideoSettings.videoFfmpegLog.name).map { String(cString: $0) })

    static func probe(_ request: ProbeHelperRequest, deadline: ContinuousClock.Instant?) throws(JobFailure) -> JSONValue {
        _ = logRouted
        let path = try MediaRoot(request.mediaRoot, create: false).source(request.source)
        do {
            return try MediaProbe.probe(path: path, policy: request.policy, deadline: Self.deadline(deadline)).ffprobeJSON
        } catch {
            throw JobFailure(error)
        }
    }

    static func transcode(_ request: TranscodeHelperRequest, deadline: ContinuousClock.Instant?) throws(JobFailure) -> JSONValue {
        _ = logRouted
        let root = try MediaRoot(request.mediaRoot, create: false)
        let path = try root.source(request.source)
        let output = try root.writable(request.output, field: "output")
        let posterPath = try request.poster.map { key throws(JobFailure) in try root.writable(key, field: "poster") }
        let progressPath = try request.progress.map { key throws(JobFailure) in try root.writable(key, field: "progress") }
        var report: (@Sendable (TranscodeProgress) -> Void)? = nil
        if let progressPath {
            report = { p in writeProgress(p, to: progressPath) }
        }
        let result: TranscodeResult
        do {
            result = try Transcoder.transcode(
                inputPath: path, outputPath: output, profile: request.profile, policy: request.policy,
                posterAt: posterPath == nil ? nil : 0.5, deadline: Self.deadline(deadline), progress: report)
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

    /// A request without a deadline (not one the worker sends) gets half an hour.
    static func deadline(_ deadline: ContinuousClock.Instant?) -> ContinuousClock.Instant {
        deadline ?? ContinuousClock.now + .seconds(1800)
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

/// What the worker sends `video.probe`: the media root and the source's key.
///
/// Wire: `{"media_root", "source", "policy"?}`.
public struct ProbeHelperRequest: HelperRequest {
    public var mediaRoot: String
    public var source: String
    public var policy: InputPolicy

    public init(mediaRoot: String, source: String, policy: InputPolicy) {
        self.mediaRoot = mediaRoot
        self.source = source
        self.policy = policy
    }

    public init(helperArguments arguments: JSONObject) throws(JobFailure) {
        mediaRoot = try MediaRoot.helperArgument(arguments)
        source = try VideoOperations.required(arguments, "source")
        policy = InputPolicy(json: arguments["policy"]?.objectValue)
    }

    public var helperArguments: JSONObject {
        JSONObject([("media_root", .string(mediaRoot)), ("source", .string(source)), ("policy", policy.json)])
    }
}

/// What the worker sends `video.transcode`: the media root and keys under it. `output`, `poster` and `progress` are
/// temporary names next to the final outputs (`AtomicOutput`), so everything the helper writes stays in the media
/// root, the one place besides the temporary directory its Landlock rules let it write.
///
/// Wire: `{"media_root", "source", "output", "poster"?, "progress"?, "profile", "policy"?}`.
public struct TranscodeHelperRequest: HelperRequest {
    public var mediaRoot: String
    public var source: String
    public var output: String
    /// Nil: no poster.
    public var poster: String?
    /// Nil: no progress reports.
    public var progress: String?
    public var profile: TranscodeProfile
    public var policy: InputPolicy

    public init(
        mediaRoot: String, source: String, output: String, poster: String?, progress: String?, profile: TranscodeProfile,
        policy: InputPolicy
    ) {
        self.mediaRoot = mediaRoot
        self.source = source
        self.output = output
        self.poster = poster
        self.progress = progress
        self.profile = profile
        self.policy = policy
    }

    public init(helperArguments arguments: JSONObject) throws(JobFailure) {
        mediaRoot = try MediaRoot.helperArgument(arguments)
        source = try VideoOperations.required(arguments, "source")
        output = try VideoOperations.required(arguments, "output")
        poster = arguments["poster"]?.stringValue
        progress = arguments["progress"]?.stringValue
        guard let profileObject = arguments["profile"]?.objectValue, let profile = TranscodeProfile(json: profileObject) else {
            throw .permanent(.invalidHelperArguments, "video.transcode: profile argument missing or malformed")
        }
        self.profile = profile
        policy = InputPolicy(json: arguments["policy"]?.objectValue)
    }

    public var helperArguments: JSONObject {
        var arguments = JSONObject([("media_root", .string(mediaRoot)), ("source", .string(source)), ("output", .string(output))])
        if let poster { arguments["poster"] = .string(poster) }
        if let progress { arguments["progress"] = .string(progress) }
        arguments["profile"] = profile.json
        arguments["policy"] = policy.json
        return arguments
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
        case .empty: self = .permanent(.emptyMedia, message)
        case .durationMismatch: self = .permanent(.mediaDurationMismatch, message)
        case .truncated: self = .permanent(.mediaTruncated, message)
        case .headerInvalid: self = .permanent(.mediaHeaderInvalid, message)
        case .tooLong: self = .permanent(.mediaTooLong, message)
        case .playlist: self = .permanent(.mediaPlaylistRefused, message)
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

/// Whole milliseconds, saturating at a year either way (a far deadline must not overflow the multiplication).
func milliseconds(_ duration: Duration) -> Int {
    let seconds = min(max(duration.components.seconds, -31_536_000), 31_536_000)
    return Int(seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
}
