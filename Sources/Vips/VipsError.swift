internal import CVips

/// A libvips failure, with the error buffer's text captured at the failure site.
public struct VipsError: Error, Sendable, CustomStringConvertible {
    /// What Conveyor was doing: "open", "thumbnail", "webpsave".
    public var operation: String
    /// libvips' own message (its error buffer when the call failed).
    public var message: String

    public var description: String { "\(operation): \(message)" }

    /// Copies and clears libvips' error buffer. Call right after the failing call, on the same thread.
    static func capture(_ operation: String) -> VipsError {
        var text = ""
        if let buffer = vips_error_buffer_copy() {
            text = String(cString: buffer)
            g_free(buffer)
        }
        text = text.trimmingCharacters()
        return VipsError(operation: operation, message: text.isEmpty ? "libvips failed without a message" : text)
    }

    /// libvips stopped because a deadline set its kill flag.
    public var wasKilled: Bool { message.contains("killed") }
    /// The loader for these bytes is blocked (an untrusted format such as SVG or PDF).
    public var wasBlocked: Bool { message.contains("is blocked") }
}

extension String {
    fileprivate func trimmingCharacters() -> String {
        var s = Substring(self)
        while let last = s.last, last.isWhitespace { s = s.dropLast() }
        while let first = s.first, first.isWhitespace { s = s.dropFirst() }
        return String(s)
    }
}
