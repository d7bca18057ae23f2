public import ConveyorCore
import Foundation

/// One terminal outcome as stored in `conveyor.job_results`.
public struct JobResultRecord: Sendable, Equatable {
    public var jid: String
    public var jobClass: String
    public var queue: String
    /// `succeeded` or `dead`.
    public var status: String
    public var attempts: Int
    /// The handler's result as JSON text, or nil.
    public var result: String?
    public var errorClass: String?
    public var errorMessage: String?
    public var correlationKey: String?
    /// Unix seconds.
    public var enqueuedAt: Double?
    public var startedAt: Double
    public var finishedAt: Double

    public init(
        jid: String, jobClass: String, queue: String, status: String, attempts: Int, result: String?,
        errorClass: String?, errorMessage: String?, correlationKey: String?, enqueuedAt: Double?,
        startedAt: Double, finishedAt: Double
    ) {
        self.jid = jid
        self.jobClass = jobClass
        self.queue = queue
        self.status = status
        self.attempts = attempts
        self.result = result
        self.errorClass = errorClass
        self.errorMessage = errorMessage
        self.correlationKey = correlationKey
        self.enqueuedAt = enqueuedAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }

    /// The record of a terminal outcome, or nil for `retrying` and `requeued` (the job will run again).
    public init?(_ outcome: JobOutcome) {
        let status: String
        switch outcome.status {
        case .succeeded: status = "succeeded"
        case .dead: status = "dead"
        case .retrying, .requeued: return nil
        }
        self.init(
            jid: outcome.jid, jobClass: outcome.jobClass, queue: outcome.queue, status: status,
            attempts: outcome.attempts, result: outcome.status == .succeeded ? outcome.result?.text : nil,
            errorClass: outcome.failure?.errorClass,
            errorMessage: outcome.failure.map { String($0.message.prefix(Self.maximumErrorMessageLength)) },
            correlationKey: Self.correlationKey(of: outcome.payload), enqueuedAt: outcome.enqueuedAt,
            startedAt: outcome.startedAt, finishedAt: outcome.finishedAt)
    }

    /// Error messages are cut to this many characters (the dead set in Redis keeps the job itself).
    public static let maximumErrorMessageLength = 4000

    /// The argument fields read as the correlation key, first present wins.
    public static let correlationFields = ["correlation_id", "upload_id", "post_id"]

    /// The key an API looks a job up by: `args[0].correlation_id`, else `args[0].upload_id`, else
    /// `args[0].post_id` (strings or integers), else a top-level `correlation_id` in the envelope.
    public static func correlationKey(of payload: JSONObject) -> String? {
        let arguments = payload["args"]?[0]
        for field in correlationFields {
            if let key = text(arguments?[field]) { return key }
        }
        return text(payload["correlation_id"])
    }

    private static func text(_ value: JSONValue?) -> String? {
        switch value {
        case .string(let s) where !s.isEmpty: return String(s.prefix(200))
        case .number(let n): return n
        default: return nil
        }
    }
}
