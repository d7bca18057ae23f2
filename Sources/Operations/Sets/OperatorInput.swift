import Foundation

/// Parsing of what operators type on the command line.
public enum OperatorInput {
    /// A point in time: Unix seconds (`1763780000`), ISO 8601 (`2026-11-22T04:00:00Z`, `2026-11-22`), or an age
    /// meaning "that long ago" (`90s`, `30m`, `2h`, `7d`).
    public static func time(_ text: String, now: Double? = nil) -> Double? {
        let now = now ?? Date().timeIntervalSince1970
        if let seconds = duration(text) { return now - seconds }
        if let n = Double(text) { return n > 100_000_000_000 ? n / 1000 : n }
        let iso = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [
            [.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime], [.withFullDate],
        ] {
            iso.formatOptions = options
            if let d = iso.date(from: text) { return d.timeIntervalSince1970 }
        }
        return nil
    }

    /// `250ms`, `90s`, `30m`, `2h`, `7d` in seconds.
    public static func duration(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400), ("w", 604_800)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            if let n = Double(text.dropLast(suffix.count)), n >= 0 { return n * scale }
        }
        return nil
    }

    /// `--rate 50/s`, `50`, `300/m`, `1000/h` in jobs per second.
    public static func rate(_ text: String) -> Double? {
        let parts = text.split(separator: "/")
        guard let n = Double(parts.first ?? ""), n > 0 else { return nil }
        if parts.count == 1 { return n }
        switch parts[1] {
        case "s", "sec": return n
        case "m", "min": return n / 60
        case "h": return n / 3600
        default: return nil
        }
    }
}
