import ConveyorCore
import Crypto
import Curl
import Testing

@testable import Push

/// Every `push.send` argument checked at the border: hostile values are permanent failures naming the argument.
@Suite struct PushBorderTests {
    static let p256dh = Base64URL.encode(P256.KeyAgreement.PrivateKey().publicKey.x963Representation)
    static let auth = Base64URL.encode([UInt8](repeating: 9, count: 16))

    static func arguments(endpoint: String = "https://push.example.net/send/abc", p256dh: JSONValue? = .string(p256dh),
                          auth: JSONValue? = .string(auth), _ extra: [(String, JSONValue)] = []) -> JSONObject {
        var keys = JSONObject()
        if let p256dh { keys["p256dh"] = p256dh }
        if let auth { keys["auth"] = auth }
        var o: JSONObject = ["subscription": .object(["endpoint": .string(endpoint), "keys": .object(keys)])]
        for (k, v) in extra { o[k] = v }
        return o
    }

    static func refusal(_ arguments: JSONObject, loopback: Bool = false) -> JobFailure? {
        do {
            _ = try PushSendRequest(arguments: arguments, allowInsecureLoopback: loopback)
            return nil
        } catch { return error }
    }

    @Test func aBrowserSubscriptionWithDefaults() throws {
        let r = try PushSendRequest(arguments: Self.arguments(), allowInsecureLoopback: false)
        #expect(r.ttl == 2_419_200)
        #expect(r.payload == nil && r.urgency == nil && r.topic == nil)
        #expect(r.endpoint.origin == "https://push.example.net")
        let port = try PushSendRequest(arguments: Self.arguments(endpoint: "https://Push.Example.net:8443/x?y=1"), allowInsecureLoopback: false)
        #expect(port.endpoint.origin == "https://push.example.net:8443")
        let json = try PushSendRequest(arguments: Self.arguments([("payload", ["title": "hi", "n": 3])]), allowInsecureLoopback: false)
        #expect(json.payload == Array(#"{"title":"hi","n":3}"#.utf8))
    }

    @Test(arguments: [
        "1e308", "-1e308", "1e400", "9223372036854775807", "-9223372036854775808", "-1", "2419201", "1.5", "\"60\"", "true", "[]",
    ])
    func ttlOutOfRangeOrNotAnInteger(_ literal: String) throws {
        let value = try JSONValue(parsing: literal)
        let failure = try #require(Self.refusal(Self.arguments([("ttl", value)])))
        #expect(failure.errorClass == "InvalidArguments" && failure.isPermanent && failure.message.contains("ttl"), "\(failure)")
    }

    @Test func ttlAtItsBounds() throws {
        #expect(try PushSendRequest(arguments: Self.arguments([("ttl", 0)]), allowInsecureLoopback: false).ttl == 0)
        #expect(try PushSendRequest(arguments: Self.arguments([("ttl", 2_419_200)]), allowInsecureLoopback: false).ttl == 2_419_200)
    }

    @Test(arguments: [
        "http://push.example.net/x", "ftp://push.example.net/x", "https://127.0.0.1/x", "https://10.0.0.1/x", "https://[::1]/x",
        "https://2130706433/x", "https://0x7f000001/x", "https://0x7f.1/x", "https://017700000001/x", "https://user:pw@push.example.net/x",
        "https://push.example.net:0/x", "https://push.example.net:65536/x", "https://push.example.net:-1/x", "https://push.example.net/a b",
        "https://push.example.net/a\u{0}b", "https://push.example.net/a\\b", "https://push.example.net/x#frag", "https://push..example.net/x",
        "https://push_example.net/x", "https://exämple.net/x", "https:///x", "", "https://" + String(repeating: "a", count: 64) + ".net/x",
        "https://push.example.net/" + String(repeating: "a", count: 2100), "http://127.0.0.1:8080/x", "http://localhost:8080/x",
    ])
    func hostileEndpointsAreRefusedBeforeAnyConnection(_ endpoint: String) throws {
        let failure = try #require(Self.refusal(Self.arguments(endpoint: endpoint)))
        #expect(failure.errorClass == "PushEndpointRefused" && failure.isPermanent, "\(failure)")
        #expect(!failure.message.contains("\u{0}"))
    }

    @Test func theTestSwitchAllowsOnlyPlainHTTPToTheLoopbackLiteral() throws {
        let ok = try PushSendRequest(arguments: Self.arguments(endpoint: "http://127.0.0.1:8080/x"), allowInsecureLoopback: true)
        #expect(ok.endpoint.isInsecureLoopback && ok.endpoint.origin == "http://127.0.0.1:8080")
        for endpoint in ["http://localhost:8080/x", "https://127.0.0.1:8080/x", "http://127.0.0.2:8080/x", "http://10.0.0.1/x"] {
            let failure = try #require(Self.refusal(Self.arguments(endpoint: endpoint), loopback: true), "\(endpoint)")
            #expect(failure.errorClass == "PushEndpointRefused", "\(endpoint): \(failure)")
        }
        let https = try PushSendRequest(arguments: Self.arguments(endpoint: "https://push.example.net/x"), allowInsecureLoopback: true)
        #expect(!https.endpoint.isInsecureLoopback)
    }

