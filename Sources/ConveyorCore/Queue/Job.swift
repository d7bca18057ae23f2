import Foundation

/// A job as fetched from Redis: the exact bytes, its parsed envelope, and the receipt its outcome's move is applied by.
public struct Job: Sendable {
    /// The payload exactly as it was stored.
    public let raw: [UInt8]
    /// Where the backend finds the job again when its outcome is written (its in-flight member, its queue).
    public var receipt: DeliveryReceipt
    public var payload: JSONObject
    public var jobClass: String
    public var queue: String
    public var jid: String
    /// `args[0]`, or an empty object when `args` is empty.
    public var arguments: JSONObject

    /// Runs that already failed before this one (Sidekiq's `retry_count` + 1, or 0). Sidekiq's "Retry Now"
    /// lowers `retry_count` by one (to -1 for a first retry), so the replayed run spends no extra attempt.
    public var previousFailures: Int {
        guard let count = payload["retry_count"]?.intValue else { return 0 }
        return max(0, Saturating.add(count, 1))
    }

    /// The longest `class` or `queue` a worker accepts, in UTF-8 bytes (`JobEnvelope.maxNameBytes`).
    public static var maxNameBytes: Int { JobEnvelope.maxNameBytes }

    /// When the job was last pushed onto its queue, in Unix seconds.
    public var enqueuedAt: Double? { payload["enqueued_at"].flatMap(JobTime.seconds) }
    public var createdAt: Double? { payload["created_at"].flatMap(JobTime.seconds) }

    /// The job's own deadline (`"timeout": seconds`), validated by `JobEnvelope.timeoutRange`; it can shorten its
    /// class's time limit, never lengthen it.
    public var timeout: Duration? {
        guard let seconds = payload["timeout"]?.doubleValue, JobEnvelope.timeoutRange.contains(seconds) else { return nil }
        return .milliseconds(Int64((seconds * 1000).rounded(.up)))
    }

    /// Parses and validates a fetched job's envelope; its receipt goes with it.
    public init(_ fetched: FetchedJob) throws(JobFailure) {
        if let envelope = fetched.envelope {
            try self.init(payload: envelope, raw: fetched.raw, fetchedFrom: fetched.queue, receipt: fetched.receipt)
        } else {
            try self.init(raw: fetched.raw, fetchedFrom: fetched.queue, receipt: fetched.receipt)
        }
    }

    /// Parses and validates the Sidekiq envelope Conveyor accepts.
    /// - Parameters:
    ///   - queue: the queue it was fetched from, used when the payload names none.
    ///   - receipt: how its backend finds it again; nil: its payload in a list of `queue` (or its own queue).
    public init(raw: [UInt8], fetchedFrom queue: String? = nil, receipt: DeliveryReceipt? = nil) throws(JobFailure) {
        let value: JSONValue
        do {
            value = try JSONValue(parsing: raw)
        } catch {
            throw .permanent(.malformedJob, "payload is not JSON: \(error)")
        }
        guard case .object(let payload) = value else {
            throw .permanent(.malformedJob, "payload must be a JSON object, got \(value.typeName)")
        }
        try self.init(payload: payload, raw: raw, fetchedFrom: queue, receipt: receipt)
    }

    /// Validates an envelope already parsed from `raw` (the same checks as parsing it).
    init(payload: JSONObject, raw: [UInt8], fetchedFrom queue: String?, receipt: DeliveryReceipt?) throws(JobFailure) {
        guard let jobClass = payload["class"]?.stringValue, !jobClass.isEmpty else {
            throw .permanent(.malformedJob, "payload has no \"class\" string")
        }
        try JobEnvelope.validate(payload)
        var arguments = JSONObject()
        switch payload["args"] {
        case nil, .null?:
            break
        case .array(let items)?:
            if let first = items.first {
                guard case .object(let object) = first, items.count == 1 else {
                    throw .permanent(
                        .invalidArguments,
                        "\(jobClass): args must hold one JSON object (got \(items.count) item(s), first a \(first.typeName))")
                }
                arguments = object
            }
        case let other?:
            throw .permanent(.malformedJob, "args must be an array, got \(other.typeName)")
        }
        self.raw = raw
        self.payload = payload
        self.jobClass = jobClass
        self.queue = payload["queue"]?.stringValue ?? queue ?? "default"
        self.receipt = receipt ?? DeliveryReceipt(queue: queue ?? self.queue, member: raw)
        // A jid that cannot name the job (too long, control characters) is replaced before the job runs.
        self.jid = Job.isValidJID(payload["jid"]) ? payload["jid"]!.stringValue! : ""
        self.arguments = arguments
    }

