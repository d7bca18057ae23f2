import Foundation

/// The dashboard's defences, applied to every request by `Dashboard`: HTTP Basic when a password is set, a CSRF
/// token (double-submit: a `SameSite=Strict` cookie echoed in every form) plus an Origin check on every POST, and
/// the security headers on every response.
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

    /// Why a POST is refused, or nil when it may proceed: the form's token must equal the cookie's, and a browser's
    /// `Origin` (or `Sec-Fetch-Site`) must say the request came from this site.
    static func refusal(_ request: WebRequest) -> String? {
        guard let cookie = request.cookies[csrfCookie], isToken(cookie) else { return "missing CSRF cookie: reload the page and try again" }
        guard let field = request.field("csrf"), constantTimeEqual(Array(field.utf8), Array(cookie.utf8)) else {
            return "CSRF token mismatch: reload the page and try again"
        }
        if let site = request.headers["sec-fetch-site"], site == "cross-site" { return "cross-site request refused" }
        if let origin = request.headers["origin"], origin != "null", let host = request.headers["host"] {
            let bare = origin.replacingOccurrences(of: "https://", with: "").replacingOccurrences(of: "http://", with: "")
            if bare != host { return "request from another origin (\(origin)) refused" }
        } else if request.headers["origin"] == "null" {
            return "request from an opaque origin refused"
        }
        return nil
    }
}
