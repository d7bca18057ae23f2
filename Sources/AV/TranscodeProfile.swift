/// Settings of a web transcode: H.264 High 8-bit 4:2:0 + AAC stereo in a faststart MP4.
public struct TranscodeProfile: Sendable, Equatable {
    /// `1080p` or `720p`: recorded in results and used in output names.
    public var name: String
    /// The longer side of the output is at most this (1920 for 1080p): portrait video is bounded the same way.
    public var maxLongSide: Int
    /// The shorter side of the output is at most this (1080 for 1080p).
    public var maxShortSide: Int
    public var crf: Int = 23
    /// `-maxrate` in bits/s; `-bufsize` is twice this.
    public var maxBitRate: Int
    /// libx264 preset.
    public var preset: String = "veryfast"
    /// Seconds between keyframes (GOP = this × frame rate).
    public var keyframeInterval: Double = 2
    public var audioBitRate: Int = 128_000
    /// Frames closer together than 1/maxFrameRate s are dropped (PeerTube caps at 60).
    public var maxFrameRate: Double = 60

    public init(name: String, maxLongSide: Int, maxShortSide: Int, maxBitRate: Int) {
        self.name = name
        self.maxLongSide = maxLongSide
        self.maxShortSide = maxShortSide
        self.maxBitRate = maxBitRate
    }

    public static let web1080p = TranscodeProfile(name: "1080p", maxLongSide: 1920, maxShortSide: 1080, maxBitRate: 6_000_000)
    public static let web720p = TranscodeProfile(name: "720p", maxLongSide: 1280, maxShortSide: 720, maxBitRate: 3_000_000)

    /// Output size for a displayed (already rotated) input size: never upscaled, both sides even.
    public func outputSize(width: Int, height: Int) -> (width: Int, height: Int) {
        let long = Double(max(width, height)), short = Double(min(width, height))
        let scale = min(1, Double(maxLongSide) / long, Double(maxShortSide) / short)
        func even(_ v: Double) -> Int { max(2, Int(v.rounded(.down)) & ~1) }
        return (even(Double(width) * scale), even(Double(height) * scale))
    }
}

/// How far a transcode has got.
public struct TranscodeProgress: Sendable {
    public var frames: Int
    /// Output position in seconds.
    public var seconds: Double
    /// Input duration in seconds, when known.
    public var duration: Double?
    public init(frames: Int, seconds: Double, duration: Double?) {
        self.frames = frames
        self.seconds = seconds
        self.duration = duration
    }

    /// 0...1 when the duration is known.
    public var fraction: Double? {
        guard let duration, duration > 0 else { return nil }
        return min(1, seconds / duration)
    }
}

/// What a transcode produced.
public struct TranscodeResult: Sendable {
    public var input: MediaProbe
    public var width: Int
    public var height: Int
    public var frames: Int
    public var duration: Double
    public var hasAudio: Bool
    /// Clockwise quarter turns applied to honour the input's display matrix.
    public var quarterTurns: Int
    /// Encoded JPEG of the poster frame (nil when no poster was requested).
    public var poster: [UInt8]?
    /// Output position of the poster frame in seconds.
    public var posterSeconds: Double?
}
