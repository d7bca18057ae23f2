import Foundation
import Synchronization

/// The dashboard's defences, applied to every request by `Dashboard`: the `Host` allow-list, HTTP Basic when a
/// password is set (with per-address back-off), on every POST a form body, an Origin check and a CSRF token (the HMAC
/// of a `SameSite=Strict` cookie nonce), and the security headers on every response.
enum WebSecurity {
    static let csrfCookie = "conveyor_csrf"

    /// No inline script or style: everything comes from `/assets/`. Images also from `data:` (none are used, but a
    /// browser's own icons may be).
    static let headers: [(String, String)] = [
        ("Content-Security-Policy",
         "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "same-origin"),
        ("Cache-Control", "no-store"),
    ]

    /// The user name a request authenticated with, or nil when it did not (wrong or missing password).
    static func authenticate(_ request: WebRequest, password: String) -> String? {
        guard let header = request.headers["authorization"], header.lowercased().hasPrefix("basic "),
            let decoded = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
            let colon = decoded.firstIndex(of: UInt8(ascii: ":"))
        else { return nil }
        let user = String(decoding: decoded[decoded.startIndex..<colon], as: UTF8.self)
        let given = Array(decoded[decoded.index(after: colon)...])
        return constantTimeEqual(given, Array(password.utf8)) ? (user.isEmpty ? "-" : user) : nil
    }

    /// Compares every byte whatever the first difference, so the time taken says nothing about the secret.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            difference |= x ^ y
        }
        return difference == 0
    }

    /// 32 random bytes, hex.
    static func newToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    static func isToken(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// Why a POST is refused, or nil when it may proceed: the body must be a URL-encoded form (the only kind the
    /// pages send; `text/plain`, JSON and multipart, which other sites can post without a preflight or which no form
    /// here uses, are 415), a browser's `Sec-Fetch-Site` must say same-origin, its `Origin` (or, without one, its
    /// `Referer`) must name the host the request was sent to, and the form's token must be the HMAC of the visitor's
    /// cookie nonce under this process's key.
    static func refusal(_ request: WebRequest, key: FormTokenKey, user: String) -> WebFailure? {
        let type = (request.headers["content-type"] ?? "").split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard type == "application/x-www-form-urlencoded" else {
            return WebFailure(status: 415, heading: "Unsupported body", message: "only application/x-www-form-urlencoded forms are accepted")
        }
        if let site = request.headers["sec-fetch-site"], site != "same-origin" {
            return WebFailure(status: 403, heading: "Refused", message: "request from another site (Sec-Fetch-Site: \(site)) refused")
        }
        let host = (request.headers["host"] ?? "").lowercased()
        if let origin = request.headers["origin"] {
            guard origin != "null" else { return WebFailure(status: 403, heading: "Refused", message: "request from an opaque origin refused") }
            guard authority(ofURL: origin) == host else {
                return WebFailure(status: 403, heading: "Refused", message: "request from another origin (\(origin)) refused")
            }
        } else if let referer = request.headers["referer"] {
            guard authority(ofURL: referer) == host else {
                return WebFailure(status: 403, heading: "Refused", message: "request from another page (Referer \(referer)) refused")
            }
        } else {
            return WebFailure(status: 403, heading: "Refused", message: "a form post without Origin or Referer is refused: post from the dashboard's pages")
        }
        guard let cookie = request.cookies[csrfCookie], isToken(cookie) else {
            return WebFailure(status: 403, heading: "Refused", message: "missing CSRF cookie: reload the page and try again")
        }
        guard let field = request.field("csrf"), key.verify(field, nonce: cookie, user: user) else {
            return WebFailure(status: 403, heading: "Refused", message: "CSRF token mismatch: reload the page and try again")
        }
        return nil
    }

    /// `host[:port]` of an absolute http(s) URL, lowercased; nil for anything else.
    static func authority(ofURL text: String) -> String? {
        let lower = text.lowercased()
        let rest: Substring
        if lower.hasPrefix("http://") { rest = lower.dropFirst(7) } else if lower.hasPrefix("https://") { rest = lower.dropFirst(8) } else { return nil }
        let end = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = rest[..<end]
        return authority.contains("@") ? nil : String(authority)
    }
}

