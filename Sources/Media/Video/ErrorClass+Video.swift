public import ConveyorCore

/// The video jobs' and `media.ingest`'s error classes.
extension ErrorClass {
    /// The input is not media Conveyor accepts (format, codec, size, duration), or the upload is empty.
    public static let unsupportedMedia: ErrorClass = "UnsupportedMedia"
    /// The input tried to make FFmpeg open another file or URL.
    public static let mediaReferenceRefused: ErrorClass = "MediaReferenceRefused"
    /// The job's deadline passed while FFmpeg worked.
    public static let mediaDeadline: ErrorClass = "MediaDeadline"
    /// The upload exists but cannot be opened.
    public static let mediaUnreadable: ErrorClass = "MediaUnreadable"
    /// Encoding, or writing or moving an output into place, failed.
    public static let videoOutputFailed: ErrorClass = "VideoOutputFailed"
    /// A video helper request lacks an argument or has a malformed one (worker and helper binaries differ).
    public static let invalidHelperArguments: ErrorClass = "InvalidHelperArguments"
    /// An image upload reached `media.ingest` in a worker that has not wired the images pipeline.
    public static let ingestNotConfigured: ErrorClass = "IngestNotConfigured"
    /// The `failed` row of an upload whose `media.ingest` job died without a recorded failure.
    public static let jobDead: ErrorClass = "JobDead"
}
