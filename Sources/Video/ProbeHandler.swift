public import AV
public import ConveyorCore

/// `video.probe`: container and stream facts of an uploaded file, as ffprobe reports them.
///
/// Arguments: `source` (media key). Result: ffprobe's `{"streams": [...], "format": {...}}` plus `source`.
public struct ProbeHandler: JobHandler {
    public let root: MediaRoot
    public let configuration: VideoConfiguration
    let runner: VideoRunner

    public init(root: MediaRoot, configuration: VideoConfiguration) {
        self.init(root: root, configuration: configuration, runner: .inProcess)
    }

    init(root: MediaRoot, configuration: VideoConfiguration, runner: VideoRunner) {
        self.root = root
        self.configuration = configuration
        self.runner = runner
    }

    public func perform(_ job: JobContext) async throws -> JSONValue {
        try VideoArguments.check(job, allowed: ["source"])
        let source = try job.string("source")
        let path: String
        do { path = try root.existingFile(source) } catch { throw JobFailure.mediaKey(error, job: job, argument: "source") }
        let policy = configuration.policy
        let deadline = job.deadline
        var result: JSONValue
        do {
            result = try await runner.probe(path, policy, deadline)
        } catch let failure as AVFailure {
            throw JobFailure.video(failure, job: job, source: source)
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
