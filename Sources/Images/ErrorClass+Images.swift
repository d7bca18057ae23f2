public import ConveyorCore

/// The image jobs' error classes (the media root's are Storage's).
extension ErrorClass {
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