/// Which `Host` values the dashboard answers (DNS rebinding: a page on `evil.example` whose name now resolves to this
/// machine sends `Host: evil.example`). Allowed: the bound address with the bound port; when bound to loopback also
/// `127.0.0.1`, `localhost` and `[::1]` with that port; when bound to every interface (`0.0.0.0`, `::`) any IP literal
/// with that port (an IP literal cannot be rebound); and every `CONVEYOR_WEB_HOSTS` entry (`name` matches any port,
/// `name:port` that port, a missing port being 80 or 443).
struct HostAllowList: Sendable {
    let bound: String
    let extra: [WebConfiguration.AllowedHost]

    init(configuration: WebConfiguration) {
        bound = configuration.host.lowercased()
        extra = configuration.allowedHosts
    }

    /// Whether a request with this `Host` (nil: none sent) may be answered, with the server listening on `port`.
    func allows(_ header: String?, port: Int) -> Bool {
        guard let header, let (host, given) = Self.split(header.lowercased()) else { return false }
        for entry in extra where entry.host == host {
            guard let wanted = entry.port else { return true }
            if given == wanted || (given == nil && (wanted == 80 || wanted == 443)) { return true }
        }
        let samePort = given == port || (given == nil && port == 80)
        guard samePort else { return false }
        if host == bound { return true }
        if WebConfiguration.isLoopback(bound) { return host == "127.0.0.1" || host == "localhost" || host == "::1" }
        if bound == "0.0.0.0" || bound == "::" { return Self.isIPLiteral(host) }
        return false
    }

    /// `host` (brackets removed from IPv6) and port of `host[:port]`; nil when malformed.
    static func split(_ text: String) -> (String, Int?)? {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if rest.isEmpty { return (host, nil) }
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()), (1...65535).contains(port) else { return nil }
            return (host, port)
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard !text.isEmpty, parts.count <= 2, !parts[0].isEmpty else { return nil }
        if parts.count == 1 { return (text, nil) }
        guard let port = Int(parts[1]), (1...65535).contains(port) else { return nil }
        return (String(parts[0]), port)
    }

    static func isIPLiteral(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}

/// Per-address back-off after wrong passwords: from the 5th failure within a minute on, each further failure doubles
/// the time that address must wait (1 s, 2 s, 4 s … at most 5 min); a request inside that time is a 429 with
/// `Retry-After`, whatever password it carries. A right password clears the address. At most 10,000 addresses are
/// tracked (the stalest go first).
final class LoginThrottle: Sendable {
    struct Record {
        var failures: Int
        var windowStart: Double
        var blockedUntil: Double
        var lockouts: Int
    }

    static let freeFailures = 5
    static let window = 60.0
    static let maxDelay = 300.0
    static let maxAddresses = 10_000

    private let records = Mutex<[String: Record]>([:])

    /// Seconds `address` must still wait, or nil when it may try.
    func wait(_ address: String, now: Double) -> Double? {
        records.withLock { table in
            guard let r = table[address], r.blockedUntil > now else { return nil }
            return r.blockedUntil - now
        }
    }

    /// Records a wrong password; returns the failures counted in the current minute.
    func failed(_ address: String, now: Double) -> Int {
        records.withLock { table in
            var r = table[address] ?? Record(failures: 0, windowStart: now, blockedUntil: 0, lockouts: 0)
            if now - r.windowStart > Self.window && r.blockedUntil <= now {
                r.failures = 0
                r.windowStart = now
                // A quiet minute after the last lock-out starts the doubling over.
                if now - r.blockedUntil > Self.window { r.lockouts = 0 }
            }
            r.failures = min(r.failures + 1, 1_000_000)
            if r.failures >= Self.freeFailures {
                r.lockouts = min(r.lockouts + 1, 30)
                r.blockedUntil = now + min(Self.maxDelay, pow(2, Double(r.lockouts - 1)))
            }
            if table[address] == nil, table.count >= Self.maxAddresses,
                let stalest = table.min(by: { max($0.value.windowStart, $0.value.blockedUntil) < max($1.value.windowStart, $1.value.blockedUntil) })?.key
            {
                table[stalest] = nil
            }
            table[address] = r
            return r.failures
        }
    }

    func succeeded(_ address: String) {
        _ = records.withLock { $0.removeValue(forKey: address) }
    }
}
