public import ConveyorCore
import Foundation

/// Where a deployment's media lives: the local media root, or a bucket every worker reaches. Jobs name media by
/// keys either way; helpers only ever see a local root (they have no network), so a job's work runs on a staged
/// root: `staged` makes the job's inputs local files under a root, runs the work, and publishes what the work wrote.
public protocol MediaStore: Sendable {
    /// `file:///srv/media` or `s3://bucket/prefix`, for logs, results and upload rows.
    var location: String { get }

    /// Runs `body` on a local root where each of `inputs` is a file at its key, then publishes every file `body`
    /// left under the root other than the inputs. A local store runs `body` on the media root itself (outputs are
    /// already in place); a remote one downloads the inputs into a private scratch root first and uploads the
    /// outputs after, removing the scratch root on every path. Nested calls (a job whose work runs other jobs'
    /// work, as `media.ingest` does) share the outer call's root: inputs are fetched once, outputs published once.
    func staged<T: Sendable>(
        _ inputs: [MediaInput], jid: String, deadline: ContinuousClock.Instant, _ body: (MediaRoot) async throws -> T
    ) async throws -> T

    /// The store of another bucket, for a job that names one (`"bucket"`): only a bucket store has others, and only
    /// those the deployment allows. Refused with `BucketNotAllowed` otherwise.
    func bucket(_ name: String) throws(JobFailure) -> any MediaStore
}

extension MediaStore {
    public func bucket(_ name: String) throws(JobFailure) -> any MediaStore {
        throw .permanent(.bucketNotAllowed, "bucket \(name.debugDescription): this worker's media store (\(location)) has no buckets to choose from")
    }

    /// The store a job works on: this one, or the bucket its optional `"bucket"` argument names (as imgproxy's
    /// allowed buckets: the deployment lists them in `CONVEYOR_S3_ALLOWED_BUCKETS`).
    public func forJob(_ job: JobContext) throws(JobFailure) -> any MediaStore {
        guard let value = job.arguments["bucket"] else { return self }
        guard let name = value.stringValue, !name.isEmpty else {
            throw .invalidArguments("\(job.jobClass) jid=\(job.jid): bucket must be a non-empty string, got \(value.typeName)")
        }
        do { return try bucket(name) } catch { throw error.with(message: "\(job.jobClass) jid=\(job.jid): \(error.message)") }
    }

    /// A job's result as the API reads it: `"store"` names where its keys live (`file:///srv/media`,
    /// `s3://bucket/prefix`). On a store that is not the local root, the helpers' `path`s are gone with the scratch
    /// root they pointed into, so they are left out (at the top and in arrays of objects such as `variants`).
    public func locating(_ result: JSONValue) -> JSONValue {
        guard case .object(var object) = result else { return result }
        let local = self is LocalMediaStore
        if !local {
            object["path"] = nil
            for (key, value) in object {
                guard case .array(let items) = value else { continue }
                object[key] = .array(items.map { item in
                    guard case .object(var inner) = item else { return item }
                    inner["path"] = nil
                    return .object(inner)
                })
            }
        }
        object["store"] = .string(location)
        return .object(object)
    }
}

/// One object a job reads.
public struct MediaInput: Sendable {
    public var key: String
    /// The job argument that named it (for messages: `source`).
    public var field: String
    /// Objects larger than this are refused before they are read whole.
    public var maxBytes: Int

    public init(_ key: String, field: String = "source", maxBytes: Int) {
        self.key = key
        self.field = field
        self.maxBytes = maxBytes
    }
}

/// The one-machine store: every job reads and writes the media root in place.
public struct LocalMediaStore: MediaStore {
    public let root: MediaRoot
    public var location: String { "file://" + root.path }

    public init(root: MediaRoot) { self.root = root }

    public func staged<T: Sendable>(
        _ inputs: [MediaInput], jid: String, deadline: ContinuousClock.Instant, _ body: (MediaRoot) async throws -> T
    ) async throws -> T {
        try await body(root)
    }
}
