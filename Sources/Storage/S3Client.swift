public import ConveyorCore
import Curl
import Digest
import Glibc
import Tracing

/// An S3 client for media: objects stream between the store and local files, signed with SigV4 over libcurl.
///
/// Transfers block on the client's own threads (never Swift's cooperative pool); each thread borrows a libcurl handle
/// whose kept-alive connection serves the next request. Every call takes the job's deadline and stops at it, and a
/// cancelled task aborts its transfer. Make one per process: its threads and connections live as long as it does.
public final class S3Client: Sendable {
    public let configuration: S3Configuration
    let signer: SigV4Signer
    let endpoint: S3Endpoint
    let onRequest: (@Sendable (S3RequestEvent) -> Void)?
    let pool: BlockingPool
    let handles: CurlHandlePool

    /// - Parameters:
    ///   - onRequest: called after every HTTP request (on a transfer thread), for metrics.
    public init(_ configuration: S3Configuration, onRequest: (@Sendable (S3RequestEvent) -> Void)? = nil) {
        self.configuration = configuration
        signer = SigV4Signer(
            accessKeyID: configuration.accessKeyID, secretAccessKey: configuration.secretAccessKey, region: configuration.region,
            service: "s3")
        // The configuration was validated when it was read from the environment; a hand-built one falls back to its text.
        endpoint = (try? S3Endpoint(parsing: configuration.endpoint, variable: "endpoint"))
            ?? S3Endpoint(scheme: "https", authority: configuration.endpoint, basePath: "")
        self.onRequest = onRequest
        let threads = max(16, configuration.parallelParts * 4)
        pool = BlockingPool(name: "conveyor-s3", maximumThreads: threads)
        handles = CurlHandlePool(maximumIdle: threads)
    }

    /// Streams the object to a new file at `path` (created 0600, removed again on any failure), refusing early from
    /// `Content-Length` and while streaming past `maxBytes`.
    public func get(bucket: String, key: String, to path: String, maxBytes: Int, deadline: ContinuousClock.Instant) async throws(JobFailure) -> S3ObjectInfo {
        try await Traced.span("S3.GetObject", attributes: Self.spanAttributes("GetObject", bucket, key)) { span async throws(JobFailure) in
            let info = try await getObject(bucket: bucket, key: key, to: path, maxBytes: maxBytes, deadline: deadline)
            span.attributes["conveyor.s3.bytes"] = info.size
            return info
        }
    }

    private func getObject(bucket: String, key: String, to path: String, maxBytes: Int, deadline: ContinuousClock.Instant) async throws(JobFailure) -> S3ObjectInfo {
        try await blocking { abort throws(JobFailure) in
            var call = S3Call(.get, "GET", bucket: bucket, key: key)
            let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else {
                throw .transient(.storageLocalFileFailed, "s3 get \(call.name): cannot create \(path): \(String(cString: strerror(errno)))")
            }
            var complete = false
            defer {
                close(descriptor)
                if !complete { unlink(path) }
            }
            call.responseFile = descriptor
            call.maxResponseBytes = maxBytes
            let response = try self.execute(call, deadline: deadline, abort: abort)
            complete = true
            return Self.info(response, size: response.fileBytes)
        }
    }

    /// The object's size, type and ETag; nil when there is no such object.
    public func head(bucket: String, key: String, deadline: ContinuousClock.Instant) async throws(JobFailure) -> S3ObjectInfo? {
        try await blocking { abort throws(JobFailure) in
            var call = S3Call(.head, "HEAD", bucket: bucket, key: key)
            call.accepted = ["404", "NoSuchKey"]
            let response = try self.execute(call, deadline: deadline, abort: abort)
            guard response.status != 404 else { return nil }
            return Self.info(response, size: response.header("content-length").flatMap { Int($0) } ?? 0)
        }
    }

    /// Uploads the file; above `multipartThreshold` as a multipart upload with `parallelParts` parts in flight. Any
    /// failure or cancellation aborts the multipart upload, so no half object ever becomes visible.
    public func put(
        bucket: String, key: String, from path: String, contentType: String, cacheControl: String?, deadline: ContinuousClock.Instant
    ) async throws(JobFailure) {
        try await Traced.span("S3.PutObject", attributes: Self.spanAttributes("PutObject", bucket, key)) { _ async throws(JobFailure) in
            try await putObject(bucket: bucket, key: key, from: path, contentType: contentType, cacheControl: cacheControl, deadline: deadline)
        }
    }

