import Foundation

/// Content-Transfer-Encoding of one text part.
public enum BodyEncoding: String, Sendable {
    case quotedPrintable = "quoted-printable"
    case base64 = "base64"

    /// Quoted-printable for mostly-ASCII text (readable in the raw message), base64 when more than a third of the
    /// octets would need escaping.
    static func choose(for bytes: [UInt8]) -> BodyEncoding {
        let escaped = bytes.reduce(0) { $0 + ($1 >= 0x80 || $1 == UInt8(ascii: "=") ? 1 : 0) }
        return escaped * 3 > bytes.count ? .base64 : .quotedPrintable
    }

    /// The encoded body: CRLF line ends, no line longer than 76 characters.
    func encode(_ bytes: [UInt8]) -> String {
        switch self {
        case .base64: return Base64.encodeLines(bytes)
        case .quotedPrintable: return QuotedPrintable.encode(bytes)
        }
    }
}

/// RFC 2045 §6.7 quoted-printable with lines of at most 76 characters and CRLF hard line breaks.
enum QuotedPrintable {
    static let maxLine = 76
    private static let hex = Array("0123456789ABCDEF".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + bytes.count / 8)
        for line in splitLines(bytes) {
            var column = 0
            for (i, byte) in line.enumerated() {
                let isLast = i == line.count - 1
                var token: [UInt8]
                let literal = (byte >= 33 && byte <= 126 && byte != UInt8(ascii: "="))
                    || ((byte == 0x20 || byte == 0x09) && !isLast)
                if literal {
                    token = [byte]
                } else {
                    token = [UInt8(ascii: "="), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
                }
                // A leading "." is escaped so the body survives a relay that does not dot-stuff, and a leading
                // "From " so mbox readers do not mangle it.
                if column == 0 && (byte == UInt8(ascii: ".") || (byte == UInt8(ascii: "F") && line.starts(with: Array("From ".utf8)))) {
                    token = [UInt8(ascii: "="), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
                }
                // Leave room for the soft break "=" unless this token ends the line.
                let room = isLast ? maxLine : maxLine - 1
                if column + token.count > room {
                    out += [UInt8(ascii: "="), 13, 10]
                    column = 0
                    if token.count == 1 && (byte == UInt8(ascii: ".")) {
                        token = [UInt8(ascii: "="), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
                    }
                }
                out += token
                column += token.count
            }
            out += [13, 10]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Splits on CRLF, lone LF or lone CR; a trailing line break does not add an empty line.
    static func splitLines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        var i = 0
        while i < bytes.count {
            if bytes[i] == 13 || bytes[i] == 10 {
                lines.append(bytes[start..<i])
                if bytes[i] == 13 && i + 1 < bytes.count && bytes[i + 1] == 10 { i += 1 }
                start = i + 1
            }
            i += 1
        }
        if start < bytes.count { lines.append(bytes[start..<bytes.count]) }
        return lines
    }
}

/// Foundation's base64, with MIME's line wrapping.
enum Base64 {
    static func encode(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    /// Base64 in lines of 76 characters, each ended by CRLF (the last one too, as a MIME body's lines are).
    static func encodeLines(_ bytes: [UInt8]) -> String {
        let text = Array(encode(bytes).utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.count + text.count / 76 * 2 + 2)
        var i = 0
        while i < text.count {
            out += text[i..<min(i + 76, text.count)]
            out += [13, 10]
            i += 76
        }
        return String(decoding: out, as: UTF8.self)
    }
}
