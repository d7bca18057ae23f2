public import Crypto
import ConveyorCore
import Foundation

/// The application server's VAPID key (RFC 8292): a P-256 signing key whose public half the front end passes to
/// `pushManager.subscribe({applicationServerKey})`, and which signs one ES256 JWT per push service origin.
public struct VAPIDKey: Sendable {
    public let privateKey: P256.Signing.PrivateKey

    public init(privateKey: P256.Signing.PrivateKey) {
        self.privateKey = privateKey
    }

    /// A new random key.
    public static func generate() -> VAPIDKey { VAPIDKey(privateKey: P256.Signing.PrivateKey()) }

    /// A key written as PEM (`PRIVATE KEY` or `EC PRIVATE KEY`) or as the base64url private scalar (32 bytes, what
    /// web-push's `generateVAPIDKeys` prints).
    public init(text: String) throws(VAPIDKeyError) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("-----BEGIN") {
            do {
                privateKey = try P256.Signing.PrivateKey(pemRepresentation: trimmed)
            } catch {
                throw VAPIDKeyError("is PEM but not a P-256 private key (\(error))")
            }
            return
        }
        guard trimmed.utf8.count <= 64, let raw = Base64URL.decode(trimmed) else {
            throw VAPIDKeyError("is neither PEM nor a base64url private key")
        }
        guard raw.count == 32 else { throw VAPIDKeyError("decodes to \(raw.count) bytes; a P-256 private key is 32") }
        do {
            privateKey = try P256.Signing.PrivateKey(rawRepresentation: raw)
        } catch {
            throw VAPIDKeyError("is not a valid P-256 private key")
        }
    }

    /// The value of `CONVEYOR_VAPID_PRIVATE_KEY`: the path of a PEM file, or the key itself (PEM or base64url).
    public init(setting value: String) throws(VAPIDKeyError) {
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("/") || trimmed.hasPrefix("./") || trimmed.hasSuffix(".pem") {
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: trimmed),
                let size = attributes[.size] as? Int, size <= 16_384,
                let data = FileManager.default.contents(atPath: trimmed)
            else { throw VAPIDKeyError("names a file that cannot be read or is over 16 KiB") }
            try self.init(text: String(decoding: data, as: UTF8.self))
            return
        }
        try self.init(text: trimmed)
    }

    /// The uncompressed public key (65 bytes), base64url: the `k=` of the Authorization header and the front end's
    /// `applicationServerKey`.
    public var publicKeyBase64URL: String { Base64URL.encode(privateKey.publicKey.x963Representation) }

    /// The private scalar, base64url (32 bytes).
    public var privateKeyBase64URL: String { Base64URL.encode(privateKey.rawRepresentation) }

    /// PKCS#8 PEM.
    public var pem: String { privateKey.pemRepresentation }

    /// A signed ES256 JWT: `{"aud": audience, "exp": expiresAt, "sub": subject}`.
    public func token(audience: String, subject: String, expiresAt: Int) throws -> String {
        let header = Base64URL.encode(Array(#"{"typ":"JWT","alg":"ES256"}"#.utf8))
        let claims: [(String, String)] = [("aud", Self.jsonString(audience)), ("exp", String(expiresAt)), ("sub", Self.jsonString(subject))]
        let body = Base64URL.encode(Array(("{" + claims.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}").utf8))
        let input = header + "." + body
        let signature = try privateKey.signature(for: Array(input.utf8))
        return input + "." + Base64URL.encode(signature.rawRepresentation)
    }

    /// `vapid t=<JWT>, k=<public key>` (RFC 8292 §3).
    public func authorization(audience: String, subject: String, expiresAt: Int) throws -> String {
        "vapid t=\(try token(audience: audience, subject: subject, expiresAt: expiresAt)), k=\(publicKeyBase64URL)"
    }

    private static func jsonString(_ text: String) -> String {
        JSONValue.string(text).text
    }
}

/// Why a VAPID key setting cannot be used (the key itself is never quoted).
public struct VAPIDKeyError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "CONVEYOR_VAPID_PRIVATE_KEY \(reason)" }
}
