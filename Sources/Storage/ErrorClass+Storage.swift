public import ConveyorCore

/// The media store's error classes, shared by every family that reads uploads.
extension ErrorClass {
    /// The media root is missing or cannot be created or resolved.
    public static let mediaRootUnavailable: ErrorClass = "MediaRootUnavailable"
    /// A key is absolute, has `.`/`..` components or a NUL, or resolves through a symlink outside the media root.
    public static let pathOutsideMediaRoot: ErrorClass = "PathOutsideMediaRoot"
    /// The source key names no regular file under the media root.
    public static let sourceNotFound: ErrorClass = "SourceNotFound"
    /// An output could not be written or moved into place.
    public static let mediaWriteFailed: ErrorClass = "MediaWriteFailed"
}
