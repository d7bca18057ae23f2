import Foundation

/// A job as fetched from Redis: the exact bytes (needed to remove it from lists and sets) and its parsed envelope.
public struct Job: Sendable {
    /// The payload exactly as it was stored.
    public let raw: [UInt8]
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
        return max(0, count + 1)
    }

    /// When the job was last pushed onto its queue, in Unix seconds.
    public var enqueuedAt: Double? { payload["enqueued_at"].flatMap(JobTime.seconds) }
    public var createdAt: Double? { payload["created_at"].flatMap(JobTime.seconds) }

    /// Parses and validates the Sidekiq envelope Conveyor accepts.
    /// - Parameter queue: the queue it was fetched from, used when the payload names none.
    public init(raw: [UInt8], fetchedFrom queue: String? = nil) throws(JobFailure) {
        let value: JSONValue
        do {
            value = try JSONValue(parsing: raw)
        } catch {
            throw .permanent(.malformedJob, "payload is not JSON: \(error)")
        }
        guard case .object(let payload) = value else {
            throw .permanent(.malformedJob, "payload must be a JSON object, got \(value.typeName)")
        }
        guard let jobClass = payload["class"]?.stringValue, !jobClass.isEmpty else {
            throw .permanent(.malformedJob, "payload has no \"class\" string")
        }
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
        self.jid = payload["jid"]?.stringValue ?? ""
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
        // C0 controls and DEL are single bytes; C1 controls (U+0080-U+009F) are 0xC2 0x80-0x9F in UTF-8.
        var previous: UInt8 = 0
        for byte in jid.utf8 {
            if byte < 0x20 || byte == 0x7F || (previous == 0xC2 && byte >= 0x80 && byte <= 0x9F) { return false }
            previous = byte
        }
        return true
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
    static let millisecondThreshold = 1e11

    public static func now() -> Double { Date().timeIntervalSince1970 }

    /// A timestamp field as Unix seconds.
    public static func seconds(_ value: JSONValue) -> Double? {
        guard let d = value.doubleValue else { return nil }
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
        usesMilliseconds(payload) ? JSONValue(Int((seconds * 1000).rounded())) : JSONValue(seconds)
    }

    /// `2026-11-22`, for Sidekiq's per-day counters.
    public static func day(_ seconds: Double) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(parts.tm_year + 1900)-\(pad(parts.tm_mon + 1))-\(pad(parts.tm_mday))"
    }
}
