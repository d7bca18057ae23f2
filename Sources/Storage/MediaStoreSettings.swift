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

    public init(settings: SettingsReader) throws(JobFailure) {
        try settings.refuse([MediaSettings.mediaRoot, MediaSettings.mediaStore, MediaSettings.scratchDir, MediaSettings.mediaCacheControl,
                             MediaSettings.s3AllowedBuckets])
        let configured = settings.text(MediaSettings.mediaStore)
        let temporary = settings.processEnvironment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        let configuredScratch = settings.text(MediaSettings.scratchDir) ?? temporary + "/conveyor-scratch"
        scratch = configuredScratch.hasPrefix("/") ? configuredScratch : FileManager.default.currentDirectoryPath + "/" + configuredScratch
        // Empty (`media.cache_control: ""` in the file) sends none.
        let cache = settings.resolved(MediaSettings.mediaCacheControl)
        switch cache.text {
        case nil, ""?: cacheControl = nil
        case let value?:
            guard value.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7f }) else {
                throw .permanent(.invalidConfiguration, "\(MediaSettings.mediaCacheControl.name) must be printable ASCII")
            }
            cacheControl = value
        }
        let allowedName = MediaSettings.s3AllowedBuckets.name
        for name in settings.list(MediaSettings.s3AllowedBuckets) {
            if let problem = S3Location.bucketNameProblem(name) {
                throw .permanent(.invalidConfiguration, "\(allowedName): bucket name \(name.debugDescription) \(problem)")
            }
            allowedBuckets.insert(name)
        }
        let storeName = MediaSettings.mediaStore.name
        if !allowedBuckets.isEmpty, configured?.hasPrefix("s3://") != true {
            throw .permanent(.invalidConfiguration, "\(allowedName) needs a bucket store (\(storeName)=s3://bucket)")
        }
        guard let configured else {
            kind = .local(try MediaRoot(settings: settings))
            return
        }
        if configured.hasPrefix("s3://") {
            kind = .s3(try S3Location(parsing: configured))
        } else if configured.hasPrefix("file://") {
            let path = String(configured.dropFirst("file://".count))
            guard path.hasPrefix("/") else {
                throw .permanent(.invalidConfiguration, "\(storeName)=\(configured): a file store names an absolute path (file:///srv/media)")
            }
            kind = .local(try MediaRoot(path))
        } else {
            throw .permanent(.invalidConfiguration, "\(storeName)=\(configured) is neither s3://bucket[/prefix] nor file:///path")
        }
    }

    /// The same from a plain environment, through a reader of the families' settings.
    public init(environment: [String: String]) throws(JobFailure) {
        try self.init(settings: SettingsReader(families: environment))
    }

    /// The store these settings name; `metrics` counts an object store's requests.
    public func makeStore(settings: SettingsReader, metrics: StorageMetrics? = nil) throws(JobFailure) -> any MediaStore {
        switch kind {
        case .local(let root):
            return LocalMediaStore(root: root)
        case .s3(let location):
            var onRequest: (@Sendable (S3RequestEvent) -> Void)?
            if let metrics { onRequest = { event in metrics.record(event) } }
            let client = S3Client(try S3Configuration(settings: settings), onRequest: onRequest)
            return try S3MediaStore(
                client: client, location: location, scratch: scratch, cacheControl: cacheControl, allowedBuckets: allowedBuckets)
        }
    }

    /// The same from a plain environment, through a reader of the families' settings.
    public func makeStore(environment: [String: String], metrics: StorageMetrics? = nil) throws(JobFailure) -> any MediaStore {
        try makeStore(settings: SettingsReader(families: environment), metrics: metrics)
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
            let media = try MediaStoreSettings(settings: settings)
            let metrics = StorageMetrics()
            return SharedMediaStore(store: try media.makeStore(settings: settings, metrics: metrics), settings: media, metrics: metrics)
        }
    }
}
