internal import CFFmpeg
internal import CShims
#if canImport(Glibc)
import Glibc
#endif

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

    /// Sends FFmpeg's own log lines at `level` (`error`, `warning`, `info`) and above to stderr with an
    /// `ffmpeg:` prefix, for diagnosing a file; nil or an unknown name keeps it quiet.
    public static func routeLog(level: String?) {
        configure()
        let levels: [String: Int32] = ["error": AV_LOG_ERROR, "warning": AV_LOG_WARNING, "info": AV_LOG_INFO]
        guard let level, let value = levels[level] else { return }
        cshims_av_log_install(value) { _, line in
            guard let line else { return }
            let text = "ffmpeg: " + String(cString: line) + "\n"
            _ = text.withCString { write(2, $0, strlen($0)) }
        }
    }

    /// libavformat's version string (for logs and the benchmark table).
    public static var version: String { String(cString: av_version_info()) }
}