    /// A new envelope, as `Sidekiq::Client.push` would build it.
    public static func envelope(
        jobClass: String, arguments: JSONObject, queue: String, retry: JSONValue? = nil, at: Double? = nil,
        now: Double = JobTime.now(), jid: String = Job.newJID()
    ) -> JSONObject {
        var o = JSONObject()
        o["class"] = .string(jobClass)
        o["args"] = .array([.object(arguments)])
        o["queue"] = .string(queue)
        o["jid"] = .string(jid)
        o["retry"] = retry ?? .bool(true)
        o["created_at"] = JSONValue(now)
        if let at { o["at"] = JSONValue(at) } else { o["enqueued_at"] = JSONValue(now) }
        return o
    }

    /// Whether a payload's `jid` can name the job: a non-empty string of at most 128 bytes without control
    /// characters. Anything else (missing, a number such as `1e400`, a multi-line string) gets a new jid at fetch.
    public static func isValidJID(_ value: JSONValue?) -> Bool {
        guard case .string(let jid)? = value, !jid.isEmpty, jid.utf8.count <= 128 else { return false }
        return !containsControlCharacters(jid)
    }

    /// Whether `text` holds a C0 or C1 control character or DEL (a line break, an escape sequence).
    public static func containsControlCharacters(_ text: String) -> Bool {
        // C0 controls and DEL are single bytes; C1 controls (U+0080-U+009F) are 0xC2 0x80-0x9F in UTF-8.
        var previous: UInt8 = 0
        for byte in text.utf8 {
            if byte < 0x20 || byte == 0x7F || (previous == 0xC2 && byte >= 0x80 && byte <= 0x9F) { return true }
            previous = byte
        }
        return false
    }

