/// What an untrusted input may be and how much work opening it may cost.
///
/// The defaults accept the two containers phones, cameras and browsers produce (QuickTime/MP4 and
/// Matroska/WebM) and nothing else: HLS, DASH, concat, image2, AVI (GAB2 subtitles carried CVE-2017-9993),
/// MPEG-TS and the other ~300 demuxers in Debian's libavformat never see upload bytes.
public struct InputPolicy: Sendable {
    /// libavformat demuxer names (`format_whitelist`). `mov` is the one demuxer for mov/mp4/m4a/3gp/3g2/mj2,
    /// `matroska` the one for mkv/webm.
    public var formats: [String] = ["mov", "matroska"]
    /// Decoder names (`codec_whitelist`, checked by avcodec_open2).
    public var codecs: [String] = [
        "h264", "hevc", "vp8", "vp9", "libdav1d", "av1", "mpeg4",
        "aac", "mp3float", "mp3", "opus", "libopus", "vorbis", "flac", "alac", "pcm_s16le", "pcm_s16be",
    ]
    /// Bytes read to detect the format and streams (`probesize`).
    public var probeSize: Int = 5_000_000
    /// Microseconds of media analysed for stream parameters (`analyzeduration`).
    public var analyzeDuration: Int = 5_000_000
    /// Streams beyond this make the open fail (`max_streams`).
    public var maxStreams: Int = 8
    /// Largest width×height a decoder accepts (`max_pixels`) and that probe/transcode accept.
    public var maxPixels: Int = 3840 * 2160
    /// Longest accepted duration in seconds (0: no limit).
    public var maxDurationSeconds: Double = 3 * 3600

    public init() {}
}

extension InputPolicy {
    /// Audio uploads: MP3, M4A/AAC (MP4 or ADTS), Ogg (Opus, Vorbis), FLAC and WAV (PCM), and nothing else. The
    /// decoders are audio decoders only: an attached cover picture is copied as bytes, never decoded here.
    public static var audio: InputPolicy {
        var policy = InputPolicy()
        policy.formats = ["mp3", "mov", "aac", "ogg", "flac", "wav"]
        policy.codecs = [
            "mp3float", "mp3", "aac", "opus", "libopus", "vorbis", "flac", "alac",
            "pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_u8",
        ]
        // Only an attached cover picture has pixels; it is checked again by the image pipeline.
        policy.maxPixels = 8192 * 8192
        policy.maxDurationSeconds = 4 * 3600
        return policy
    }
}
