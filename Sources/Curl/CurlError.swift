/// A libcurl transfer that failed before a complete response arrived, with curl's own message captured from
/// the handle's error buffer at the failure site.
public struct CurlError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable {
        /// `CURLE_OPERATION_TIMEDOUT`: the connect or total timeout passed.
        case timeout
        /// The caller's deadline passed and the progress callback aborted the transfer.
        case deadlineExceeded
        /// DNS, connect or TLS handshake failed.
        case connect
        /// The connection broke, the peer sent nothing or garbage, or any other transfer error.
        case transport
        /// The response body exceeded the transfer's `maxResponseBytes`.
        case responseTooLarge
        /// The request itself was rejected before sending (bad header, bad option).
        case invalidRequest
        /// libcurl could not be initialised or an option was refused.
        case setup
        /// The transfer's `CurlAbortSignal` fired (the task waiting for it was cancelled).
        case cancelled
        /// The upload file could not be read (shorter than announced: changed while sending) or the response file
        /// could not be written (disk full).
        case localFile
    }

    public var kind: Kind
    /// The `CURLcode` (0 when the wrapper rejected the request itself).
    public var code: Int
    public var message: String
    /// The URL of the transfer, without credentials or query string.
    public var url: String?

    public init(kind: Kind, code: Int, message: String, url: String? = nil) {
        self.kind = kind
        self.code = code
        self.message = message
        self.url = url
    }

    /// Timeouts and deadline aborts.
    public var isTimeout: Bool { kind == .timeout || kind == .deadlineExceeded }

    public var description: String {
        let target = url.map { " \($0)" } ?? ""
        return "curl\(target): \(message) (\(kind.rawValue), CURLcode \(code))"
    }
}

/// A URL safe to log: scheme, host, port and path; no user info, query or fragment.
func redactedURL(_ url: String) -> String {
    var rest = Substring(url)
    var scheme = ""
    if let range = rest.range(of: "://") {
        scheme = String(rest[..<range.upperBound])
        rest = rest[range.upperBound...]
    }
    if let at = rest.firstIndex(of: "@"), rest[..<at].firstIndex(of: "/") == nil {
        rest = rest[rest.index(after: at)...]
    }
    if let cut = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) {
        rest = rest[..<cut]
    }
    return scheme + rest
}
