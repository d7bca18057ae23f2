public import ConveyorCore

/// The media store's error classes, shared by every family that reads uploads, whichever store it reads.
extension ErrorClass {
    /// The media root is missing or cannot be created or resolved.
    public static let mediaRootUnavailable: ErrorClass = "MediaRootUnavailable"
    /// A key is absolute, has `.`/`..` components or a NUL, or resolves through a symlink outside the media root.
    public static let pathOutsideMediaRoot: ErrorClass = "PathOutsideMediaRoot"
    /// An output could not be written or moved into place.
    public static let mediaWriteFailed: ErrorClass = "MediaWriteFailed"
    /// The job's `bucket` argument names a bucket the deployment does not allow (`CONVEYOR_S3_ALLOWED_BUCKETS`), or
    /// the store is a local root, which has no buckets: permanent.
    public static let bucketNotAllowed: ErrorClass = "BucketNotAllowed"
    /// The source key names no object in the store (S3 `NoSuchKey`), or no regular file under the media root.
    public static let sourceNotFound: ErrorClass = "SourceNotFound"
    /// The store refused the credentials or the signature (`AccessDenied`, `InvalidAccessKeyId`, `SignatureDoesNotMatch`,
    /// any 403): a configuration problem to alert on, not retried.
    public static let storageAccessDenied: ErrorClass = "StorageAccessDenied"
    /// The store did not answer in time, reset the connection, or answered 5xx, 429 or `SlowDown`: retried with backoff.
    public static let storageUnavailable: ErrorClass = "StorageUnavailable"
    /// The object is larger than the job's limit, or its body is longer than its `Content-Length`.
    public static let storageObjectTooLarge: ErrorClass = "StorageObjectTooLarge"
    /// The store rejected the request (any other 4xx); the message carries the S3 error code and message.
    public static let storageRequestFailed: ErrorClass = "StorageRequestFailed"
    /// The local file an object streams into or out of could not be created, read or written (disk full, or the file
    /// changed while it was uploading); retried.
    public static let storageLocalFileFailed: ErrorClass = "StorageLocalFileFailed"
}
