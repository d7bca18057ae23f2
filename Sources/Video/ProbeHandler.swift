public import AV
public import ConveyorCore
public import Sandbox
public import Images

/// `video.probe`: container and stream facts of an uploaded file, as ffprobe reports them.
///
/// Arguments: `source` (media key). Result: ffprobe's `{"streams": [...], "format": {...}}` plus `source`.
public struct ProbeHandler: JobHandler {
    public let root: MediaRoot
    public let configuration: VideoConfiguration
    /// Where libavformat runs: helper processes, or this process when the pool is configured `inProcess`.
    public let pool: HelperPool

    public init(root: MediaRoot, configuration: VideoConfiguration, pool: HelperPool) {
        self.root = root
        self.configuration = configuration
        self.pool = pool
    }

    public func perform(_ job: JobContext) async throws -> JSONValue {
        try VideoArguments.check(job, allowed: ["source"])
        let source = try job.string("source")
        // Refused here with the job named; the helper resolves the key again itself.
        do { _ = try root.source(source) } catch { throw error.about(job) }
        let request = ProbeHelperRequest(mediaRoot: root.path, source: source, policy: configuration.policy)
        var result: JSONValue
        do {
            result = try await pool.run(VideoOperations.probeOperation, request, deadline: job.deadline)
        } catch let failure as JobFailure {
            throw failure.about(job, source: source)
        }
        if case .object(var object) = result {
            object["source"] = JSONValue(source)
            result = .object(object)
        }
        return result
    }
}

enum VideoArguments {
    /// Rejects argument names the class's schema does not define (`additionalProperties: false`).
    static func check(_ job: JobContext, allowed: Set<String>) throws(JobFailure) {
        for key in job.arguments.keys where !allowed.contains(key) {
            throw .invalidArguments("\(job.jobClass): unknown argument \(key); allowed: \(allowed.sorted().joined(separator: ", "))")
        }
    }
}
