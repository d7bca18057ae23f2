public import ConveyorCore
import Foundation
import Synchronization

/// Media in an S3-compatible bucket (`CONVEYOR_MEDIA_STORE=s3://bucket/prefix`): a job's inputs are streamed to a
/// private scratch root on this machine (bounded by the job's size limits while streaming), its helpers work
/// there as on a local root, and what they wrote is uploaded under the same keys, then the scratch root goes.
/// Keys keep the local root's rules (relative, no `..`); the object key is the prefix, a slash, and the key.
/// A job may name another bucket (`"bucket"`) when the deployment allows it: that bucket's store shares this one's
/// client and scratch folder, and its keys are object keys (no prefix).
public final class S3MediaStore: MediaStore {
    public let client: S3Client
    public let bucket: String
    public let prefix: String
    /// Where scratch roots are made, one per job: `<scratch>/<pid>-<jid>-<random>`, mode 0700.
    public let scratch: String
    /// `Cache-Control` of every uploaded output (CONVEYOR_MEDIA_CACHE_CONTROL); nil sends none.
    public let cacheControl: String?
    /// Buckets other than this one that a job may name (CONVEYOR_S3_ALLOWED_BUCKETS).
    public let allowedBuckets: Set<String>
    /// The deployment's store and the stores of its other buckets: a nested `staged` call of any of them joins the
    /// job's staged root, whichever bucket that root came from.
    fileprivate let family: Family
    fileprivate final class Family: Sendable {}

    /// `s3://bucket/prefix`; inside a staged job, the location of the job's bucket (a nested step, such as
    /// `media.ingest`'s thumbnails, reports where its outputs really go).
    public var location: String {
        if let active = Self.active, active.family === family { return active.location.url }
        return S3Location(bucket: bucket, prefix: prefix).url
    }

    /// The staged root of the job this task runs, shared by nested `staged` calls.
    @TaskLocal static var active: Staging?

    final class Staging: Sendable {
        fileprivate let family: Family
        let root: MediaRoot
        /// Where the inputs come from and the outputs go: the bucket of the job's outermost call.
        let location: S3Location
        /// Inputs fetched, with what they looked like then: an input a job rewrote in place is an output too.
        let inputs = Mutex<[String: FileStamp]>([:])

        fileprivate init(family: Family, root: MediaRoot, location: S3Location) {
            self.family = family
            self.root = root
            self.location = location
        }
    }

    struct FileStamp: Equatable, Sendable {
        var size: Int64
        var modified: Int
        var inode: UInt64

        init?(_ path: String) {
            var s = stat()
            guard stat(path, &s) == 0 else { return nil }
            size = Int64(s.st_size)
            modified = Int(s.st_mtim.tv_sec) * 1_000_000_000 + Int(s.st_mtim.tv_nsec)
            inode = UInt64(s.st_ino)
        }
    }

