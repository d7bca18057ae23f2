internal import CFFmpeg
internal import CShims

/// Process-wide FFmpeg settings.
public enum AVLibrary {
    /// Quiets FFmpeg's own logging: failures are reported through `AVFailure`, not stderr.
    /// Call once per process (idempotent).
    public static func configure() {
        _ = configured
    }

    private static let configured: Void = {
        cshims_av_log_install(AV_LOG_QUIET, nil)
    }()

    /// libavformat's version string (for logs and the benchmark table).
    public static var version: String { String(cString: av_version_info()) }
}
