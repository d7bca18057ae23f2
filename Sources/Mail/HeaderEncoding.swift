/// RFC 5322 header field encoding: RFC 2047 encoded-words for non-ASCII text and folding at 78 columns.
enum HeaderEncoding {
    /// Longest line Conveyor writes (RFC 5322 §2.1.1 recommends 78 octets, excluding CRLF).
    static let lineLimit = 78

    /// An unstructured value (`Subject:`): kept as ASCII words when it is printable ASCII, otherwise a run of
    /// `=?UTF-8?B?…?=` encoded-words that each hold whole characters.
    static func unstructured(_ text: String) -> [String] {
        if isPrintableASCII(text) && !looksEncoded(text) {
            return text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        }
        return encodedWords(text)
    }

    /// A display name for `From:` / `To:`: an atom phrase, a quoted string, or encoded-words.
    static func displayName(_ name: String) -> [String] {
        if isPrintableASCII(name) && !looksEncoded(name) {
            if name.unicodeScalars.allSatisfy({ isAtext($0) || $0 == " " }) && !name.hasPrefix(" ") && !name.hasSuffix(" ") && !name.contains("  ") {
                return name.split(separator: " ").map(String.init)
            }
            var quoted = "\""
            for c in name {
                if c == "\"" || c == "\\" { quoted.append("\\") }
                quoted.append(c)
            }
            quoted.append("\"")
            return [quoted]
        }
        return encodedWords(name)
    }

    /// `Name <local@domain>` (or the bare address) as header words.
    static func mailbox(_ address: MailAddress) -> [String] {
        guard let name = address.displayName else { return [address.address] }
        return displayName(name) + ["<\(address.address)>"]
    }

    /// Joins `Name: ` and `words` with single spaces, folding before a word (CRLF + space) when a line would pass
    /// 78 octets. A single word longer than that stays whole (it is at most 998 octets).
    static func field(_ name: String, _ words: [String]) -> String {
        var out = name + ":"
        var lineLength = out.utf8.count
        for word in words {
            let length = word.utf8.count
            // Never fold before an empty word (a run of spaces): a folded line of only white space is forbidden.
            if lineLength + 1 + length > lineLimit && lineLength > name.utf8.count + 1 && !word.isEmpty {
                out += "\r\n " + word
                lineLength = 1 + length
            } else {
                out += " " + word
                lineLength += 1 + length
            }
        }
        return out + "\r\n"
    }

    /// `=?UTF-8?B?…?=` words of at most 75 octets (RFC 2047 §2), split between characters so no word holds half a
    /// UTF-8 sequence or half a grapheme.
    static func encodedWords(_ text: String) -> [String] {
        // 39 octets are 52 base64 characters, a 64-character word: with "Subject: " before it the first line stays
        // under 78 (the RFC 2047 word limit is 75).
        let maxPayload = 39
        var words: [String] = []
        var chunk: [UInt8] = []
        for character in text {
            let bytes = Array(String(character).utf8)
            if chunk.count + bytes.count > maxPayload && !chunk.isEmpty {
                words.append("=?UTF-8?B?" + Base64.encode(chunk) + "?=")
                chunk.removeAll(keepingCapacity: true)
            }
            chunk.append(contentsOf: bytes)
        }
        if !chunk.isEmpty || words.isEmpty { words.append("=?UTF-8?B?" + Base64.encode(chunk) + "?=") }
        return words
    }

    /// Whether `text` holds `=?`, the start of an RFC 2047 encoded-word: written as is (or even quoted, which many
    /// clients decode anyway), `=?utf-8?q?…?=` would show the recipient whatever the job encoded in it. Such text is
    /// sent encoded whole, so it decodes to itself.
    static func looksEncoded(_ text: String) -> Bool { text.contains("=?") }

    static func isPrintableASCII(_ text: String) -> Bool {
        text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }

    private static func isAtext(_ s: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(s) || ("A"..."Z").contains(s) || ("0"..."9").contains(s)
            || "!#$%&'*+-/=?^_`{|}~".unicodeScalars.contains(s)
    }
}
