public import Logging

/// Runs one job class. Handlers are shared by every concurrent job of their class.
public protocol JobHandler: Sendable {
    /// Runs the job and returns its result (stored with the job's outcome).
    ///
    /// Throw a `JobFailure` to choose the error class and whether the job is retried; any other error is
    /// transient and retried under the class's retry policy.
    func perform(_ job: JobContext) async throws -> JSONValue
}

/// A handler written as a closure.
public struct ClosureHandler: JobHandler {
    let body: @Sendable (JobContext) async throws -> JSONValue
    public init(_ body: @escaping @Sendable (JobContext) async throws -> JSONValue) { self.body = body }
    public func perform(_ job: JobContext) async throws -> JSONValue { try await body(job) }
}

/// What a handler sees of a job.
public struct JobContext: Sendable {
    public let jid: String
    public let jobClass: String
    public let queue: String
    /// The job's argument object (`args[0]`); an empty object when the job has no arguments.
    public let arguments: JSONObject
    /// 1 on the first run, 2 on the first retry, and so on.
    public let attempt: Int
    /// When the job must be done; native work should stop by then (vips kill flag, FFmpeg interrupt, curl timeout).
    public let deadline: ContinuousClock.Instant
    /// The whole job as enqueued, for handlers that need Sidekiq fields beyond `args`.
    public let payload: JSONObject
    /// Carries `job.id`, `job.class` and `queue` metadata.
    public var logger: Logger
    /// Where `progress(_:detail:)` goes (the worker's per-job hash), or nil when nothing is recorded.
    public var progressReporter: JobProgressReporter?
    /// The slice of the job's progress this context reports into, and the step it names (`progressStep(_:from:to:)`).
    public var progressSpan: (from: Double, to: Double, step: String?) = (0, 100, nil)
    /// Fields a middleware leaves for the job's next run: written at the top of the payload this run's failure stores
    /// (the retry or dead set), so the next attempt, or a replay, reads them (the tracing's link to this attempt's span).
    public var nextAttemptFields = JSONObject()
    /// Where `log(_:)` lines go besides the process's log (the backend's per-job log), or nil.
    public var jobLog: (@Sendable (String) async -> Void)?

    public init(
        jid: String, jobClass: String, queue: String, arguments: JSONObject, attempt: Int,
        deadline: ContinuousClock.Instant, payload: JSONObject, logger: Logger, progressReporter: JobProgressReporter? = nil
    ) {
        self.jid = jid
        self.jobClass = jobClass
        self.queue = queue
        self.arguments = arguments
        self.attempt = attempt
        self.deadline = deadline
        self.payload = payload
        self.logger = logger
        self.progressReporter = progressReporter
    }

    /// The longest job log line kept, in UTF-8 bytes; a longer one is cut and marked.
    public static let maxLogLine = 4096

    /// A line for the job's own log, which its producer reads (BullMQ's `job.log`: `getJobLogs`, bull-board's Logs
    /// tab). It also goes to the process's log at info with the job's metadata. Cut to `maxLogLine` bytes; a line
    /// that cannot be written is dropped (the job does not fail for it).
    public func log(_ line: String) async {
        let kept = line.utf8.count <= Self.maxLogLine ? line : String(decoding: line.utf8.prefix(Self.maxLogLine - 3), as: UTF8.self) + "…"
        logger.info("job log", metadata: ["line": "\(kept)"])
        await jobLog?(kept)
    }

    /// Time left before the deadline, never negative.
    public var remaining: Duration {
        let left = deadline - .now
        return left < .zero ? .zero : left
    }
}

extension JobContext {
    /// A required string argument; a missing or mistyped one is a permanent `InvalidArguments` failure.
    public func string(_ key: String) throws(JobFailure) -> String {
        guard let value = arguments[key] else { throw .invalidArguments("\(key) is required") }
        guard let s = value.stringValue else { throw .invalidArguments("\(key) must be a string, got \(value.typeName)") }
        return s
    }

    public func optionalString(_ key: String) throws(JobFailure) -> String? {
        guard let value = arguments[key], !value.isNull else { return nil }
        guard let s = value.stringValue else { throw .invalidArguments("\(key) must be a string, got \(value.typeName)") }
        return s
    }

    /// An optional integer argument within `range`.
    public func optionalInt(_ key: String, in range: ClosedRange<Int>) throws(JobFailure) -> Int? {
        guard let value = arguments[key], !value.isNull else { return nil }
        guard let i = value.intValue else { throw .invalidArguments("\(key) must be an integer, got \(value.typeName)") }
        guard range.contains(i) else { throw .invalidArguments("\(key) must be in \(range.lowerBound)...\(range.upperBound), got \(i)") }
        return i
    }

    public func int(_ key: String, in range: ClosedRange<Int>) throws(JobFailure) -> Int {
        guard let i = try optionalInt(key, in: range) else { throw .invalidArguments("\(key) is required") }
        return i
    }
}