    /// 12 random bytes as hex, like Sidekiq's jids.
    public static func newJID() -> String {
        var g = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(24)
        for _ in 0..<12 {
            let b = UInt8.random(in: 0...255, using: &g)
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Job timestamps: Sidekiq 6/7 write float seconds, Sidekiq 8 integer milliseconds; Conveyor reads both and
/// writes the format the job already uses.
public enum JobTime {
    /// Values above this are milliseconds (1e11 seconds is the year 5138).
    public static let millisecondThreshold = 1e11

    public static func now() -> Double { Date().timeIntervalSince1970 }

    /// A timestamp field as Unix seconds; nil when it is not a number in `JobEnvelope.timestampRange`.
    public static func seconds(_ value: JSONValue) -> Double? {
        guard let d = value.doubleValue, JobEnvelope.timestampRange.contains(d) else { return nil }
        return d > millisecondThreshold ? d / 1000 : d
    }

    /// Whether this job's timestamps are integer milliseconds (Sidekiq 8).
    static func usesMilliseconds(_ payload: JSONObject) -> Bool {
        for key in ["created_at", "enqueued_at"] {
            if let d = payload[key]?.doubleValue { return d > millisecondThreshold }
        }
        return false
    }

    /// A timestamp value in the job's own format.
    static func value(_ seconds: Double, like payload: JSONObject) -> JSONValue {
        usesMilliseconds(payload) ? JSONValue(Saturating.int((seconds * 1000).rounded())) : JSONValue(seconds)
    }

    /// `2026-11-22`, for Sidekiq's per-day counters.
    /// Out-of-range times (before 1970, after the year 5138, NaN) clamp to the nearest of those bounds.
    public static func day(_ seconds: Double) -> String {
        var t = time_t(Saturating.int(Saturating.clamp(seconds, to: 0...millisecondThreshold)))
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(parts.tm_year + 1900)-\(pad(parts.tm_mon + 1))-\(pad(parts.tm_mday))"
    }
}

/// The fields of a Sidekiq envelope Conveyor reads, and the ranges it accepts (docs/jobs.md, "Envelope fields").
/// Checked once, when a job is parsed: a field out of range makes the job `MalformedJob` (dead, bytes kept) before
/// anything computes with it, so retry arithmetic, timestamps and counters only ever see these ranges.
public enum JobEnvelope {
    /// Timestamps (`created_at`, `enqueued_at`, `at`, `failed_at`, `retried_at`): Unix seconds up to 1e11 (the year
    /// 5138), or Sidekiq 8's integer milliseconds above that, up to 1e14 (the same year). Nanoseconds,
    /// microseconds, negatives and non-finite numbers are refused.
    public static let timestampRange: ClosedRange<Double> = 0...1e14
    public static let timestampFields = ["created_at", "enqueued_at", "at", "failed_at", "retried_at"]
    /// `retry`: `true`, `false` or an integer count of retries after the first run.
    public static let retryRange: ClosedRange<Int> = 0...1_000_000
    /// `retry_count`: Sidekiq's 0-based count of failed runs; -1 after Sidekiq's "Retry Now" of a first retry.
    public static let retryCountRange: ClosedRange<Int> = -1...1_000_000
    /// `class` and `queue`, in UTF-8 bytes (they name Redis keys, log fields and dashboard rows); neither may hold a
    /// control character.
    public static let maxNameBytes = 256
    /// `error_class`, in UTF-8 bytes.
    public static let maxErrorClassBytes = 256
    /// `error_message`, in UTF-8 bytes (Conveyor writes at most 4,000).
    public static let maxErrorMessageBytes = 65_536

    /// `timeout`: the job's own deadline in seconds, from a millisecond to seven days.
    public static let timeoutRange: ClosedRange<Double> = 0.001...604_800

    /// Throws `MalformedJob` naming the first field of `payload` outside its range.
    public static func validate(_ payload: JSONObject) throws(JobFailure) {
        try string("class", in: payload, maxBytes: maxNameBytes, required: true, plainText: true)
        try string("queue", in: payload, maxBytes: maxNameBytes, required: false, plainText: true)
        try string("error_class", in: payload, maxBytes: maxErrorClassBytes, required: false, allowEmpty: true)
        try string("error_message", in: payload, maxBytes: maxErrorMessageBytes, required: false, allowEmpty: true)
        for field in timestampFields {
            guard let value = payload[field], value != .null else { continue }
            guard let d = value.doubleValue, timestampRange.contains(d) else {
                throw refused(field, value, "must be Unix seconds (at most 1e11) or milliseconds (at most 1e14), not negative")
            }
        }
        switch payload["retry"] {
        case nil, .null?, .bool?: break
        case let value?:
            guard let n = value.intValue, retryRange.contains(n) else {
                throw refused("retry", value, "must be true, false or an integer in \(retryRange.lowerBound)...\(retryRange.upperBound)")
            }
        }
        if let value = payload["timeout"], value != .null {
            guard let seconds = value.doubleValue, timeoutRange.contains(seconds) else {
                throw refused("timeout", value, "must be a number of seconds in 0.001...604800")
            }
        }
        if let value = payload["retry_count"], value != .null {
            guard let n = value.intValue, retryCountRange.contains(n) else {
                throw refused("retry_count", value, "must be an integer in \(retryCountRange.lowerBound)...\(retryCountRange.upperBound)")
            }
        }
    }

    /// - Parameter plainText: refuse control characters (names that become Redis keys, log fields and labels).
    private static func string(
        _ field: String, in payload: JSONObject, maxBytes: Int, required: Bool, allowEmpty: Bool = false, plainText: Bool = false
    ) throws(JobFailure) {
        guard let value = payload[field], value != .null else {
            if required { throw .permanent(.malformedJob, "payload has no \"\(field)\" string") }
            return
        }
        guard case .string(let text) = value else { throw refused(field, value, "must be a string") }
        if text.isEmpty && !allowEmpty { throw refused(field, value, "must not be empty") }
        let bytes = text.utf8.count
        if bytes > maxBytes {
            throw .permanent(
                .malformedJob, "\"\(field)\" is \(bytes) bytes long (\(shown(value))): must be at most \(maxBytes) bytes")
        }
        if plainText && Job.containsControlCharacters(text) { throw refused(field, value, "must not contain control characters") }
    }

    private static func refused(_ field: String, _ value: JSONValue, _ rule: String) -> JobFailure {
        .permanent(.malformedJob, "\"\(field)\" is \(shown(value)): \(rule)")
    }

    /// The offending value for a message: numbers as written, strings quoted, both cut to 64 characters.
    private static func shown(_ value: JSONValue) -> String {
        let text: String
        switch value {
        case .number(let literal): text = literal
        case .string(let s): text = "\"" + s + "\""
        default: text = "a JSON \(value.typeName)"
        }
        return text.count <= 64 ? text : String(text.prefix(64)) + "… (\(text.count) characters)"
    }
}
