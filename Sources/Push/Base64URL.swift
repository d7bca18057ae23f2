import Foundation

/// base64url without padding (RFC 4648 §5), as Web Push keys, salts and JWTs are written.
public enum Base64URL {
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var text = Data(bytes).base64EncodedString()
        while text.last == "=" { text.removeLast() }
        return String(text.map { $0 == "+" ? "-" : $0 == "/" ? "_" : $0 })
    }

    /// The bytes of `text`, or nil when it is not base64url. Trailing `=` padding is accepted (some browsers' JSON
    /// and some key tools write it); standard base64's `+` and `/` are not, and neither is a text whose last
    /// character carries bits that are not zero (one text per byte string).
    public static func decode(_ text: String) -> [UInt8]? {
        var chars = Substring(text)
        while chars.last == "=" { chars.removeLast() }
        guard chars.utf8.allSatisfy({ isURLSafe($0) }), chars.utf8.count % 4 != 1 else { return nil }
        var standard = String(chars.map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 })
        standard += String(repeating: "=", count: (4 - standard.utf8.count % 4) % 4)
        guard let data = Data(base64Encoded: standard) else { return nil }
        let bytes = [UInt8](data)
        guard encode(bytes) == chars else { return nil }
        return bytes
    }

    private static func isURLSafe(_ c: UInt8) -> Bool {
        (0x41...0x5a).contains(c) || (0x61...0x7a).contains(c) || (0x30...0x39).contains(c) || c == 0x2d || c == 0x5f
    }
}
