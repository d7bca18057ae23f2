import Foundation

/// Parsing of what operators type on the command line (and into the dashboard's filters). One rule for every
/// duration, time and rate: finite, non-negative and within a documented maximum, or refused with a message that
/// names the setting and the range. Nothing here traps on `inf`, `nan`, `1e308` or `-1`.
public enum OperatorInput {
    /// The longest duration any setting accepts: 10 years (3650d).
    public static let maximumDuration: Double = 3650 * 86_400
    /// The latest time accepted: 9999-12-31T23:59:59Z.
    public static let latestTime: Double = 253_402_300_799
    /// The fastest rate accepted, in jobs per second.
    public static let maximumRate: Double = 1_000_000
    /// The slowest rate accepted: one job an hour.
    public static let minimumRate: Double = 1.0 / 3600

    private static let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400), ("w", 604_800)]

    /// A point in time: Unix seconds (`1763780000`, or milliseconds), ISO 8601 (`2026-11-22T04:00:00Z`,
    /// `2026-11-22`), or an age meaning "that long ago" (`90s`, `30m`, `2h`, `7d`). Nil for anything else, and for
    /// times before 1970 or after 9999.
    public static func time(_ text: String, now: Double? = nil) -> Double? {
        let now = now ?? Date().timeIntervalSince1970
        if let seconds = duration(text) { return max(0, now - seconds) }
        if let n = Double(text) {
            let seconds = n > 100_000_000_000 ? n / 1000 : n
            return seconds.isFinite && (0...latestTime).contains(seconds) ? seconds : nil
        }
        let iso = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [
            [.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime], [.withFullDate],
        ] {
            iso.formatOptions = options
            if let d = iso.date(from: text) {
                let seconds = d.timeIntervalSince1970
                return seconds.isFinite && (0...latestTime).contains(seconds) ? seconds : nil
            }
        }
        return nil
    }

    /// `250ms`, `90s`, `30m`, `2h`, `7d`, `1w` in seconds; nil unless finite and within 0...`maximumDuration`.
    public static func duration(_ text: String) -> Double? {
        try? duration(text, name: "", range: 0...maximumDuration)
    }

    /// A duration with a unit (`250ms`, `90s`, `30m`, `2h`, `7d`, `1w`) or, when `plainSeconds`, a bare number of
    /// seconds; refused unless finite and within `range` (which is itself cut to 0...`maximumDuration`), with a
    /// message naming `name` (the flag or variable) and the range.
    public static func duration(
        _ text: String, name: String, range: ClosedRange<Double> = 0...maximumDuration, plainSeconds: Bool = false
    ) throws(OperatorInputError) -> Double {
        let low = max(0, range.lowerBound)
        let high = min(maximumDuration, max(low, range.upperBound))
        let refused = OperatorInputError(
            "\(name) \(text): expected a duration from \(describe(seconds: low)) to \(describe(seconds: high)), like 500ms, 30s, 5m, 2h, 7d")
        guard text.utf8.count <= 64, let seconds = rawDuration(text, plainSeconds: plainSeconds) else { throw refused }
        guard seconds.isFinite, seconds >= low, seconds <= high else { throw refused }
        return seconds
    }

    /// The number of seconds `text` spells (`inf`, `-1` and `1e400` included), nil when it is not a duration at all.
    private static func rawDuration(_ text: String, plainSeconds: Bool) -> Double? {
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            // `5m` must not be read as `5` with unit `m` of `ms`: the longest matching suffix comes first above.
            if let n = Double(text.dropLast(suffix.count)) { return n * scale }
            return nil
        }
        return plainSeconds ? Double(text) : nil
    }

    /// A `Duration` from seconds that were checked (or not): nan and negatives give zero, anything above
    /// `maximumDuration` gives `maximumDuration`. Never traps.
    public static func clampedDuration(seconds: Double) -> Duration {
        let s = seconds.isNaN ? 0 : min(maximumDuration, max(0, seconds))
        return .milliseconds(Int64(exactly: (s * 1000).rounded()) ?? 0)
    }

    /// `25s`, `300ms`, `2h`, `3650d`: how a duration is shown in help and messages.
    public static func describe(seconds: Double) -> String {
        let clamped = seconds.isNaN ? 0 : min(maximumDuration, max(0, seconds))
        let ms = Int64(exactly: (clamped * 1000).rounded()) ?? 0
        if ms % 1000 != 0 { return "\(ms)ms" }
        let s = ms / 1000
        if s != 0 && s % 86_400 == 0 { return "\(s / 86_400)d" }
        if s != 0 && s % 3600 == 0 { return "\(s / 3600)h" }
        if s != 0 && s % 60 == 0 { return "\(s / 60)m" }
        return "\(s)s"
    }

    /// `--rate 50/s`, `50`, `300/m`, `1000/h` in jobs per second; nil unless finite and within
    /// `minimumRate`...`maximumRate` (one an hour to a million a second).
    public static func rate(_ text: String) -> Double? {
        guard text.utf8.count <= 64 else { return nil }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let n = Double(parts.first ?? ""), n.isFinite, n > 0 else { return nil }
        let perSecond: Double
        if parts.count == 1 {
            perSecond = n
        } else {
            switch parts[1] {
            case "s", "sec": perSecond = n
            case "m", "min": perSecond = n / 60
            case "h": perSecond = n / 3600
            default: return nil
            }
        }
        return (minimumRate...maximumRate).contains(perSecond) ? perSecond : nil
    }
}

/// A value an operator typed that cannot be used; the message names the setting, the value and what is accepted.
public struct OperatorInputError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
