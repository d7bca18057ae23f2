/// What a GET or HEAD learned about an object.
public struct S3ObjectInfo: Sendable, Equatable {
    public var size: Int
    public var contentType: String?
    /// Without the surrounding quotes.
    public var etag: String?
    public var cacheControl: String?

    public init(size: Int, contentType: String? = nil, etag: String? = nil, cacheControl: String? = nil) {
        self.size = size
        self.contentType = contentType
        self.etag = etag
        self.cacheControl = cacheControl
    }
}

/// One HTTP request to the store, for metrics: bytes and requests by operation and outcome, and latency.
public struct S3RequestEvent: Sendable, Equatable {
    /// `get`, `put`, `head`, `delete`, `create_bucket`, `create_multipart`, `upload_part`, `complete_multipart`,
    /// `abort_multipart`, `list_multipart`.
    public var operation: String
    /// `ok`, `not_found`, `denied`, `unavailable`, `refused` (too large, other 4xx), `cancelled`, `local_error`.
    public var outcome: String
    /// Body bytes sent or received.
    public var bytes: Int
    public var seconds: Double

    public init(operation: String, outcome: String, bytes: Int, seconds: Double) {
        self.operation = operation
        self.outcome = outcome
        self.bytes = bytes
        self.seconds = seconds
    }
}

/// A multipart upload begun and neither completed nor aborted (ListMultipartUploads).
public struct S3MultipartUpload: Sendable, Equatable {
    public var key: String
    public var uploadID: String

    public init(key: String, uploadID: String) {
        self.key = key
        self.uploadID = uploadID
    }
}

/// The operations of `S3RequestEvent.operation`.
enum S3Operation: String, Sendable {
    case get, put, head, delete
    case createBucket = "create_bucket"
    case createMultipart = "create_multipart"
    case uploadPart = "upload_part"
    case completeMultipart = "complete_multipart"
    case abortMultipart = "abort_multipart"
    case listMultipart = "list_multipart"
}
