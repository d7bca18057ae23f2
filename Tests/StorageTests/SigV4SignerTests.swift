import Curl
import Digest
import Testing

@testable import Storage

/// The signer against AWS's published examples: the SigV4 test suite (service `service`, credentials AKIDEXAMPLE) and
/// the S3 API reference's "Signature Calculations for the Authorization Header" examples.
@Suite struct SigV4SignerTests {
    static let suiteSigner = SigV4Signer(
        accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", region: "us-east-1", service: "service")
    static let suiteTime = SigV4Signer.Timestamp("20150830T123600Z")
    static let s3Signer = SigV4Signer(
        accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", region: "us-east-1", service: "s3")
    static let s3Time = SigV4Signer.Timestamp("20130524T000000Z")

    func authorization(_ signer: SigV4Signer, _ time: SigV4Signer.Timestamp, _ method: String, _ uri: String, _ query: [(String, String)],
                       _ headers: [(String, String)], payload: [UInt8] = []) -> String {
        let request = SigV4Signer.Request(
            method: method, canonicalURI: uri, query: query, headers: headers.map { HTTPHeader($0.0, $0.1) },
            payloadHash: SHA256Digest.hash(payload).hex)
        return signer.authorization(request, time: time)
    }

    /// awslabs/aws-c-auth tests/aws-signing-test-suite/v4/get-vanilla-query-order-key-case/header-signed-request.txt:
    /// `GET /?Param2=value2&Param1=value1`, the query sorted by name.
    @Test func getVanillaQueryOrderKeyCase() {
        let value = authorization(
            Self.suiteSigner, Self.suiteTime, "GET", "/", [("Param2", "value2"), ("Param1", "value1")],
            [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")])
        #expect(value == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, "
            + "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
    }

    /// awslabs/aws-c-auth tests/aws-signing-test-suite/v4/get-unreserved/header-signed-request.txt: unreserved characters
    /// stay as they are in the path.
    @Test func getUnreserved() {
        let path = "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        #expect(SigV4Signer.encode(String(path.dropFirst()), keepSlash: true) == String(path.dropFirst()))
        let value = authorization(
            Self.suiteSigner, Self.suiteTime, "GET", path, [], [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")])
        #expect(value.hasSuffix("Signature=07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"))
    }

    /// awslabs/aws-c-auth tests/aws-signing-test-suite/v4/get-vanilla-with-session-token/header-signed-request.txt (and its
    /// context.json for the token).
    @Test func getVanillaWithSessionToken() {
        let value = authorization(
            Self.suiteSigner, Self.suiteTime, "GET", "/", [],
            [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z"),
             ("X-Amz-Security-Token", "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267")])
        #expect(value == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            + "SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8")
    }

    /// awslabs/aws-c-auth tests/aws-signing-test-suite/v4/post-x-www-form-urlencoded/header-signed-request.txt: a body, its
    /// hash signed in `x-amz-content-sha256`, headers sorted by lowercase name.
    @Test func postXWWWFormURLEncoded() {
        let body = Array("Param1=value1".utf8)
        let hash = SHA256Digest.hash(body).hex
        #expect(hash == "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e")
        let value = authorization(
            Self.suiteSigner, Self.suiteTime, "POST", "/", [],
            [("Content-Type", "application/x-www-form-urlencoded"), ("Host", "example.amazonaws.com"), ("Content-Length", "13"),
             ("x-amz-content-sha256", hash), ("X-Amz-Date", "20150830T123600Z")],
            payload: body)
        #expect(value == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            + "SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, "
            + "Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b")
    }

    /// S3 API reference, "Example: GET Object": the canonical request, string to sign and signature as printed there.
    @Test func s3GetObjectExample() {
        let request = SigV4Signer.Request(
            method: "GET", canonicalURI: "/test.txt", query: [],
            headers: [HTTPHeader("Host", "examplebucket.s3.amazonaws.com"), HTTPHeader("Range", "bytes=0-9"),
                      HTTPHeader("x-amz-content-sha256", SigV4Signer.emptyPayloadHash), HTTPHeader("x-amz-date", "20130524T000000Z")],
            payloadHash: SigV4Signer.emptyPayloadHash)
        let (canonical, signedHeaders) = Self.s3Signer.canonicalRequest(request)
        #expect(canonical == """
            GET
            /test.txt

            host:examplebucket.s3.amazonaws.com
            range:bytes=0-9
            x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            x-amz-date:20130524T000000Z

            host;range;x-amz-content-sha256;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        #expect(signedHeaders == "host;range;x-amz-content-sha256;x-amz-date")
        let toSign = Self.s3Signer.stringToSign(canonicalRequest: canonical, time: Self.s3Time)
        #expect(toSign == """
            AWS4-HMAC-SHA256
            20130524T000000Z
            20130524/us-east-1/s3/aws4_request
            7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972
            """)
        #expect(Self.s3Signer.signature(stringToSign: toSign, time: Self.s3Time) == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    /// S3 API reference, "Example: PUT Object": the key `test$file.text` is encoded once (`$` as `%24`) and the body's
    /// hash is signed.
    @Test func s3PutObjectExample() {
        let body = Array("Welcome to Amazon S3.".utf8)
        let hash = SHA256Digest.hash(body).hex
        #expect(hash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let value = authorization(
            Self.s3Signer, Self.s3Time, "PUT", "/" + SigV4Signer.encode("test$file.text", keepSlash: true), [],
            [("Host", "examplebucket.s3.amazonaws.com"), ("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-date", "20130524T000000Z"),
             ("x-amz-storage-class", "REDUCED_REDUNDANCY"), ("x-amz-content-sha256", hash)],
            payload: body)
        #expect(value == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            + "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
            + "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    /// S3 API reference, "Example: GET Bucket (List Objects)": query parameters encoded and sorted.
    @Test func s3ListObjectsExample() {
        let value = authorization(
            Self.s3Signer, Self.s3Time, "GET", "/", [("prefix", "J"), ("max-keys", "2")],
            [("Host", "examplebucket.s3.amazonaws.com"), ("x-amz-date", "20130524T000000Z"),
             ("x-amz-content-sha256", SigV4Signer.emptyPayloadHash)])
        #expect(value.hasSuffix("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"))
    }

    @Test func keysAreEncodedOncePerSegmentAndQueriesWithoutValueGetAnEqualsSign() {
        #expect(SigV4Signer.encode("uploads/2026/a b+c~d/é.jpg", keepSlash: true) == "uploads/2026/a%20b%2Bc~d/%C3%A9.jpg")
        #expect(SigV4Signer.encode("already%20encoded", keepSlash: true) == "already%2520encoded")
        #expect(SigV4Signer.encode("a/b") == "a%2Fb")
        #expect(SigV4Signer.canonicalQuery([("uploads", "")]) == "uploads=")
        #expect(SigV4Signer.canonicalQuery([("uploadId", "x/y=z"), ("partNumber", "10")]) == "partNumber=10&uploadId=x%2Fy%3Dz")
        #expect(SigV4Signer.trimmedValue("  a   b \t c  ") == "a b c")
    }

    @Test func timestampsAreUTC() {
        #expect(SigV4Signer.Timestamp(secondsSince1970: 1_369_353_600).text == "20130524T000000Z")
        #expect(SigV4Signer.Timestamp(secondsSince1970: 1_440_938_160).text == "20150830T123600Z")
    }

    @Test func hmacMatchesRFC4231() {
        // RFC 4231 test case 2.
        let mac = hmacSHA256(key: Array("Jefe".utf8), Array("what do ya want for nothing?".utf8))
        #expect(mac.hex == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }
}
