public import ConveyorCore

/// The image jobs' error classes, and the media root's (shared by every family that reads uploads); `sourceNotFound`
/// is Storage's, whichever store a family reads.
extension ErrorClass {
    /// The media root is missing or cannot be created or resolved.
    public static let mediaRootUnavailable: ErrorClass = "MediaRootUnavailable"
    /// A key is absolute, has `.`/`..` components or a NUL, or resolves through a symlink outside the media root.
    public static let pathOutsideMediaRoot: ErrorClass = "PathOutsideMediaRoot"
    /// An output could not be written or moved into place.
    public static let mediaWriteFailed: ErrorClass = "MediaWriteFailed"

    /// The source is an empty file.
    public static let imageEmpty: ErrorClass = "ImageEmpty"
    /// The source exceeds a size limit: bytes, megapixels or longest side.
    public static let imageTooLarge: ErrorClass = "ImageTooLarge"
    /// The animation has more frames than the limit.
    public static let imageTooManyFrames: ErrorClass = "ImageTooManyFrames"
    /// The source is not a format Conveyor decodes (whatever its name says), or its loader is blocked.
    public static let unsupportedImageFormat: ErrorClass = "UnsupportedImageFormat"
    /// The source is damaged or truncated.
    public static let imageCorrupt: ErrorClass = "ImageCorrupt"
    /// The job's deadline passed before or while libvips worked.
    public static let imageTimeout: ErrorClass = "ImageTimeout"
    /// libvips failed to start in the helper.
    public static let vipsUnavailable: ErrorClass = "VipsUnavailable"
}