    /// The attributes of an S3 call's span (OpenTelemetry's AWS SDK conventions).
    static func spanAttributes(_ method: String, _ bucket: String, _ key: String) -> SpanAttributes {
        ["rpc.system": "aws-api", "rpc.service": "S3", "rpc.method": "\(method)", "aws.s3.bucket": "\(bucket)", "aws.s3.key": "\(key)"]
    }

    private func putObject(
        bucket: String, key: String, from path: String, contentType: String, cacheControl: String?, deadline: ContinuousClock.Instant
    ) async throws(JobFailure) {
        let name = "s3://\(bucket)/\(key)"
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw .transient(.storageLocalFileFailed, "s3 put \(name): cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            throw .transient(.storageLocalFileFailed, "s3 put \(name): \(path) is not a regular file")
        }
        let headers = [HTTPHeader("Content-Type", contentType)] + (cacheControl.map { [HTTPHeader("Cache-Control", $0)] } ?? [])
        let size = Int64(status.st_size)
        if size > Int64(configuration.multipartThreshold) {
            try await putMultipart(bucket: bucket, key: key, descriptor: descriptor, size: size, headers: headers, deadline: deadline)
            return
        }
        try await blocking { abort throws(JobFailure) in
            var call = S3Call(.put, "PUT", bucket: bucket, key: key)
            call.headers = headers
            call.bodyFile = CurlFileBody(descriptor: descriptor, offset: 0, length: size)
            call.payloadHash = try Self.hash(descriptor: descriptor, offset: 0, length: size, call: call)
            _ = try self.execute(call, deadline: deadline, abort: abort)
        }
    }

    /// Deletes the object; deleting one that does not exist succeeds.
    public func delete(bucket: String, key: String, deadline: ContinuousClock.Instant) async throws(JobFailure) {
        try await blocking { abort throws(JobFailure) in
            var call = S3Call(.delete, "DELETE", bucket: bucket, key: key)
            call.accepted = ["NoSuchKey"]
            _ = try self.execute(call, deadline: deadline, abort: abort)
        }
    }

    /// Creates the bucket (for tests and `make run`); one this account already owns is fine.
    public func createBucket(_ bucket: String, deadline: ContinuousClock.Instant) async throws(JobFailure) {
        if let problem = S3Location.bucketNameProblem(bucket) {
            throw .permanent(.invalidConfiguration, "bucket name \(bucket.debugDescription) \(problem)")
        }
        try await blocking { abort throws(JobFailure) in
            var call = S3Call(.createBucket, "PUT", bucket: bucket, key: nil)
            call.accepted = ["BucketAlreadyOwnedByYou"]
            if self.configuration.region != "us-east-1" {
                call.body = Array((
                    #"<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">"#
                    + "<LocationConstraint>\(self.configuration.region)</LocationConstraint></CreateBucketConfiguration>").utf8)
                call.payloadHash = SHA256Digest.hash(call.body).hex
            }
            _ = try self.execute(call, deadline: deadline, abort: abort)
        }
    }

    // MARK: Plumbing

    /// Runs `body` on the client's threads; cancelling the task signals `body`'s abort signal, which stops its
    /// transfer within about a second.
    func blocking<T: Sendable>(
        cancellable: Bool = true, _ body: @escaping @Sendable (CurlAbortSignal?) throws(JobFailure) -> T
    ) async throws(JobFailure) -> T {
        let abort = cancellable ? CurlAbortSignal() : nil
        do {
            return try await withTaskCancellationHandler {
                try await pool.run { () throws -> T in try body(abort) }
            } onCancel: {
                abort?.signal()
            }
        } catch let failure as JobFailure {
            throw failure
        } catch {
            throw JobFailure(error)
        }
    }

    /// The hex SHA-256 of a file range, for `x-amz-content-sha256`.
    static func hash(descriptor: Int32, offset: Int64, length: Int64, call: S3Call) throws(JobFailure) -> String {
        guard let digest = SHA256Digest.hash(descriptor: descriptor, offset: offset, length: length) else {
            let why = errno == 0 ? "the file ended before byte \(offset + length) (changed while uploading?)" : String(cString: strerror(errno))
            throw .transient(.storageLocalFileFailed, "s3 \(call.operation.rawValue) \(call.name): reading the file: \(why)")
        }
        return digest.hex
    }

    static func info(_ response: HTTPResponse, size: Int) -> S3ObjectInfo {
        S3ObjectInfo(
            size: size, contentType: response.header("content-type"), etag: response.header("etag").map(unquoted),
            cacheControl: response.header("cache-control"))
    }

    static func unquoted(_ text: String) -> String {
        text.count >= 2 && text.hasPrefix("\"") && text.hasSuffix("\"") ? String(text.dropFirst().dropLast()) : text
    }
}
