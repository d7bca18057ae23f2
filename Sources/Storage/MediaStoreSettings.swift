public import ConveyorCore
import Foundation

/// What `CONVEYOR_MEDIA_STORE` and its companions say: unset (or `file:///path`), the local media root
/// (`CONVEYOR_MEDIA_ROOT`); `s3://bucket[/prefix]`, that bucket, reached with the AWS variables (`S3Configuration`),
/// jobs staged under `CONVEYOR_SCRATCH_DIR` (default `<tmp>/conveyor-scratch`), outputs uploaded with
/// `Cache-Control: CONVEYOR_MEDIA_CACHE_CONTROL` (default `public, max-age=86400`; empty sends none), and jobs may
/// name (`"bucket"`) the buckets `CONVEYOR_S3_ALLOWED_BUCKETS` lists (comma-separated; default none).
public struct MediaStoreSettings: Sendable {
    public enum Kind: Sendable {
        case local(MediaRoot)
        case s3(S3Location)
    }

    public var kind: Kind
    /// Where an object store's jobs are staged (also the folder the helpers' sandbox may write); absolute.
    public var scratch: String
    public var cacheControl: String?
    /// Buckets besides the store's own that a job's `bucket` argument may name.
    public var allowedBuckets: Set<String> = []

    public init(environment: [String: String]) throws(JobFailure) {
        let configured = environment["CONVEYOR_MEDIA_STORE"].flatMap { $0.isEmpty ? nil : $0 }
        let temporary = environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        let configuredScratch = environment["CONVEYOR_SCRATCH_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? temporary + "/conveyor-scratch"
        scratch = configuredScratch.hasPrefix("/") ? configuredScratch : FileManager.default.currentDirectoryPath + "/" + configuredScratch
        switch environment["CONVEYOR_MEDIA_CACHE_CONTROL"] {
        case nil: cacheControl = "public, max-age=86400"
        case ""?: cacheControl = nil
        case let value?:
            guard value.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7f }) else {
                throw .permanent(.invalidConfiguration, "CONVEYOR_MEDIA_CACHE_CONTROL must be printable ASCII")
            }
            cacheControl = value
        }
        let allowed = (environment["CONVEYOR_S3_ALLOWED_BUCKETS"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for name in allowed where !name.isEmpty {
            if let problem = S3Location.bucketNameProblem(name) {
                throw .permanent(.invalidConfiguration, "CONVEYOR_S3_ALLOWED_BUCKETS: bucket name \(name.debugDescription) \(problem)")
            }
            allowedBuckets.insert(name)
        }
        if !allowedBuckets.isEmpty, configured?.hasPrefix("s3://") != true {
            throw .permanent(.invalidConfiguration, "CONVEYOR_S3_ALLOWED_BUCKETS needs a bucket store (CONVEYOR_MEDIA_STORE=s3://bucket)")
        }
        guard let configured else {
            kind = .local(try MediaRoot(environment: environment))
            return
        }
        if configured.hasPrefix("s3://") {
            kind = .s3(try S3Location(parsing: configured))
        } else if configured.hasPrefix("file://") {
            let path = String(configured.dropFirst("file://".count))
            guard path.hasPrefix("/") else {
                throw .permanent(.invalidConfiguration, "CONVEYOR_MEDIA_STORE=\(configured): a file store names an absolute path (file:///srv/media)")
            }
            kind = .local(try MediaRoot(path))
        } else {
            throw .permanent(.invalidConfiguration, "CONVEYOR_MEDIA_STORE=\(configured) is neither s3://bucket[/prefix] nor file:///path")
        }
    }

    /// The store these settings name; `metrics` counts an object store's requests.
    public func makeStore(environment: [String: String], metrics: StorageMetrics? = nil) throws(JobFailure) -> any MediaStore {
        switch kind {
        case .local(let root):
            return LocalMediaStore(root: root)
        case .s3(let location):
            var onRequest: (@Sendable (S3RequestEvent) -> Void)?
            if let metrics { onRequest = { event in metrics.record(event) } }
            let client = S3Client(try S3Configuration(environment: environment), onRequest: onRequest)
            return try S3MediaStore(
                client: client, location: location, scratch: scratch, cacheControl: cacheControl, allowedBuckets: allowedBuckets)
        }
    }

    /// The folder the helpers' sandbox may write: the media root, or the scratch folder.
    public var writablePath: String {
        switch kind {
        case .local(let root): root.path
        case .s3: scratch
        }
    }
}

/// The media store of a worker process, with what it counts: built once, shared by every family that reads media.
public struct SharedMediaStore: Sendable {
    public var store: any MediaStore
    public var settings: MediaStoreSettings
    public var metrics: StorageMetrics
}

extension FamilyContext {
    /// The process's one media store, built from `CONVEYOR_MEDIA_STORE` the first time a family asks for it.
    public func mediaStore() throws -> SharedMediaStore {
        try shared("media.store", as: SharedMediaStore.self) {
            let settings = try MediaStoreSettings(environment: environment)
            let metrics = StorageMetrics()
            return SharedMediaStore(store: try settings.makeStore(environment: environment, metrics: metrics), settings: settings, metrics: metrics)
        }
    }
}
