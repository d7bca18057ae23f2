public import ConveyorCore

extension JobFailure {
    /// CR, LF or NUL in an address, display name or header value: refused, never stripped.
    public static func headerInjection(_ field: String, _ detail: String) -> JobFailure {
        .permanent(.headerInjection, "\(field) contains \(detail); refusing to build a message that could carry injected headers")
    }

    static func invalidAddress(_ address: String, _ why: String) -> JobFailure {
        .permanent(.invalidAddress, "address \(address.debugDescription) is not a valid mailbox: \(why)")
    }

    static func templateMissing(_ message: String) -> JobFailure { .permanent(.templateMissing, message) }
}

/// Refuses CR, LF and NUL anywhere in a header value.
func checkHeaderSafe(_ value: String, field: String) throws(JobFailure) {
    for scalar in value.unicodeScalars {
        switch scalar {
        case "\r": throw .headerInjection(field, "a carriage return (CR)")
        case "\n": throw .headerInjection(field, "a line feed (LF)")
        case "\u{0}": throw .headerInjection(field, "a NUL character")
        case "\u{85}", "\u{2028}", "\u{2029}": throw .headerInjection(field, "a Unicode line separator")
        default: continue
        }
    }
}
