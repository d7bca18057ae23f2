public import AV
public import ConveyorCore
public import Storage
public import Sandbox
public import Images

/// `video.probe`: container and stream facts of an uploaded file, as ffprobe reports them.
///
/// Arguments: `source` (media key). Result: ffprobe's `{"streams": [...], "format": {...}}` plus `source`.
public struct ProbeHandler: JobHandler {
    /// Where the sources are (the local media root, or a bucket staged per job).
    public let store: any MediaStore
    public let configuration: VideoConfiguration
    /// Where libavformat runs: helper processes, or this process when the pool is configured `inProcess`.
    public let pool: HelperPool

    public init(store: any MediaStore, configuration: VideoConfiguration, pool: HelperPool) {
        self.store = store
        self.configuration = configuration
        self.pool = pool
    }

    public init(root: MediaRoot, configuration: VideoConfiguration, pool: HelperPool) {
        self.init(store: LocalMediaStore(root: root), configuration: configuration, pool: pool)
    }

    public func perform(_ job: JobContext) async throws -> JSONValue {
        try VideoArguments.check(job, allowed: ["source", "bucket"])
        let source = try job.string("source")
        let store = try store.forJob(job)
        let configuration = configuration
        let pool = pool
        var result: JSONValue
        do {
            result = try await store.staged([MediaInput(source, maxBytes: configuration.maxSourceBytes)], jid: job.jid, deadline: job.deadline) {
                root in
                // Refused here with the job named; the helper resolves the key again itself.
                _ = try root.source(source)
                let request = ProbeHelperRequest(mediaRoot: root.path, source: source, policy: configuration.policy)
                return try await pool.run(VideoOperations.probeOperation, request, deadline: job.deadline)
            }
        } catch let failure as JobFailure {
            throw failure.about(job, source: source)
        }
        if case .object(var object) = result {
            object["source"] = JSONValue(source)
            result = .object(object)
        }
        return store.locating(result)
    }
}

enum VideoArguments {
    /// Rejects argument names the class's schema does not define (`additionalProperties: false`).
    static func check(_ job: JobContext, allowed: Set<String>) throws(JobFailure) {
        for key in job.arguments.keys where !allowed.contains(key) {
            throw .invalidArguments("\(job.jobClass): unknown argument \(key.debugDescription); allowed: \(allowed.sorted().joined(separator: ", "))")
        }
    }
}
