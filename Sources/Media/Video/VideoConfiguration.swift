public import AV
public import ConveyorCore
public import Sandbox

/// Video settings, read from the one reader (see docs/configuration.md, Video).
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
    /// `CONVEYOR_VIDEO_FFMPEG_LOG`: FFmpeg's own log level on stderr (nil: quiet).
    public var ffmpegLog: String?

    /// `CONVEYOR_VIDEO_HELPERS` helper processes (default 2), `CONVEYOR_VIDEO_HELPER_MEMORY_MB` address space
    /// each (default 8192: x264 and frame threads at 1080p), CPU seconds per job = the transcode timeout,
    /// `CONVEYOR_VIDEO_IN_PROCESS=1` to decode on the worker's own threads (debugging only).
    public var helperPool = HelperPool.Configuration(
        size: 2, maxJobsPerHelper: 50, limits: HelperLimits(addressSpaceMB: 8192, cpuSecondsPerJob: 3600, openFiles: 64))

    public init() {}

    /// Reads `VideoSettings` and the helpers' sandbox and media root from the one reader; a refused value is a
    /// `VideoConfigurationError` naming its source.
    public init(settings: SettingsReader) throws {
        typealias V = VideoSettings
        do {
            try settings.refuse(V.all + [MediaSettings.mediaRoot, ImagesSettings.helperSandbox])
        } catch {
            throw VideoConfigurationError(message: error.message)
        }
        if let root = settings.text(MediaSettings.mediaRoot) {
            mediaRoot = root
            mediaRootConfigured = true
        }
        policy.maxPixels = settings.int(V.videoMaxPixels)
        policy.maxDurationSeconds = Double(settings.int(V.videoMaxDuration))
        audioPolicy.maxDurationSeconds = Double(settings.int(V.audioMaxDuration))
        crf = settings.int(V.videoCrf)
        // At most 2^40 bytes by the declared range.
        maxSourceBytes = settings.int(V.videoMaxFileMb, times: 1 << 20) ?? Int.max
        transcodeTimeout = settings.int(V.videoTranscodeTimeout)
        probeTimeout = settings.int(V.videoProbeTimeout)
        transcodeConcurrency = settings.int(V.videoTranscodeConcurrency)
        helperPool.size = settings.int(V.videoHelpers)
        helperPool.limits.addressSpaceMB = settings.int(V.videoHelperMemoryMb)
        // RLIMIT_CPU counts all threads: x264 on every core burns CPU seconds faster than wall seconds.
        helperPool.limits.cpuSecondsPerJob = transcodeTimeout * 4
        helperPool.inProcess = settings.bool(V.videoInProcess)
        helperPool.limits.sandbox = settings.bool(ImagesSettings.helperSandbox)
        helperPool.limits.writablePaths = [mediaRoot]
        preset = settings.text(V.videoPreset)?.lowercased() ?? preset
        ffmpegLog = settings.text(V.videoFfmpegLog)?.lowercased()
        // FFmpeg's log level reaches the helpers through their environment, built here from the typed value.
        if let ffmpegLog { helperPool.environment[V.videoFfmpegLog.name] = ffmpegLog }
    }

    /// The same from a plain environment, through a reader of the families' settings.
    public init(environment: [String: String]) throws {
        try self.init(settings: SettingsReader(families: environment))
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
