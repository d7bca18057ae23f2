import Crypto
import Foundation
import Testing

@testable import Push

/// RFC 8291 Appendix A, and the VAPID token's shape (RFC 8292).
@Suite struct WebPushEncryptionTests {
    static let plaintext = "When I grow up, I want to be a watermelon"
    static let serverPrivate = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
    static let serverPublic = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
    static let userAgentPublic = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
    static let authSecret = "BTBZMqHH6r4Tts7J_aSIgg"
    static let salt = "DGv6ra1nlYgDCS1FRnbzlw"
    static let body = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"

    @Test func appendixAKeysAndSaltGiveItsBodyByteForByte() throws {
        let serverKey = try P256.KeyAgreement.PrivateKey(rawRepresentation: try #require(Base64URL.decode(Self.serverPrivate)))
        #expect(Base64URL.encode(serverKey.publicKey.x963Representation) == Self.serverPublic)
        let userAgent = try P256.KeyAgreement.PublicKey(x963Representation: try #require(Base64URL.decode(Self.userAgentPublic)))
        let body = try WebPushEncryption.encrypt(
            Array(Self.plaintext.utf8), userAgentKey: userAgent, authSecret: try #require(Base64URL.decode(Self.authSecret)),
            serverKey: serverKey, salt: try #require(Base64URL.decode(Self.salt)))
        #expect(Base64URL.encode(body) == Self.body)
        #expect(body == Base64URL.decode(Self.body))
    }

    @Test func aFreshKeyAndSaltEveryMessage() throws {
        let userAgent = P256.KeyAgreement.PrivateKey().publicKey
        let auth = [UInt8](repeating: 7, count: 16)
        let a = try WebPushEncryption.encrypt(Array("x".utf8), userAgentKey: userAgent, authSecret: auth)
        let b = try WebPushEncryption.encrypt(Array("x".utf8), userAgentKey: userAgent, authSecret: auth)
        #expect(a.count == 86 + 1 + 1 + 16)
        #expect(a[0..<16] != b[0..<16])
        #expect(a[21..<86] != b[21..<86])
    }

    @Test func theLargestPlaintextFillsOneRecordAndOneMoreByteIsRefused() throws {
        let userAgent = P256.KeyAgreement.PrivateKey().publicKey
        let auth = [UInt8](repeating: 1, count: 16)
        let full = try WebPushEncryption.encrypt([UInt8](repeating: 65, count: 3993), userAgentKey: userAgent, authSecret: auth)
        #expect(full.count == 4096 - 86 + 86)
        #expect(throws: WebPushEncryption.Failure.plaintextTooLarge(3994)) {
            try WebPushEncryption.encrypt([UInt8](repeating: 65, count: 3994), userAgentKey: userAgent, authSecret: auth)
        }
    }

    @Test func base64URLRoundTripsAndRefusesOtherAlphabets() {
        for n in 0..<40 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(Base64URL.decode(Base64URL.encode(bytes)) == bytes)
        }
        #expect(Base64URL.decode("ab+c") == nil)
        #expect(Base64URL.decode("ab/c") == nil)
        #expect(Base64URL.decode("a") == nil)
        #expect(Base64URL.decode("QQ==") == [65])
        // Non-zero leftover bits: a second spelling of the same byte.
        #expect(Base64URL.decode("QR") == nil)
    }

    @Test func vapidTokenIsES256OverItsClaimsAndVerifiesWithThePublicKey() throws {
        let key = VAPIDKey.generate()
        let token = try key.token(audience: "https://push.example.net", subject: "mailto:ops@example.com", expiresAt: 1_900_000_000)
        let parts = token.split(separator: ".").map(String.init)
        #expect(parts.count == 3)
        let header = String(decoding: try #require(Base64URL.decode(parts[0])), as: UTF8.self)
        let claims = String(decoding: try #require(Base64URL.decode(parts[1])), as: UTF8.self)
        #expect(header == #"{"typ":"JWT","alg":"ES256"}"#)
        #expect(claims == #"{"aud":"https://push.example.net","exp":1900000000,"sub":"mailto:ops@example.com"}"#)
        let signature = try P256.Signing.ECDSASignature(rawRepresentation: try #require(Base64URL.decode(parts[2])))
        #expect(key.privateKey.publicKey.isValidSignature(signature, for: Array((parts[0] + "." + parts[1]).utf8)))
        #expect(!key.privateKey.publicKey.isValidSignature(signature, for: Array((parts[0] + "." + parts[1] + "x").utf8)))
    }

    @Test func vapidKeysReadFromPEMAndBase64URL() throws {
        let key = VAPIDKey.generate()
        #expect(try VAPIDKey(text: key.pem).publicKeyBase64URL == key.publicKeyBase64URL)
        #expect(try VAPIDKey(text: key.privateKeyBase64URL).publicKeyBase64URL == key.publicKeyBase64URL)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("vapid-\(UUID().uuidString).pem")
        try key.pem.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(try VAPIDKey(setting: file.path).publicKeyBase64URL == key.publicKeyBase64URL)
        #expect(throws: VAPIDKeyError.self) { try VAPIDKey(text: "not a key") }
        #expect(throws: VAPIDKeyError.self) { try VAPIDKey(text: Base64URL.encode([UInt8](repeating: 0, count: 32))) }
        #expect(throws: VAPIDKeyError.self) { try VAPIDKey(text: Base64URL.encode([UInt8](repeating: 1, count: 31))) }
        #expect(throws: VAPIDKeyError.self) { try VAPIDKey(setting: "/nonexistent/key.pem") }
    }
}
