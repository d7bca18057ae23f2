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

extension JobResultRecord {
    /// The record as kept in a worker's outcome journal in Redis (`conveyor:outcomes:<identity>`): compact JSON
    /// with the result inline.
    public var journalValue: [UInt8] {
        var o = JSONObject()
        o["jid"] = .string(jid)
        o["class"] = .string(jobClass)
        o["queue"] = .string(queue)
        o["status"] = .string(status)
        o["attempts"] = JSONValue(attempts)
        if let result { o["result"] = .string(result) }
        if let errorClass { o["error_class"] = .string(errorClass) }
        if let errorMessage { o["error_message"] = .string(errorMessage) }
        if let correlationKey { o["correlation_key"] = .string(correlationKey) }
        if let enqueuedAt { o["enqueued_at"] = JSONValue(enqueuedAt) }
        o["started_at"] = JSONValue(startedAt)
        o["finished_at"] = JSONValue(finishedAt)
        return o.bytes
    }

    /// A record read back from a journal; nil when the bytes are not one (they are then dropped from it).
    public init?(journalValue bytes: [UInt8]) {
        guard let o = try? JSONValue(parsing: bytes).objectValue,
            let jid = o["jid"]?.stringValue, let jobClass = o["class"]?.stringValue, let queue = o["queue"]?.stringValue,
            let status = o["status"]?.stringValue, let attempts = o["attempts"]?.intValue,
            let startedAt = o["started_at"]?.doubleValue, let finishedAt = o["finished_at"]?.doubleValue
        else { return nil }
        self.init(
            jid: jid, jobClass: jobClass, queue: queue, status: status, attempts: attempts, result: o["result"]?.stringValue,
            errorClass: o["error_class"]?.stringValue, errorMessage: o["error_message"]?.stringValue,
            correlationKey: o["correlation_key"]?.stringValue, enqueuedAt: o["enqueued_at"]?.doubleValue,
            startedAt: startedAt, finishedAt: finishedAt)
    }
}
