import Curl
import Digest
import Glibc

/// AWS Signature Version 4 in the `Authorization` header, with S3's canonical URI rules: the path is encoded once per
/// segment and never normalised.
struct SigV4Signer: Sendable {
    var accessKeyID: String
    var secretAccessKey: String
    var region: String
    var service: String

    /// What is signed: the request as it goes on the wire.
    struct Request {
        var method: String
        /// Already URI-encoded (`SigV4Signer.encodePath`), exactly as sent.
        var canonicalURI: String
        /// Names and values not yet encoded.
        var query: [(String, String)]
        /// Every header to sign; must include `host` and `x-amz-date` (and for S3 `x-amz-content-sha256`).
        var headers: [HTTPHeader]
        /// Hex SHA-256 of the body.
        var payloadHash: String
    }

    /// The `x-amz-date` stamp, `yyyyMMdd'T'HHmmss'Z'`.
    struct Timestamp: Sendable, Equatable {
        var text: String
        var day: Substring { text.prefix(8) }

        init(_ text: String) { self.text = text }

        init(secondsSince1970 seconds: Int) {
            var time = time_t(seconds)
            var parts = tm()
            gmtime_r(&time, &parts)
            func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
            text = "\(parts.tm_year + 1900)\(two(parts.tm_mon + 1))\(two(parts.tm_mday))T"
                + "\(two(parts.tm_hour))\(two(parts.tm_min))\(two(parts.tm_sec))Z"
        }

        static var now: Timestamp {
            var spec = timespec()
            clock_gettime(CLOCK_REALTIME, &spec)
            return Timestamp(secondsSince1970: spec.tv_sec)
        }
    }

    static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    func canonicalRequest(_ request: Request) -> (text: String, signedHeaders: String) {
        var byName: [String: [String]] = [:]
        for header in request.headers {
            byName[header.name.lowercased(), default: []].append(Self.trimmedValue(header.value))
        }
        let names = byName.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(byName[$0]!.joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")
        let text = [
            request.method, request.canonicalURI, Self.canonicalQuery(request.query), canonicalHeaders, signedHeaders,
            request.payloadHash,
        ].joined(separator: "\n")
        return (text, signedHeaders)
    }

    func scope(_ time: Timestamp) -> String { "\(time.day)/\(region)/\(service)/aws4_request" }

    func stringToSign(canonicalRequest: String, time: Timestamp) -> String {
        ["AWS4-HMAC-SHA256", time.text, scope(time), SHA256Digest.hash(Array(canonicalRequest.utf8)).hex].joined(separator: "\n")
    }

    func signature(stringToSign: String, time: Timestamp) -> String {
        var key = hmacSHA256(key: Array("AWS4\(secretAccessKey)".utf8), Array(time.day.utf8))
        key = hmacSHA256(key: key, Array(region.utf8))
        key = hmacSHA256(key: key, Array(service.utf8))
        key = hmacSHA256(key: key, Array("aws4_request".utf8))
        return hmacSHA256(key: key, Array(stringToSign.utf8)).hex
    }

    /// The `Authorization` header value for `request` signed at `time`.
    func authorization(_ request: Request, time: Timestamp) -> String {
        let (canonical, signedHeaders) = canonicalRequest(request)
        let signature = signature(stringToSign: stringToSign(canonicalRequest: canonical, time: time), time: time)
        return "AWS4-HMAC-SHA256 Credential=\(accessKeyID)/\(scope(time)), SignedHeaders=\(signedHeaders), Signature=\(signature)"
    }

    // MARK: Encoding

    /// Sorted by encoded name, then value; a name without a value gives `name=`.
    static func canonicalQuery(_ query: [(String, String)]) -> String {
        query.map { (encode($0.0), encode($0.1)) }
            .sorted { $0.0 == $1.0 ? $0.1 < $1.1 : $0.0 < $1.0 }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// RFC 3986 percent-encoding of every byte but the unreserved `A-Z a-z 0-9 - _ . ~`, uppercase hex; `/` kept
    /// when `keepSlash` (S3 object keys).
    static func encode(_ text: String, keepSlash: Bool = false) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: "/") where keepSlash:
                out.append(byte)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 15)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Leading and trailing blanks dropped, inner runs of blanks folded to one space.
    static func trimmedValue(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
    }
}
