public import ConveyorCore

/// The audio jobs' error classes (the video ones apply to audio too: `UnsupportedMedia`, `MediaReferenceRefused`,
/// `MediaDeadline`).
extension ErrorClass {
    /// The upload has no bytes at all.
    public static let emptyMedia: ErrorClass = "EmptyMedia"
    /// The header claims a duration the file's bytes cannot hold (10 hours in 1 MB).
    public static let mediaDurationMismatch: ErrorClass = "MediaDurationMismatch"
    /// Decoding ended well before the duration the header declares: the file was cut short.
    public static let mediaTruncated: ErrorClass = "MediaTruncated"
    /// A header field contradicts the file (a WAV data chunk larger than the file).
    public static let mediaHeaderInvalid: ErrorClass = "MediaHeaderInvalid"
    /// Longer than `CONVEYOR_AUDIO_MAX_DURATION`, by its header or by what decoded.
    public static let mediaTooLong: ErrorClass = "MediaTooLong"
    /// The upload is an M3U/HLS playlist, whatever its name says.
    public static let mediaPlaylistRefused: ErrorClass = "MediaPlaylistRefused"
    /// Encoding the audio rendition or the waveform, or moving an output into place, failed.
    public static let audioOutputFailed: ErrorClass = "AudioOutputFailed"
}
