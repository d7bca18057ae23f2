public import ConveyorCore
import Foundation

/// A subscription's `endpoint`, checked as the untrusted URL it is (it comes from a browser, through the API):
/// `https` only, a DNS name (no IP literal in any spelling), an optional port, a path and query of URL characters,
/// no user info, no fragment, at most 2,048 bytes. Where the name resolves is checked later, at connect
/// (`CurlConnectFilter`). With the test-only switch, `http://127.0.0.1:port/...` is also accepted.
public struct PushEndpoint: Sendable, Equatable {
    public static let maxBytes = 2048

    public let url: String
    /// `scheme://host[:port]`: the VAPID JWT's `aud`, and the key of per-service limits.
    public let origin: String
    public let host: String
    /// True only for the insecure loopback stand-in (`http://127.0.0.1`).
    public let isInsecureLoopback: Bool

    /// - Parameters:
    ///   - allowInsecureLoopback: `CONVEYOR_PUSH_ALLOW_INSECURE_LOOPBACK=1`; tests only.
    public init(_ text: String, allowInsecureLoopback: Bool = false) throws(JobFailure) {
        func refuse(_ why: String) -> JobFailure {
            .permanent(.pushEndpointRefused, "subscription.endpoint \(PushText.quoted(text, max: 120)): \(why)")
        }
        guard !text.isEmpty else { throw refuse("is empty") }
        guard text.utf8.count <= Self.maxBytes else { throw refuse("is \(text.utf8.count) bytes; at most \(Self.maxBytes)") }
        let lowered = text.lowercased()
        let scheme: String
        if lowered.hasPrefix("https://") {
            scheme = "https"
        } else if lowered.hasPrefix("http://") {
            scheme = "http"
        } else {
            throw refuse("must be an https:// URL")
        }
        let rest = text.dropFirst(scheme.count + 3)
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = String(rest[..<authorityEnd])
        let tail = rest[authorityEnd...]
        guard !authority.contains("@") else { throw refuse("must not carry user info") }
        guard !tail.contains("#") else { throw refuse("must not carry a fragment") }
        guard tail.unicodeScalars.allSatisfy(Self.isURLCharacter) else {
            throw refuse("path and query may hold only URL characters (no spaces, control characters, backslashes or non-ASCII)")
        }
        var host = authority
        var port: Int?
        if authority.hasPrefix("[") { throw refuse("must name a host, not an IP address") }
        if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            let digits = authority[authority.index(after: colon)...]
            guard (1...5).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(digits), (1...65_535).contains(n) else {
                throw refuse("port must be 1-65535")
            }
            port = n
        }
        host = host.lowercased()
        if let problem = Self.hostProblem(host) { throw refuse(problem) }
        let loopbackStandIn = allowInsecureLoopback && scheme == "http" && host == "127.0.0.1"
        if scheme == "http" && !loopbackStandIn { throw refuse("must be an https:// URL") }
        if !loopbackStandIn, Self.isIPLiteral(host) { throw refuse("must name a host, not an IP address") }
        self.url = text
        self.host = host
        self.isInsecureLoopback = loopbackStandIn
        let defaultPort = scheme == "https" ? 443 : 80
        self.origin = scheme + "://" + host + (port.map { $0 == defaultPort ? "" : ":\($0)" } ?? "")
    }

    /// Why `host` is not a DNS name Conveyor connects to, or nil.
    static func hostProblem(_ host: String) -> String? {
        guard !host.isEmpty else { return "has no host" }
        guard host.utf8.count <= 253 else { return "host is longer than 253 bytes" }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            guard (1...63).contains(label.utf8.count) else { return "host has an empty or over-long label" }
            guard label.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }) else {
                return "host may hold only letters, digits, '-' and '.'"
            }
        }
        return nil
    }

    /// Any spelling libcurl or the resolver would read as an address: dotted quads, a single number, hex or octal
    /// parts (`2130706433`, `0x7f.1`, `017700000001`). A DNS name's last label always holds a letter that is not a
    /// hex prefix.
    static func isIPLiteral(_ host: String) -> Bool {
        guard let last = host.split(separator: ".").last else { return true }
        if last.allSatisfy(\.isNumber) { return true }
        if last.hasPrefix("0x"), last.dropFirst(2).allSatisfy(\.isHexDigit) { return true }
        return false
    }

    /// RFC 3986 unreserved, sub-delims, `:`, `@`, `/`, `?` and `%`.
    static func isURLCharacter(_ c: Unicode.Scalar) -> Bool {
        switch c {
        case "a"..."z", "A"..."Z", "0"..."9": return true
        default: return "-._~!$&'()*+,;=:@/?%".unicodeScalars.contains(c)
        }
    }
}

/// Text from outside, made safe for an error message: control characters dropped, cut to a length.
enum PushText {
    static func quoted(_ text: String, max: Int) -> String {
        let clean = String(String.UnicodeScalarView(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7f }))
        let cut = clean.count > max ? String(clean.prefix(max)) + "…" : clean
        return cut.debugDescription
    }

    /// A push service's reason (its body), bounded and stripped of control characters, for `error_message`.
    static func reason(_ bytes: [UInt8], max: Int = 300) -> String {
        let text = String(decoding: bytes.prefix(max * 4), as: UTF8.self)
        let clean = String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? " " : $0 }))
            .trimmingCharacters(in: .whitespaces)
        return clean.count > max ? String(clean.prefix(max)) + "…" : clean
    }
}
