public import Foundation

/// A cron line: 5 fields (`minute hour day-of-month month day-of-week`) or 6 with seconds first, then an optional
/// IANA zone (`30 2 * * * Europe/Berlin`; UTC without one). Fields take `*`, numbers, `a-b`, lists and `/step`;
/// months and weekdays also take names (`jan`, `mon`); weekday 7 is Sunday. When neither day field is `*` a day
/// matches either (croniter's rule: `*/2` counts as restricted, unlike Vixie cron; a whole-week weekday field
/// counts as `*` beside a day-of-month field starting with `*`).
///
/// Times are matched on the zone's wall clock. Daylight saving: a wall time that does not exist (the spring-forward
/// gap) fires once, at the end of the gap; a wall time that exists twice (the fall-back hour) fires once, at its
/// first occurrence.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    public let seconds: Set<Int>
    public let minutes: Set<Int>
    public let hours: Set<Int>
    public let daysOfMonth: Set<Int>
    public let months: Set<Int>
    /// 0 = Sunday ... 6 = Saturday.
    public let daysOfWeek: Set<Int>
    /// Both day fields restricted: a day matches either.
    public let dayOr: Bool
    public let hasSeconds: Bool
    public let timeZone: TimeZone
    /// As written.
    public let source: String

    public var description: String { source }

    /// Why a line is refused, naming the field and the value.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// The longest line accepted.
    public static let maximumLength = 256

    public init(_ line: String) throws(ParseError) {
        guard line.utf8.count <= Self.maximumLength else {
            throw ParseError(message: "cron line longer than \(Self.maximumLength) bytes")
        }
        var parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        var zone = TimeZone(identifier: "UTC")!
        if let last = parts.last, last.contains(where: { $0.isLetter }), !Self.isNameField(last) {
            guard let tz = Self.zone(last) else { throw ParseError(message: "unknown time zone \"\(Self.quoted(last))\"") }
            zone = tz
            parts.removeLast()
        }
        guard parts.count == 5 || parts.count == 6 else {
            throw ParseError(message: "cron line \"\(Self.quoted(line))\" has \(parts.count) fields; expected 5 (minute hour day month weekday) or 6 (seconds first), then an optional zone")
        }
        let hasSeconds = parts.count == 6
        if !hasSeconds { parts.insert("0", at: 0) }
        seconds = try Self.field(parts[0], "second", 0...59, names: [:])
        minutes = try Self.field(parts[1], "minute", 0...59, names: [:])
        hours = try Self.field(parts[2], "hour", 0...23, names: [:])
        daysOfMonth = try Self.field(parts[3], "day of month", 1...31, names: [:])
        months = try Self.field(parts[4], "month", 1...12, names: Self.monthNames)
        var dow = try Self.field(parts[5], "day of week", 0...7, names: Self.dayNames)
        if dow.remove(7) != nil { dow.insert(0) }
        daysOfWeek = dow
        // croniter's rule: a weekday field covering the whole week counts as `*` when the day-of-month field starts
        // with `*` (`*/4`) in a 5-field line; otherwise only a literal `*` does.
        let weekdayStar = parts[5] == "*" || (!hasSeconds && dow == Set(0...6) && parts[3].hasPrefix("*"))
        dayOr = parts[3] != "*" && !weekdayStar
        self.hasSeconds = hasSeconds
        timeZone = zone
        source = line
        let dom = daysOfMonth
        let possible = months.contains(where: { m in dom.contains(where: { $0 <= Self.maxDays[m - 1] }) })
        guard possible || dayOr || parts[3].hasPrefix("*") else { throw ParseError(message: "cron line \"\(Self.quoted(line))\" names a day no month in it has") }
    }

    /// The zone of an identifier, IANA names only (`Europe/Berlin`, `UTC`); abbreviations like `CET` are refused
    /// unless tzdata has them as a file.
    static func zone(_ name: String) -> TimeZone? {
        guard name.utf8.count <= 64, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "/_+-".contains($0)) }),
            !name.contains("..")
        else { return nil }
        if name == "UTC" || name == "Etc/UTC" { return TimeZone(identifier: "UTC") }
        // The system's tzdata names the zones (Foundation's known list misses links like Asia/Kolkata).
        var isDirectory: ObjCBool = false
        let root = "/usr/share/zoneinfo"
        if FileManager.default.fileExists(atPath: root) {
            guard !name.hasPrefix("/"), FileManager.default.fileExists(atPath: root + "/" + name, isDirectory: &isDirectory), !isDirectory.boolValue
            else { return nil }
        }
        return TimeZone(identifier: name)
    }

    static let monthNames = ["jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12]
    static let dayNames = ["sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6]
    static let maxDays = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

    private static func isNameField(_ text: String) -> Bool {
        text.lowercased().split(whereSeparator: { ",-/".contains($0) }).allSatisfy {
            Int($0) != nil || monthNames[String($0)] != nil || dayNames[String($0)] != nil || $0 == "*"
        }
    }

    private static func quoted(_ text: String) -> String {
        let clean = String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : Character($0) })
        return clean.count > 80 ? String(clean.prefix(80)) + "..." : clean
    }

    private static func field(_ text: String, _ name: String, _ range: ClosedRange<Int>, names: [String: Int]) throws(ParseError) -> Set<Int> {
        var result = Set<Int>()
        func value(_ token: Substring) throws(ParseError) -> Int {
            if let n = Int(token), range.contains(n), token.allSatisfy(\.isNumber) { return n }
            if let n = names[token.lowercased()] { return n }
            throw ParseError(message: "\(name) \"\(quoted(String(token)))\" is not in \(range.lowerBound)-\(range.upperBound)")
        }
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = item.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2, !pieces[0].isEmpty else { throw ParseError(message: "\(name) \"\(quoted(text))\" is not a cron field") }
            var step = 1
            if pieces.count == 2 {
                guard let s = Int(pieces[1]), pieces[1].allSatisfy(\.isNumber), s >= 1, s <= range.upperBound + 1 else {
                    throw ParseError(message: "\(name) step \"\(quoted(String(pieces[1])))\" is not in 1-\(range.upperBound + 1)")
                }
                step = s
            }
            var low: Int
            var high: Int
            if pieces[0] == "*" {
                low = range.lowerBound
                high = name == "day of week" ? 6 : range.upperBound
            } else if let dash = pieces[0].firstIndex(of: "-") {
                low = try value(pieces[0][..<dash])
                high = try value(pieces[0][pieces[0].index(after: dash)...])
                guard low <= high else { throw ParseError(message: "\(name) range \"\(quoted(String(pieces[0])))\" runs backwards") }
            } else {
                low = try value(pieces[0])
                high = pieces.count == 2 ? (name == "day of week" ? 6 : range.upperBound) : low
            }
            var v = low
            while v <= high {
                result.insert(v)
                v += step
            }
        }
        return result
    }

    // MARK: - Next run

    /// The first firing strictly after `instant` (epoch seconds), or nil when none comes within `years`.
    public func next(after instant: Int64, years: Int = 8) -> Int64? {
        let offsetNow = Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(instant))))
        // Firing instants are non-decreasing in wall time, so start a few hours of wall clock before `instant`'s own.
        var wall = instant + offsetNow - 3 * 3600
        let limit = wall + Int64(years) * 366 * 86400
        while let candidate = nextWall(atOrAfter: wall, limit: limit) {
            let fire = instantOf(wall: candidate)
            if fire > instant { return fire }
            wall = candidate + 1
        }
        return nil
    }

    /// Every firing in `(after, through]`, at most `limit` of them.
    public func firings(after: Int64, through: Int64, limit: Int) -> [Int64] {
        var out: [Int64] = []
        var t = after
        while out.count < limit, let n = next(after: t), n <= through {
            out.append(n)
            t = n
        }
        return out
    }

    /// The latest firing at or before `instant` within `window` seconds, or nil.
    public func latest(atOrBefore instant: Int64, window: Int64) -> Int64? {
        firings(after: instant - window - 1, through: instant, limit: Int.max).last
    }

    /// The instant a wall time (seconds since 1970 on the zone's clock) fires at: its only occurrence, the first of
    /// two in a fall-back hour, or the end of the gap for a time the spring-forward skips.
    func instantOf(wall: Int64) -> Int64 {
        let before = offset(at: wall - 86400)
        let after = offset(at: wall + 86400)
        let candidates = Set([before, after, offset(at: wall)]).map { wall - $0 }.filter { offset(at: $0) == wall - $0 }
        if let first = candidates.min() { return first }
        // In a gap: the transition instant lies between wall - max and wall - min offset; find its first second.
        var low = wall - max(before, after)
        var high = wall - min(before, after)
        let later = offset(at: high)
        while low < high {
            let mid = low + (high - low) / 2
            if offset(at: mid) == later { high = mid } else { low = mid + 1 }
        }
        return low
    }

    private func offset(at instant: Int64) -> Int64 {
        Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(instant))))
    }

    /// The first matching wall time at or after `wall`, searched field by field.
    func nextWall(atOrAfter wall: Int64, limit: Int64) -> Int64? {
        var t = wall
        while t <= limit {
            let days = Self.floorDiv(t, 86400)
            var rest = t - days * 86400
            let (y, m, d) = Self.civil(fromDays: days)
            if !months.contains(m) {
                // First day of the next month.
                let (ny, nm) = m == 12 ? (y + 1, 1) : (y, m + 1)
                t = Self.days(fromCivil: ny, nm, 1) * 86400
                continue
            }
            if !dayMatches(y, m, d, days) {
                t = (days + 1) * 86400
                continue
            }
            let h = Int(rest / 3600)
            rest -= Int64(h) * 3600
            guard let nh = hours.filter({ $0 >= h }).min() else {
                t = (days + 1) * 86400
                continue
            }
            if nh != h {
                t = days * 86400 + Int64(nh) * 3600
                continue
            }
            let mi = Int(rest / 60)
            let s = Int(rest - Int64(mi) * 60)
            guard let nm = minutes.filter({ $0 >= mi }).min() else {
                t = days * 86400 + Int64(h + 1) * 3600
                continue
            }
            if nm != mi {
                t = days * 86400 + Int64(h) * 3600 + Int64(nm) * 60
                continue
            }
            guard let ns = seconds.filter({ $0 >= s }).min() else {
                t = days * 86400 + Int64(h) * 3600 + Int64(mi + 1) * 60
                continue
            }
            return days * 86400 + Int64(h) * 3600 + Int64(mi) * 60 + Int64(ns)
        }
        return nil
    }

    private func dayMatches(_ y: Int, _ m: Int, _ d: Int, _ days: Int64) -> Bool {
        let weekday = Int(Self.floorMod(days + 4, 7))  // 1970-01-01 was a Thursday.
        let dom = daysOfMonth.contains(d)
        let dow = daysOfWeek.contains(weekday)
        return dayOr ? (dom || dow) : (dom && dow)
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }
    static func floorMod(_ a: Int64, _ b: Int64) -> Int64 { a - floorDiv(a, b) * b }

    /// Howard Hinnant's days_from_civil / civil_from_days.
    static func days(fromCivil y0: Int, _ m: Int, _ d: Int) -> Int64 {
        let y = Int64(m <= 2 ? y0 - 1 : y0)
        let era = floorDiv(y, 400)
        let yoe = y - era * 400
        let mp = Int64((m + 9) % 12)
        let doy = (153 * mp + 2) / 5 + Int64(d) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func civil(fromDays z0: Int64) -> (Int, Int, Int) {
        let z = z0 + 719468
        let era = floorDiv(z, 146097)
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = Int(doy - (153 * mp + 2) / 5 + 1)
        let m = Int(mp < 10 ? mp + 3 : mp - 9)
        let y = Int(yoe + era * 400) + (m <= 2 ? 1 : 0)
        return (y, m, d)
    }
}
