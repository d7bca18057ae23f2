public import ConveyorCore
public import Crypto
import Foundation

/// One push, its arguments checked at the border: every value is bounded and typed before anything is encrypted
/// or sent, and every refusal is a permanent `InvalidArguments` (or `PushEndpointRefused`, `PayloadTooLarge`) naming
/// the argument.
public struct PushSendRequest: Sendable {
    public static let argumentNames: Set<String> = ["subscription", "payload", "ttl", "urgency", "topic", "subscription_id"]
    /// web-push's default: four weeks. Also the largest TTL accepted (what push services keep a message at most).
    public static let defaultTTL = 2_419_200
    public static let ttlRange = 0...2_419_200
    public static let urgencies: Set<String> = ["very-low", "low", "normal", "high"]
    public static let maxSubscriptionIDBytes = 256

    public var endpoint: PushEndpoint
    public var userAgentKey: P256.KeyAgreement.PublicKey
    public var authSecret: [UInt8]
    /// The plaintext: a string's UTF-8, or any other JSON value's compact text; nil sends a push without payload.
    public var payload: [UInt8]?
    public var ttl: Int
    public var urgency: String?
    public var topic: String?
    public var subscriptionID: String?

    /// `push.send`'s arguments.
    public init(arguments: JSONObject, allowInsecureLoopback: Bool) throws(JobFailure) {
        for key in arguments.keys where !Self.argumentNames.contains(key) {
            throw .invalidArguments("unknown argument \(PushText.quoted(key, max: 64)); allowed: \(Self.argumentNames.sorted().joined(separator: ", "))")
        }
        guard let subscription = arguments["subscription"] else { throw .invalidArguments("subscription is required") }
        try self.init(subscription: subscription, message: arguments, allowInsecureLoopback: allowInsecureLoopback)
        subscriptionID = try Self.subscriptionID(arguments["subscription_id"], name: "subscription_id")
    }

    /// A subscription (the browser's `PushSubscription` JSON) with the message arguments of `message`.
    init(subscription: JSONValue, message: JSONObject, allowInsecureLoopback: Bool, name: String = "subscription") throws(JobFailure) {
        guard let object = subscription.objectValue else { throw .invalidArguments("\(name) must be an object, got \(subscription.typeName)") }
        guard let endpointValue = object["endpoint"] else { throw .invalidArguments("\(name).endpoint is required") }
        guard let endpointText = endpointValue.stringValue else {
            throw .invalidArguments("\(name).endpoint must be a string, got \(endpointValue.typeName)")
        }
        endpoint = try PushEndpoint(endpointText, allowInsecureLoopback: allowInsecureLoopback)
        guard let keys = object["keys"]?.objectValue else { throw .invalidArguments("\(name).keys must be an object with p256dh and auth") }
        let p256dh = try Self.base64URL(keys["p256dh"], name: "\(name).keys.p256dh", bytes: 65)
        do {
            userAgentKey = try P256.KeyAgreement.PublicKey(x963Representation: p256dh)
        } catch {
            throw .invalidArguments("\(name).keys.p256dh is not a P-256 public key (an uncompressed point on the curve)")
        }
        authSecret = try Self.base64URL(keys["auth"], name: "\(name).keys.auth", bytes: 16)

        (payload, ttl, urgency, topic) = try Self.message(message)
    }

    /// The message arguments every subscription of a fan-out shares: payload, ttl, urgency, topic.
    static func message(_ message: JSONObject) throws(JobFailure) -> (payload: [UInt8]?, ttl: Int, urgency: String?, topic: String?) {
        let payload: [UInt8]?
        var ttl = defaultTTL
        var urgency: String?
        var topic: String?
        switch message["payload"] {
        case nil, .null?: payload = nil
        case .string(let text)?: payload = Array(text.utf8)
        case let value?: payload = value.bytes
        }
        if let payload, payload.count > WebPushEncryption.maxPlaintextBytes {
            throw .permanent(.payloadTooLarge,
                             "payload is \(payload.count) bytes once encoded; a Web Push message holds at most \(WebPushEncryption.maxPlaintextBytes)")
        }
        if let value = message["ttl"], !value.isNull {
            guard case .number = value else { throw .invalidArguments("ttl must be an integer number of seconds, got \(value.typeName)") }
            guard let n = value.intValue, ttlRange.contains(n) else {
                throw .invalidArguments("ttl must be a whole number of seconds in \(ttlRange.lowerBound)...\(ttlRange.upperBound), got \(PushText.quoted(value.text, max: 40))")
            }
            ttl = n
        }
        if let value = message["urgency"], !value.isNull {
            guard let text = value.stringValue, urgencies.contains(text) else {
                throw .invalidArguments("urgency must be one of very-low, low, normal, high, got \(PushText.quoted(value.text, max: 40))")
            }
            urgency = text
        }
        if let value = message["topic"], !value.isNull {
            // RFC 8030 §5.4: at most 32 characters of the URL-safe base64 alphabet.
            guard let text = value.stringValue, (1...32).contains(text.utf8.count),
                text.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" })
            else { throw .invalidArguments("topic must be 1-32 characters of A-Z, a-z, 0-9, '-' and '_', got \(PushText.quoted(value.text, max: 40))") }
            topic = text
        }
        return (payload, ttl, urgency, topic)
    }

    /// An optional id the API finds its row by: a string of 1-256 bytes without control characters, or an integer.
    static func subscriptionID(_ value: JSONValue?, name: String) throws(JobFailure) -> String? {
        guard let value, !value.isNull else { return nil }
        switch value {
        case .string(let text):
            guard (1...maxSubscriptionIDBytes).contains(text.utf8.count), !Job.containsControlCharacters(text) else {
                throw .invalidArguments("\(name) must be 1-\(maxSubscriptionIDBytes) bytes without control characters")
            }
            return text
        case .number:
            guard let n = value.intValue else { throw .invalidArguments("\(name) must be a string or a whole number below 2^53, got \(PushText.quoted(value.text, max: 40))") }
            return String(n)
        default:
            throw .invalidArguments("\(name) must be a string or an integer, got \(value.typeName)")
        }
    }

    static func base64URL(_ value: JSONValue?, name: String, bytes: Int) throws(JobFailure) -> [UInt8] {
        guard let value else { throw .invalidArguments("\(name) is required") }
        guard let text = value.stringValue else { throw .invalidArguments("\(name) must be a base64url string, got \(value.typeName)") }
        // 4/3 of the bytes plus padding: anything longer is not this key.
        guard text.utf8.count <= (bytes * 4 + 2) / 3 + 2, let decoded = Base64URL.decode(text) else {
            throw .invalidArguments("\(name) must be base64url of \(bytes) bytes")
        }
        guard decoded.count == bytes else { throw .invalidArguments("\(name) must be \(bytes) bytes, got \(decoded.count)") }
        return decoded
    }
}
