internal import CFFmpeg
internal import CShims

/// A libav* call that failed, with FFmpeg's message captured where it failed.
public struct AVFailure: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The input is not something we accept or cannot be decoded (permanent).
        case rejectedInput
        /// The job's deadline interrupted FFmpeg (retrying may help).
        case deadline
        /// A nested open (playlist entry, concat item, reference) was refused (permanent).
        case nestedOpenRefused
        /// Out of memory, disk or another resource on this machine (retrying may help).
        case resource
        /// The output could not be encoded or written (retrying may help).
        case output
        /// The file has no bytes at all (permanent).
        case empty
        /// The header claims a duration the file's bytes cannot hold (permanent).
        case durationMismatch
        /// Decoding ended well before the duration the header declares (permanent).
        case truncated
        /// A header field contradicts the file: a WAV data chunk larger than the file (permanent).
        case headerInvalid
        /// Longer than the configured maximum duration, by its header or by what decoded (permanent).
        case tooLong
        /// A playlist (HLS/M3U) where a media file was expected (permanent).
        case playlist
    }

    public var kind: Kind
    /// The libav* operation that failed: `avformat_open_input`, `avcodec_send_packet`.
    public var operation: String
    public var message: String
    /// FFmpeg's return code (0 when the failure is a policy check rather than a call).
    public var code: Int32

    public init(_ kind: Kind, operation: String, message: String, code: Int32 = 0) {
        self.kind = kind
        self.operation = operation
        self.message = message
        self.code = code
    }

    public var isPermanent: Bool { ![.deadline, .resource, .output].contains(kind) }

    public var description: String { code == 0 ? "\(operation): \(message)" : "\(operation): \(message) (\(code))" }

    /// FFmpeg's text for a return code (`av_strerror`).
    static func text(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        if av_strerror(code, &buffer, buffer.count) < 0 { return "error \(code)" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Classifies a failed call on the input side: bad data is permanent, ENOMEM is a resource problem.
    static func input(_ operation: String, _ code: Int32, guard state: UnsafePointer<cshims_av_guard>? = nil) -> AVFailure {
        if let state, state.pointee.interrupted != 0 || code == cshims_averror_exit() {
            return AVFailure(.deadline, operation: operation, message: "stopped at the job deadline", code: code)
        }
        if let state, state.pointee.refused_opens > 0 {
            let url = withUnsafeBytes(of: state.pointee.last_refused) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            return AVFailure(
                .nestedOpenRefused, operation: operation,
                message: "the input tried to open another file or URL (\(url)); playlists and references are not accepted",
                code: code)
        }
        if code == cshims_averror_enomem() {
            return AVFailure(.resource, operation: operation, message: text(code), code: code)
        }
        return AVFailure(.rejectedInput, operation: operation, message: text(code), code: code)
    }

    static func output(_ operation: String, _ code: Int32) -> AVFailure {
        AVFailure(.output, operation: operation, message: text(code), code: code)
    }
}
