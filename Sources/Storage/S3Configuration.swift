public import ConveyorCore
import Glibc

/// How Conveyor reaches an S3-compatible store, from the AWS SDKs' standard variables plus Conveyor's own
/// (docs/configuration.md "Object storage").
public struct S3Configuration: Sendable {
    /// `scheme://host[:port]` without a trailing slash: AWS's regional endpoint unless `AWS_ENDPOINT_URL_S3` (or
    /// `AWS_ENDPOINT_URL`) names another (MinIO, SeaweedFS, R2).
    public var endpoint: String
    public var region: String
    public var accessKeyID: String
    public var secretAccessKey: String
    /// Sent as `x-amz-security-token` (temporary credentials).
    public var sessionToken: String?
    /// `endpoint/bucket/key` rather than `bucket.endpoint/key`.
    public var pathStyle: Bool
    /// A CA bundle to verify the endpoint with (`CURLOPT_CAINFO`); TLS verification itself is always on.
    public var caFile: String?
    /// Files larger than this many bytes go up as multipart uploads.
    public var multipartThreshold: Int
    /// Bytes per part (S3's minimum is 5 MiB; raised when a file would need more than 10 000 parts).
    public var partSize: Int
    /// Parts in flight at once for one upload.
    public var parallelParts: Int

    public init(
        endpoint: String, region: String = "us-east-1", accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil,
        pathStyle: Bool = true, caFile: String? = nil, multipartThreshold: Int = 16 << 20, partSize: Int = 8 << 20,
        parallelParts: Int = 4
    ) {
        self.endpoint = endpoint
        self.region = region
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.pathStyle = pathStyle
        self.caFile = caFile
        self.multipartThreshold = multipartThreshold
        self.partSize = partSize
        self.parallelParts = parallelParts
    }

    /// Reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (both required), `AWS_SESSION_TOKEN`, `AWS_REGION` (else
    /// `AWS_DEFAULT_REGION`), `AWS_ENDPOINT_URL_S3` (else `AWS_ENDPOINT_URL`), `CONVEYOR_S3_PATH_STYLE` (default on when
    /// an endpoint is given), `CONVEYOR_S3_CA_FILE`, `CONVEYOR_S3_MULTIPART_MB`, `CONVEYOR_S3_PART_MB` and
    /// `CONVEYOR_S3_PARALLEL_PARTS`. A missing or malformed value is an `InvalidConfiguration` naming the variable.
    public init(environment env: [String: String]) throws(JobFailure) {
        func value(_ name: String) -> (name: String, text: String)? {
            guard let text = env[name]?.trimmingBlanks, !text.isEmpty else { return nil }
            return (name, text)
        }
        let regionSetting = value("AWS_REGION") ?? value("AWS_DEFAULT_REGION")
        region = regionSetting?.text ?? "us-east-1"
        if let regionSetting, !Self.isRegionName(regionSetting.text) {
            throw .permanent(.invalidConfiguration, "\(regionSetting.name)=\(regionSetting.text) is not a region name like us-east-1")
        }
        guard let id = value("AWS_ACCESS_KEY_ID") else {
            throw .permanent(.invalidConfiguration, "AWS_ACCESS_KEY_ID is not set: the S3 media store needs credentials")
        }
        guard id.text.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
            throw .permanent(.invalidConfiguration, "AWS_ACCESS_KEY_ID contains blanks or non-ASCII characters")
        }
        accessKeyID = id.text
        guard let secret = value("AWS_SECRET_ACCESS_KEY") else {
            throw .permanent(.invalidConfiguration, "AWS_SECRET_ACCESS_KEY is not set: the S3 media store needs credentials")
        }
        guard secret.text.utf8.allSatisfy({ $0 >= 32 && $0 != 127 }) else {
            throw .permanent(.invalidConfiguration, "AWS_SECRET_ACCESS_KEY contains control characters")
        }
        secretAccessKey = secret.text
        sessionToken = value("AWS_SESSION_TOKEN")?.text
        if let token = sessionToken, !token.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) {
            throw .permanent(.invalidConfiguration, "AWS_SESSION_TOKEN contains blanks or non-ASCII characters")
        }

        let override = value("AWS_ENDPOINT_URL_S3") ?? value("AWS_ENDPOINT_URL")
        if let override {
            endpoint = try S3Endpoint(parsing: override.text, variable: override.name).base
        } else {
            endpoint = "https://s3.\(region).amazonaws.com"
        }
        pathStyle = try EnvironmentSwitch.value("CONVEYOR_S3_PATH_STYLE", in: env, default: override != nil)
        caFile = value("CONVEYOR_S3_CA_FILE")?.text
        if let caFile, access(caFile, R_OK) != 0 {
            throw .permanent(.invalidConfiguration, "CONVEYOR_S3_CA_FILE=\(caFile) is not a readable file")
        }
        multipartThreshold = try EnvironmentNumber.int("CONVEYOR_S3_MULTIPART_MB", in: env, default: 16, range: 5...1_048_576) << 20
        partSize = try EnvironmentNumber.int("CONVEYOR_S3_PART_MB", in: env, default: 8, range: 5...5120) << 20
        parallelParts = try EnvironmentNumber.int("CONVEYOR_S3_PARALLEL_PARTS", in: env, default: 4, range: 1...64)
    }

    /// `us-east-1`, `eu-central-2`, `auto` (R2), `garage`: lowercase letters, digits and dashes.
    static func isRegionName(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 64
            && text.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 }
    }
}

extension String {
    var trimmingBlanks: String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars = scalars.dropFirst() }
        while let last = scalars.last, last.isWhitespace { scalars = scalars.dropLast() }
        return String(scalars)
    }
}
