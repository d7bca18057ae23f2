import Digest
import Foundation

/// The CSRF token a form carries: HMAC-SHA256, under a key drawn at start-up, over the visitor's cookie nonce and user
/// name. A token from another `conveyor web` (another key), another browser (another nonce) or another user does not
/// verify; the cookie alone (which a sibling subdomain might plant) does not either.
struct FormTokenKey: Sendable {
    private let key: [UInt8]

    /// A fresh key of 32 random bytes (each process its own: forms from before a restart ask for a reload).
    init() {
        var generator = SystemRandomNumberGenerator()
        key = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    /// The token for `nonce` (the `conveyor_csrf` cookie) and `user`, 64 hex digits.
    func token(nonce: String, user: String) -> String {
        hmacSHA256(key: key, Array("conveyor-web-form|\(nonce)|\(user)".utf8)).hex
    }

    /// Whether `given` is the token for `nonce` and `user`, compared in constant time.
    func verify(_ given: String, nonce: String, user: String) -> Bool {
        WebSecurity.constantTimeEqual(Array(given.utf8), Array(token(nonce: nonce, user: user).utf8))
    }
}