    /// - Parameter scratch: created (0700) when missing; scratch roots a dead process left there are removed.
    /// - Parameter allowedBuckets: the other buckets jobs may name.
    public init(
        client: S3Client, location: S3Location, scratch: String, cacheControl: String? = nil, allowedBuckets: Set<String> = []
    ) throws(JobFailure) {
        self.client = client
        self.bucket = location.bucket
        self.prefix = location.prefix
        self.cacheControl = cacheControl
        self.allowedBuckets = allowedBuckets
        self.family = Family()
        let absolute = scratch.hasPrefix("/") ? scratch : FileManager.default.currentDirectoryPath + "/" + scratch
        do {
            try FileManager.default.createDirectory(atPath: absolute, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw .transient(.mediaRootUnavailable, "cannot create the scratch folder \(absolute) (\(MediaSettings.scratchDir.name)): \(error)")
        }
        self.scratch = absolute
        Self.removeStale(in: absolute)
    }

    /// Another bucket's store in the same family (no stale-scratch sweep: this process's jobs are using it).
    private init(sibling: S3MediaStore, bucket: String) {
        client = sibling.client
        self.bucket = bucket
        prefix = ""
        scratch = sibling.scratch
        cacheControl = sibling.cacheControl
        allowedBuckets = sibling.allowedBuckets
        family = sibling.family
    }

    public func bucket(_ name: String) throws(JobFailure) -> any MediaStore {
        if name == bucket { return self }
        guard allowedBuckets.contains(name) else {
            let allowed = allowedBuckets.isEmpty ? "none (\(MediaSettings.s3AllowedBuckets.name) is empty)" : allowedBuckets.sorted().joined(separator: ", ")
            throw .permanent(
                .bucketNotAllowed, "bucket \(name.debugDescription) is not this deployment's (\(bucket)) nor one it allows: \(allowed)")
        }
        return S3MediaStore(sibling: self, bucket: name)
    }

    public func staged<T: Sendable>(
        _ inputs: [MediaInput], jid: String, deadline: ContinuousClock.Instant, _ body: (MediaRoot) async throws -> T
    ) async throws -> T {
        if let active = Self.active, active.family === family {
            try await fetch(inputs, into: active, deadline: deadline)
            return try await body(active.root)
        }
        let safeJID = String(jid.unicodeScalars.filter { $0.properties.isAlphabetic || ("0"..."9").contains($0) }.prefix(40))
        let directory = scratch + "/\(getpid())-\(safeJID)-\(UInt32.random(in: 0...UInt32.max))"
        guard mkdir(directory, 0o700) == 0 else {
            throw JobFailure.transient(.mediaWriteFailed, "cannot create a scratch root under \(scratch): \(String(cString: strerror(errno)))")
        }
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let staging = Staging(family: family, root: try MediaRoot(directory, create: false), location: S3Location(bucket: bucket, prefix: prefix))
        return try await Self.$active.withValue(staging) {
            try await fetch(inputs, into: staging, deadline: deadline)
            let result = try await body(staging.root)
            try await publish(staging, deadline: deadline)
            return result
        }
    }

    private func fetch(_ inputs: [MediaInput], into staging: Staging, deadline: ContinuousClock.Instant) async throws {
        for input in inputs {
            if staging.inputs.withLock({ $0[input.key] != nil }) { continue }
            try MediaRoot.validate(input.key, field: input.field)
            try Self.checkObjectKey(staging.location.objectKey(input.key), field: input.field)
            let path = try staging.root.destination(input.key, field: input.field)
            // Written by an earlier step of the same job (media.ingest's cover picture before its thumbnails): it is
            // read where it is and published with the other outputs, not fetched from the bucket.
            if FileManager.default.fileExists(atPath: path) { continue }
            _ = try await client.get(bucket: staging.location.bucket, key: staging.location.objectKey(input.key), to: path, maxBytes: input.maxBytes, deadline: deadline)
            let stamp = FileStamp(path)
            staging.inputs.withLock { $0[input.key] = stamp }
        }
    }

    /// Uploads every regular file under the staged root that is not an untouched input; dot-files (temporaries,
    /// progress files) stay behind.
    private func publish(_ staging: Staging, deadline: ContinuousClock.Instant) async throws {
        let root = staging.root.path
        let inputs = staging.inputs.withLock { $0 }
        var outputs: [String] = []
        if let walker = FileManager.default.enumerator(atPath: root) {
            while let relative = walker.nextObject() as? String {
                let name = (relative as NSString).lastPathComponent
                if name.hasPrefix(".") {
                    if (walker.fileAttributes?[.type] as? FileAttributeType) == .typeDirectory { walker.skipDescendants() }
                    continue
                }
                guard (walker.fileAttributes?[.type] as? FileAttributeType) == .typeRegular else { continue }
                if let before = inputs[relative], before == FileStamp(root + "/" + relative) { continue }
                outputs.append(relative)
            }
        }
        // Every output's object key is checked before the first upload: a job publishes all of its outputs or none.
        for key in outputs { try Self.checkObjectKey(staging.location.objectKey(key), field: "output \(key)") }
        for key in outputs.sorted() {
            try await client.put(
                bucket: staging.location.bucket, key: staging.location.objectKey(key), from: root + "/" + key, contentType: Self.contentType(of: key),
                cacheControl: cacheControl, deadline: deadline)
        }
    }

    /// S3 refuses object keys over 1024 bytes; the store's prefix counts.
    static let maxObjectKeyBytes = 1024

    static func checkObjectKey(_ objectKey: String, field: String) throws(JobFailure) {
        guard objectKey.utf8.count <= maxObjectKeyBytes else {
            throw .invalidArguments("\(field): its object key is \(objectKey.utf8.count) bytes long with the store's prefix; S3 allows \(maxObjectKeyBytes)")
        }
    }

    /// The `Content-Type` an output gets, from its extension.
    static func contentType(of key: String) -> String {
        switch (key as NSString).pathExtension.lowercased() {
        case "jpg", "jpeg": "image/jpeg"
        case "png": "image/png"
        case "webp": "image/webp"
        case "gif": "image/gif"
        case "avif": "image/avif"
        case "heic", "heif": "image/heif"
        case "mp4", "m4v": "video/mp4"
        case "mov": "video/quicktime"
        case "webm": "video/webm"
        case "m4a": "audio/mp4"
        case "mp3": "audio/mpeg"
        case "opus", "ogg": "audio/ogg"
        case "json": "application/json"
        default: "application/octet-stream"
        }
    }

    /// Scratch roots of processes that are gone (a crash, kill -9), and of an earlier process with this pid.
    static func removeStale(in scratch: String) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: scratch) else { return }
        let me = getpid()
        for entry in entries {
            guard let pid = entry.split(separator: "-").first.flatMap({ Int32($0) }) else { continue }
            if pid == me || (kill(pid, 0) != 0 && errno == ESRCH) {
                try? FileManager.default.removeItem(atPath: scratch + "/" + entry)
            }
        }
    }
}
