public import AV
import ConveyorCore
public import Sandbox

/// Video settings read from the environment (see docs/configuration.md, Video).
public struct VideoConfiguration: Sendable {
    /// `CONVEYOR_MEDIA_ROOT` (default `.run/media`).
    public var mediaRoot: String = ".run/media"
    /// Whether `CONVEYOR_MEDIA_ROOT` named the root (then it is created when missing).
    public var mediaRootConfigured = false
    public var policy = InputPolicy()
    /// What `audio.waveform`, `audio.transcode` and `media.ingest`'s audio branch accept (`InputPolicy.audio`), with
    /// `CONVEYOR_AUDIO_MAX_DURATION` seconds (default 14400) as its duration cap.
    public var audioPolicy = InputPolicy.audio
    /// `CONVEYOR_VIDEO_PRESET` (default `veryfast`).
    public var preset: String = "veryfast"
    /// `CONVEYOR_VIDEO_CRF` (default 23).
    public var crf: Int = 23
    /// `CONVEYOR_VIDEO_TRANSCODE_TIMEOUT` seconds (default 1800).
    public var transcodeTimeout: Int = 1800
    /// `CONVEYOR_VIDEO_PROBE_TIMEOUT` seconds (default 30).
    public var probeTimeout: Int = 30
    /// `CONVEYOR_VIDEO_MAX_FILE_MB` (default 4096): a larger source is refused before it is read (from an object
    /// store, before it is downloaded whole).
    public var maxSourceBytes: Int = 4096 << 20
    /// `CONVEYOR_VIDEO_TRANSCODE_CONCURRENCY` (default 1: x264 already uses every core).
    public var transcodeConcurrency: Int = 1

    /// `CONVEYOR_VIDEO_HELPERS` helper processes (default 2), `CONVEYOR_VIDEO_HELPER_MEMORY_MB` address space
    /// each (default 8192: x264 and frame threads at 1080p), CPU seconds per job = the transcode timeout,
    /// `CONVEYOR_VIDEO_IN_PROCESS=1` to decode on the worker's own threads (debugging only).
    public var helperPool = HelperPool.Configuration(
        size: 2, maxJobsPerHelper: 50, limits: HelperLimits(addressSpaceMB: 8192, cpuSecondsPerJob: 3600, openFiles: 64))

    public init() {}

    public init(environment: [String: String]) throws {
        if let root = environment["CONVEYOR_MEDIA_ROOT"], !root.isEmpty {
            mediaRoot = root
            mediaRootConfigured = true
        }
        func int(_ name: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard let text = environment[name], !text.isEmpty else { return nil }
            guard let value = Int(text), range.contains(value) else {
                throw VideoConfigurationError(message: "\(name)=\(text) must be an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return value
        }
        if let v = try int("CONVEYOR_VIDEO_MAX_PIXELS", 1...(16384 * 16384)) { policy.maxPixels = v }
        if let v = try int("CONVEYOR_VIDEO_MAX_DURATION", 0...86_400) { policy.maxDurationSeconds = Double(v) }
        if let v = try int("CONVEYOR_AUDIO_MAX_DURATION", 1...86_400) { audioPolicy.maxDurationSeconds = Double(v) }
        if let v = try int("CONVEYOR_VIDEO_CRF", 0...51) { crf = v }
        if let v = try int("CONVEYOR_VIDEO_MAX_FILE_MB", 1...1_048_576) { maxSourceBytes = v << 20 }
        if let v = try int("CONVEYOR_VIDEO_TRANSCODE_TIMEOUT", 1...86_400) { transcodeTimeout = v }
        if let v = try int("CONVEYOR_VIDEO_PROBE_TIMEOUT", 1...3600) { probeTimeout = v }
        if let v = try int("CONVEYOR_VIDEO_TRANSCODE_CONCURRENCY", 1...64) { transcodeConcurrency = v }
        if let v = try int("CONVEYOR_VIDEO_HELPERS", 1...64) { helperPool.size = v }
        if let v = try int("CONVEYOR_VIDEO_HELPER_MEMORY_MB", 256...1_048_576) { helperPool.limits.addressSpaceMB = v }
        // RLIMIT_CPU counts all threads: x264 on every core burns CPU seconds faster than wall seconds.
        helperPool.limits.cpuSecondsPerJob = transcodeTimeout * 4
        do {
            helperPool.inProcess = try EnvironmentSwitch.value("CONVEYOR_VIDEO_IN_PROCESS", in: environment, default: false)
            helperPool.limits.sandbox = try HelperLimits.sandbox(environment: environment)
            helperPool.limits.writablePaths = [mediaRoot]
        } catch {
            throw VideoConfigurationError(message: error.message)
        }
        if let preset = environment["CONVEYOR_VIDEO_PRESET"], !preset.isEmpty {
            let presets = ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"]
            guard presets.contains(preset) else {
                throw VideoConfigurationError(message: "CONVEYOR_VIDEO_PRESET=\(preset) must be one of \(presets.joined(separator: ", "))")
            }
            self.preset = preset
        }
    }

    /// The named profile with this configuration's preset and CRF.
    public func profile(named name: String) -> TranscodeProfile? {
        var profile: TranscodeProfile
        switch name {
        case "1080p": profile = .web1080p
        case "720p": profile = .web720p
        default: return nil
        }
        profile.preset = preset
        profile.crf = crf
        return profile
    }
}

public struct VideoConfigurationError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
