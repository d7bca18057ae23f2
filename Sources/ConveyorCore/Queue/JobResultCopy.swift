import Foundation

/// `conveyor.job_results` rows in the text format of PostgreSQL's `COPY ... FROM STDIN`: what a worker's outcome
/// journal keeps in Redis and what the result store sends, encoded once on the worker's path. Tab-separated, `\N` for
/// NULL, timestamps as UTC text; every value made storable first (`storable`).
public enum JobResultCopy {
    /// `r` as PostgreSQL can store it, the one rule both write paths apply: an enqueue time outside `timestampRange`
    /// (a producer's nanoseconds, `1e308`) unknown, start and finish clamped into it, a result without `\u0000`
    /// (text fields lose their NUL where they are encoded).
    public static func storable(_ r: JobResultRecord) -> JobResultRecord {
        var r = r
        if let enqueued = r.enqueuedAt, !(enqueued.isFinite && timestampRange.contains(enqueued)) { r.enqueuedAt = nil }
        r.startedAt = Saturating.clamp(r.startedAt, to: timestampRange)
        r.finishedAt = Saturating.clamp(r.finishedAt, to: timestampRange)
        r.result = r.result.map(jsonWithoutNUL)
        return r
    }

    public static func appendLine(_ r: JobResultRecord, to out: inout [UInt8]) {
        let r = storable(r)
        field(r.jid, &out); out.append(9)
        field(r.jobClass, &out); out.append(9)
        field(r.queue, &out); out.append(9)
        field(r.status, &out); out.append(9)
        out.append(contentsOf: String(r.attempts).utf8); out.append(9)
        field(r.result, &out); out.append(9)
        field(r.errorClass, &out); out.append(9)
        field(r.errorMessage, &out); out.append(9)
        field(r.correlationKey, &out); out.append(9)
        if let enqueued = r.enqueuedAt { timestamp(enqueued, &out) } else { out.append(contentsOf: [92, 78]) }
        out.append(9)
        timestamp(r.startedAt, &out); out.append(9)
        timestamp(r.finishedAt, &out); out.append(10)
    }

    /// One text field: backslash, tab, newline and carriage return escaped; NUL (which PostgreSQL text cannot
    /// hold) replaced by U+FFFD.
    public static func field(_ value: String?, _ out: inout [UInt8]) {
        guard let value else {
            out.append(contentsOf: [92, 78])  // \N
            return
        }
        for byte in value.utf8 {
            switch byte {
            case 92: out.append(contentsOf: [92, 92])
            case 9: out.append(contentsOf: [92, 116])
            case 10: out.append(contentsOf: [92, 110])
            case 13: out.append(contentsOf: [92, 114])
            case 0: out.append(contentsOf: [0xEF, 0xBF, 0xBD])
            default: out.append(byte)
            }
        }
    }

    /// JSON text with every `\u0000` escape (which PostgreSQL's jsonb refuses) replaced by `\ufffd`; escaped
    /// backslashes are skipped, so a literal `\\u0000` stays as it is.
    public static func jsonWithoutNUL(_ text: String) -> String {
        let bytes = Array(text.utf8)
        guard bytes.count >= 6, text.contains("\\u0000") else { return text }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            guard bytes[i] == 92, i + 1 < bytes.count else {
                out.append(bytes[i])
                i += 1
                continue
            }
            if bytes[i + 1] == 117, i + 5 < bytes.count, bytes[(i + 2)...(i + 5)].elementsEqual([48, 48, 48, 48]) {
                out.append(contentsOf: Array("\\ufffd".utf8))
                i += 6
            } else {
                out.append(contentsOf: bytes[i...(i + 1)])
                i += 2
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The times `timestamp` writes: years 1 to 9999 (PostgreSQL stores them; a later one is out of its range).
    public static let timestampRange: ClosedRange<Double> = -62_135_596_800...253_402_300_799

    /// Unix seconds as `YYYY-MM-DD HH:MM:SS.ffffff+00`, rounded to the microsecond as `to_timestamp` does; clamped into
    /// `timestampRange` (NaN is 1970), so no value can overflow here.
    public static func timestamp(_ seconds: Double, _ out: inout [UInt8]) {
        let clamped = seconds.isNaN ? 0 : min(timestampRange.upperBound, max(timestampRange.lowerBound, seconds))
        let micros = Int64(exactly: (clamped * 1_000_000).rounded()) ?? 0
        var secs = micros / 1_000_000
        var fraction = micros % 1_000_000
        if fraction < 0 { fraction += 1_000_000; secs -= 1 }
        var days = secs / 86_400
        var rest = secs % 86_400
        if rest < 0 { rest += 86_400; days -= 1 }
        // Days since 1970-01-01 to a civil date (H. Hinnant's days_from_civil, inverted).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        digits(year, 4, &out); out.append(45); digits(month, 2, &out); out.append(45); digits(day, 2, &out)
        out.append(32)
        digits(rest / 3600, 2, &out); out.append(58); digits(rest / 60 % 60, 2, &out); out.append(58)
        digits(rest % 60, 2, &out); out.append(46); digits(fraction, 6, &out)
        out.append(contentsOf: [43, 48, 48])  // +00
    }

    /// `value` in decimal, zero-padded to `width` digits.
    private static func digits(_ value: Int64, _ width: Int, _ out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: repeatElement(48, count: width))
        var v = value
        var i = start + width - 1
        while i >= start { out[i] = UInt8(48 + v % 10); v /= 10; i -= 1 }
    }
}
