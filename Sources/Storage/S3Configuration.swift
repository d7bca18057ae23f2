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

    /// Reads the S3 settings of `MediaSettings` (the AWS SDKs' standard variables plus Conveyor's own): the access key
    /// and secret are required; the region is `AWS_REGION`, else `AWS_DEFAULT_REGION`; the endpoint
    /// `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`; path style defaults on when an endpoint is given. A missing or
    /// malformed value is an `InvalidConfiguration` naming the setting.
    public init(settings: SettingsReader) throws(JobFailure) {
        typealias M = MediaSettings
        try settings.refuse(M.all)
        func value(_ setting: Setting) -> (name: String, text: String)? {
            guard let text = settings.text(setting)?.trimmingBlanks, !text.isEmpty else { return nil }
            return (setting.name, text)
        }
        // AWS_REGION's default applies only when AWS_DEFAULT_REGION is unset too.
        let regionSetting = (settings.isSet(M.awsRegion) ? value(M.awsRegion) : nil) ?? value(M.awsDefaultRegion) ?? value(M.awsRegion)
        region = regionSetting?.text ?? "us-east-1"
        if let regionSetting, !Self.isRegionName(regionSetting.text) {
            throw .permanent(.invalidConfiguration, "\(regionSetting.name)=\(regionSetting.text) is not a region name like us-east-1")
        }
        guard let id = value(M.awsAccessKeyId) else {
            throw .permanent(.invalidConfiguration, "\(M.awsAccessKeyId.name) is not set: the S3 media store needs credentials")
        }
        guard id.text.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
            throw .permanent(.invalidConfiguration, "\(id.name) contains blanks or non-ASCII characters")
        }
        accessKeyID = id.text
        guard let secret = value(M.awsSecretAccessKey) else {
            throw .permanent(.invalidConfiguration, "\(M.awsSecretAccessKey.name) is not set: the S3 media store needs credentials")
        }
        guard secret.text.utf8.allSatisfy({ $0 >= 32 && $0 != 127 }) else {
            throw .permanent(.invalidConfiguration, "\(secret.name) contains control characters")
        }
        secretAccessKey = secret.text
        sessionToken = value(M.awsSessionToken)?.text
        if let token = sessionToken, !token.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) {
            throw .permanent(.invalidConfiguration, "\(M.awsSessionToken.name) contains blanks or non-ASCII characters")
        }

        let override = value(M.awsEndpointUrlS3) ?? value(M.awsEndpointUrl)
        if let override {
            endpoint = try S3Endpoint(parsing: override.text, variable: override.name).base
        } else {
            endpoint = "https://s3.\(region).amazonaws.com"
        }
        pathStyle = settings.isSet(M.s3PathStyle) ? settings.bool(M.s3PathStyle) : override != nil
        caFile = value(M.s3CaFile)?.text
        if let caFile, access(caFile, R_OK) != 0 {
            throw .permanent(.invalidConfiguration, "\(M.s3CaFile.name)=\(caFile) is not a readable file")
        }
        // The declared ranges keep these products far inside Int.
        multipartThreshold = settings.int(M.s3MultipartMb) << 20
        partSize = settings.int(M.s3PartMb) << 20
        parallelParts = settings.int(M.s3ParallelParts)
    }

    /// The same from a plain environment, through a reader of the families' settings.
    public init(environment: [String: String]) throws(JobFailure) {
        try self.init(settings: SettingsReader(families: environment))
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
