import Foundation

/// One terminal outcome as stored in `conveyor.job_results`: what a worker's outcome journal keeps in Redis with the
/// job's move (`JobTransitions.Move.JournalEntry`), as one COPY line, until the result store has written it.
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

    /// The record of a terminal outcome, or nil for `retrying`, `requeued` and `deferred` (the job will run again).
    public init?(_ outcome: JobOutcome) {
        let status: String
        switch outcome.status {
        case .succeeded: status = "succeeded"
        case .dead: status = "dead"
        case .skipped: status = "skipped"
        case .cancelled: status = "cancelled"
        case .retrying, .requeued, .deferred: return nil
        }
        self.init(
            jid: outcome.jid, jobClass: outcome.jobClass, queue: outcome.queue, status: status,
            attempts: outcome.attempts, result: outcome.status == .succeeded ? outcome.result?.text : nil,
            errorClass: outcome.failure?.errorClass,
            errorMessage: outcome.failure.map { String(StoredErrorMessage.clean($0.message, jid: outcome.jid).prefix(Self.maximumErrorMessageLength)) },
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

    /// Longest correlation key stored, in characters.
    public static let maximumCorrelationKeyLength = 200

    /// A correlation key as stored: NUL (which PostgreSQL text cannot hold) replaced by U+FFFD, cut to
    /// `maximumCorrelationKeyLength` characters.
    private static func text(_ value: JSONValue?) -> String? {
        let raw: String
        switch value {
        case .string(let s) where !s.isEmpty: raw = s
        case .number(let n): raw = n
        default: return nil
        }
        let cut = String(raw.prefix(maximumCorrelationKeyLength))
        return cut.contains("\u{0}") ? cut.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : cut
    }
}

extension JobResultRecord {
    /// The record as one line of `COPY conveyor.job_results (...) FROM STDIN` text: what a worker keeps in its outcome
    /// journal in Redis, and what the result writer sends as it is (built once, on the worker's path).
    public var copyLine: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(160 + (result?.utf8.count ?? 0) + (errorMessage?.utf8.count ?? 0))
        JobResultCopy.appendLine(self, to: &out)
        return out
    }

    /// A record read back from a COPY line (a journal entry); nil when the bytes are not one.
    public init?(copyLine bytes: [UInt8]) {
        var fields: [String?] = []
        var current: [UInt8] = []
        var isNull = false
        var i = 0
        var body = bytes[...]
        if body.last == 10 { body = body.dropLast() }
        let b = Array(body)
        while i <= b.count {
            if i == b.count || b[i] == 9 {
                fields.append(isNull ? nil : String(decoding: current, as: UTF8.self))
                current.removeAll(keepingCapacity: true)
                isNull = false
                i += 1
                continue
            }
            if b[i] == 92, i + 1 < b.count {
                switch b[i + 1] {
                case 78 where current.isEmpty && (i + 2 == b.count || b[i + 2] == 9): isNull = true
                case 110: current.append(10)
                case 116: current.append(9)
                case 114: current.append(13)
                default: current.append(b[i + 1])
                }
                i += 2
                continue
            }
            current.append(b[i])
            i += 1
        }
        guard fields.count == 12, let jid = fields[0], let jobClass = fields[1], let queue = fields[2], let status = fields[3],
            let attempts = fields[4].flatMap({ Int($0) }), let started = fields[10].flatMap(Self.seconds),
            let finished = fields[11].flatMap(Self.seconds)
        else { return nil }
        self.init(
            jid: jid, jobClass: jobClass, queue: queue, status: status, attempts: attempts, result: fields[5],
            errorClass: fields[6], errorMessage: fields[7], correlationKey: fields[8], enqueuedAt: fields[9].flatMap(Self.seconds),
            startedAt: started, finishedAt: finished)
    }

    /// `YYYY-MM-DD HH:MM:SS.ffffff+00` (as `JobResultCopy.timestamp` writes it) as Unix seconds.
    static func seconds(_ text: String) -> Double? {
        let u = Array(text.utf8)
        guard u.count == 29, u[4] == 45, u[7] == 45, u[10] == 32, u[13] == 58, u[16] == 58, u[19] == 46 else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            var n: Int64 = 0
            for i in range {
                guard u[i] >= 48 && u[i] <= 57 else { return nil }
                n = n * 10 + Int64(u[i] - 48)
            }
            return n
        }
        guard let y = number(0..<4), let m = number(5..<7), let d = number(8..<10), let hh = number(11..<13),
            let mm = number(14..<16), let ss = number(17..<19), let micros = number(20..<26)
        else { return nil }
        // H. Hinnant's days_from_civil.
        let year = m <= 2 ? y - 1 : y
        let era = (year >= 0 ? year : year - 399) / 400
        let yoe = year - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let whole = days * 86_400 + hh * 3600 + mm * 60 + ss
        return Double(whole) + Double(micros) / 1_000_000
    }
}
