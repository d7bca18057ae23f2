public import Crypto
import Foundation

/// RFC 8291 message encryption for Web Push: one `aes128gcm` record (RFC 8188) keyed by ECDH between a fresh
/// application-server key and the subscription's `p256dh`, mixed with its `auth` secret.
public enum WebPushEncryption {
    /// The record size written in the header; one record carries the whole message.
    public static let recordSize: UInt32 = 4096
    /// The largest plaintext one 4096-octet record holds: 4096 − 86 (header) − 16 (tag) − 1 (delimiter) (RFC 8291 §4).
    public static let maxPlaintextBytes = 3993

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case plaintextTooLarge(Int)
        case badSalt(Int)
        case badAuthSecret(Int)

        public var description: String {
            switch self {
            case .plaintextTooLarge(let n): "payload is \(n) bytes; at most \(WebPushEncryption.maxPlaintextBytes) fit one Web Push record"
            case .badSalt(let n): "salt must be 16 bytes, got \(n)"
            case .badAuthSecret(let n): "auth secret must be 16 bytes, got \(n)"
            }
        }
    }

    /// The `aes128gcm` body for `plaintext`: salt ‖ rs ‖ idlen ‖ the server's public key ‖ ciphertext.
    /// - Parameters:
    ///   - serverKey: the application server's ephemeral key; a fresh one per message unless a test fixes it.
    ///   - salt: 16 random bytes unless a test fixes them.
    public static func encrypt(
        _ plaintext: [UInt8], userAgentKey: P256.KeyAgreement.PublicKey, authSecret: [UInt8],
        serverKey: P256.KeyAgreement.PrivateKey = P256.KeyAgreement.PrivateKey(), salt: [UInt8]? = nil
    ) throws -> [UInt8] {
        guard plaintext.count <= maxPlaintextBytes else { throw Failure.plaintextTooLarge(plaintext.count) }
        guard authSecret.count == 16 else { throw Failure.badAuthSecret(authSecret.count) }
        var generator = SystemRandomNumberGenerator()
        let salt = salt ?? (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        guard salt.count == 16 else { throw Failure.badSalt(salt.count) }

        let userAgentPublic = [UInt8](userAgentKey.x963Representation)
        let serverPublic = [UInt8](serverKey.publicKey.x963Representation)
        let shared = try serverKey.sharedSecretFromKeyAgreement(with: userAgentKey)
        // RFC 8291 §3.4: IKM = HKDF(auth_secret, ecdh_secret, "WebPush: info" ‖ 0x00 ‖ ua_public ‖ as_public, 32).
        let keyInfo = Array("WebPush: info".utf8) + [0] + userAgentPublic + serverPublic
        let ikm = shared.hkdfDerivedSymmetricKey(using: SHA256.self, salt: authSecret, sharedInfo: keyInfo, outputByteCount: 32)
        // RFC 8188 §2.2-2.3: CEK and nonce from the salt; one record, so the sequence number is 0 and the nonce is as derived.
        let cek = HKDF<SHA256>.deriveKey(inputKeyMaterial: ikm, salt: salt, info: Array("Content-Encoding: aes128gcm".utf8) + [0], outputByteCount: 16)
        let nonce = HKDF<SHA256>.deriveKey(inputKeyMaterial: ikm, salt: salt, info: Array("Content-Encoding: nonce".utf8) + [0], outputByteCount: 12)
        let nonceBytes = nonce.withUnsafeBytes { Array($0) }
        // The last (only) record's delimiter is 0x02; no further padding.
        let sealed = try AES.GCM.seal(plaintext + [2], using: cek, nonce: AES.GCM.Nonce(data: nonceBytes))

        var body = salt
        body.reserveCapacity(86 + plaintext.count + 17)
        body += [UInt8(truncatingIfNeeded: recordSize >> 24), UInt8(truncatingIfNeeded: recordSize >> 16),
                 UInt8(truncatingIfNeeded: recordSize >> 8), UInt8(truncatingIfNeeded: recordSize)]
        body.append(UInt8(serverPublic.count))
        body += serverPublic
        body += sealed.ciphertext
        body += sealed.tag
        return body
    }
}