    @Test func keysOfTheWrongLengthOrOffTheCurve() throws {
        let offCurve = Base64URL.encode([4] + [UInt8](repeating: 0, count: 64))
        let compressed = Base64URL.encode([2] + [UInt8](repeating: 1, count: 32))
        let cases: [(JSONValue?, JSONValue?, String)] = [
            (.string(offCurve), .string(Self.auth), "p256dh"), (.string(compressed), .string(Self.auth), "p256dh"),
            (.string("not base64!"), .string(Self.auth), "p256dh"), (nil, .string(Self.auth), "p256dh"), (1, .string(Self.auth), "p256dh"),
            (.string(String(repeating: "A", count: 100_000)), .string(Self.auth), "p256dh"),
            (.string(Self.p256dh), .string(Base64URL.encode([UInt8](repeating: 1, count: 15))), "auth"),
            (.string(Self.p256dh), .string(Base64URL.encode([UInt8](repeating: 1, count: 17))), "auth"), (.string(Self.p256dh), nil, "auth"),
            (.string(Self.p256dh), .string("ab+/"), "auth"),
        ]
        for (p256dh, auth, name) in cases {
            let failure = try #require(Self.refusal(Self.arguments(p256dh: p256dh, auth: auth)))
            #expect(failure.errorClass == "InvalidArguments" && failure.message.contains(name), "\(failure)")
        }
    }

    @Test func payloadIsCheckedBeforeEncrypting() throws {
        let fits = try PushSendRequest(arguments: Self.arguments([("payload", .string(String(repeating: "a", count: 3993)))]), allowInsecureLoopback: false)
        #expect(fits.payload?.count == 3993)
        // 3,992 bytes of text in a JSON string is 3,994 once encoded with its quotes.
        let quoted = try #require(Self.refusal(Self.arguments([("payload", .array([.string(String(repeating: "a", count: 3990))]))])))
        #expect(quoted.errorClass == "PayloadTooLarge" && quoted.isPermanent && quoted.message.contains("3994"), "\(quoted)")
        let huge = try #require(Self.refusal(Self.arguments([("payload", .string(String(repeating: "é", count: 2000)))])))
        #expect(huge.errorClass == "PayloadTooLarge", "\(huge)")
    }

    @Test func urgencyTopicAndSubscriptionID() throws {
        let ok = try PushSendRequest(
            arguments: Self.arguments([("urgency", "very-low"), ("topic", "reply-42_x"), ("subscription_id", 9_007_199_254_740_000)]), allowInsecureLoopback: false)
        #expect(ok.urgency == "very-low" && ok.topic == "reply-42_x" && ok.subscriptionID == "9007199254740000")
        let bad: [(String, JSONValue)] = [
            ("urgency", "urgent"), ("urgency", 1), ("topic", .string(String(repeating: "a", count: 33))), ("topic", "a b"), ("topic", ""),
            ("subscription_id", "a\nb"), ("subscription_id", .string(String(repeating: "x", count: 257))), ("subscription_id", ""),
            ("subscription_id", 1e308), ("subscription_id", .array([])), ("nonsense", 1),
        ]
        for (key, value) in bad {
            let failure = try #require(Self.refusal(Self.arguments([(key, value)])), "\(key)=\(value)")
            #expect(failure.errorClass == "InvalidArguments" && failure.message.contains(key), "\(failure)")
        }
        let noSubscription = try #require(Self.refusal(["payload": "x"]))
        #expect(noSubscription.message.contains("subscription"))
    }

    @Test func restrictedAddressRanges() {
        let filter = CurlConnectFilter()
        for address: [UInt8] in [[127, 0, 0, 1], [10, 1, 2, 3], [172, 16, 0, 1], [172, 31, 255, 255], [192, 168, 1, 1], [169, 254, 169, 254],
                                 [100, 64, 0, 1], [0, 0, 0, 0], [224, 0, 0, 1], [255, 255, 255, 255]] {
            #expect(filter.problem(ipv4: address) != nil, "\(address)")
        }
        for address: [UInt8] in [[8, 8, 8, 8], [172, 32, 0, 1], [142, 250, 1, 1], [100, 128, 0, 1]] {
            #expect(filter.problem(ipv4: address) == nil, "\(address)")
        }
        let loopback6 = [UInt8](repeating: 0, count: 15) + [1]
        let mapped = [UInt8](repeating: 0, count: 10) + [0xff, 0xff, 10, 0, 0, 1]
        let linkLocal: [UInt8] = [0xfe, 0x80] + [UInt8](repeating: 0, count: 13) + [1]
        let ula: [UInt8] = [0xfd, 0x12] + [UInt8](repeating: 0, count: 14)
        let publicV6: [UInt8] = [0x20, 0x01, 0x48, 0x60] + [UInt8](repeating: 0, count: 11) + [0x88]
        for address in [loopback6, mapped, linkLocal, ula, [UInt8](repeating: 0, count: 16)] { #expect(filter.problem(ipv6: address) != nil, "\(address)") }
        #expect(filter.problem(ipv6: publicV6) == nil)
        let standIn = CurlConnectFilter(schemes: ["http"], allowLoopback: true)
        #expect(standIn.problem(ipv4: [127, 0, 0, 1]) == nil && standIn.problem(ipv4: [10, 0, 0, 1]) != nil)
    }
}
