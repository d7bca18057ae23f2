import Foundation
import Testing

@testable import Schedules

@Suite("CronExpression")
struct CronExpressionTests {
    static let oracle = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("croniter_oracle.py").path

    /// Epoch seconds of a UTC date.
    static func utc(_ y: Int, _ m: Int, _ d: Int, _ h: Int = 0, _ mi: Int = 0, _ s: Int = 0) -> Int64 {
        CronExpression.days(fromCivil: y, m, d) * 86400 + Int64(h * 3600 + mi * 60 + s)
    }

    @Test func parsesFieldsNamesAndZones() throws {
        let c = try CronExpression("*/15 9-17 * jan,JUL mon-fri Europe/Berlin")
        #expect(c.minutes == [0, 15, 30, 45])
        #expect(c.hours == Set(9...17))
        #expect(c.months == [1, 7])
        #expect(c.daysOfWeek == Set(1...5))
        #expect(c.timeZone.identifier == "Europe/Berlin")
        #expect(!c.hasSeconds && c.seconds == [0])
        let s = try CronExpression("*/5 * * * * *")
        #expect(s.hasSeconds && s.seconds.count == 12)
        #expect(try CronExpression("0 0 * * 7").daysOfWeek == [0])
        #expect(try CronExpression("0 0 1 * *").timeZone.secondsFromGMT() == 0)
    }

    @Test(arguments: [
        "", "* * * *", "* * * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *", "* * * 13 *", "* * * * 8",
        "*/0 * * * *", "5-1 * * * *", "-1 * * * *", "1,,2 * * * *", "* * * * * Mars/Olympus", "* * * * * ../../etc/passwd",
        "* * 31 2 *", "9223372036854775807 * * * *", "* * * * * Europe/Berlin\u{0}", "1/99 * * * *", "a * * * *",
        String(repeating: "* ", count: 200),
    ])
    func refusesBadLines(_ line: String) {
        #expect(throws: CronExpression.ParseError.self) { try CronExpression(line) }
    }

    @Test func refusalNamesTheFieldAndValue() {
        #expect(throws: CronExpression.ParseError(message: "hour \"24\" is not in 0-23")) { try CronExpression("0 24 * * *") }
        #expect(throws: CronExpression.ParseError(message: "unknown time zone \"Mars/Olympus\"")) {
            try CronExpression("0 1 * * * Mars/Olympus")
        }
    }

    /// Europe/Berlin 2026: clocks go 02:00 -> 03:00 on 29 March and 03:00 -> 02:00 on 25 October.
    @Test func springForwardGapFiresOnceAtTheEndOfTheGap() throws {
        let c = try CronExpression("30 2 * * * Europe/Berlin")
        let fires = c.firings(after: Self.utc(2026, 3, 28), through: Self.utc(2026, 3, 31), limit: 10)
        // 28 March 02:30 CET = 01:30Z; 29 March: 02:30 does not exist, fires at 03:00 CEST = 01:00Z; 30 March 00:30Z.
        #expect(fires == [Self.utc(2026, 3, 28, 1, 30), Self.utc(2026, 3, 29, 1, 0), Self.utc(2026, 3, 30, 0, 30)])
        // Every minute of the gap fires once, all at its end; the hour after it fires normally.
        let m = try CronExpression("* 2 * * * Europe/Berlin")
        let day = m.firings(after: Self.utc(2026, 3, 29, 0), through: Self.utc(2026, 3, 29, 3), limit: 100)
        #expect(day == [Self.utc(2026, 3, 29, 1, 0)])
    }

    @Test func fallBackHourFiresOnce() throws {
        let c = try CronExpression("30 2 * * * Europe/Berlin")
        let fires = c.firings(after: Self.utc(2026, 10, 24), through: Self.utc(2026, 10, 27), limit: 10)
        // 25 October 02:30 happens at 00:30Z (CEST) and again at 01:30Z (CET): only the first fires.
        #expect(fires == [Self.utc(2026, 10, 24, 0, 30), Self.utc(2026, 10, 25, 0, 30), Self.utc(2026, 10, 26, 1, 30)])
        // Asked from inside the repeated hour, the next firing is the next day's.
        #expect(c.next(after: Self.utc(2026, 10, 25, 1, 0)) == Self.utc(2026, 10, 26, 1, 30))
        let hourly = try CronExpression("0 * * * * Europe/Berlin")
        let around = hourly.firings(after: Self.utc(2026, 10, 24, 23, 30), through: Self.utc(2026, 10, 25, 3, 30), limit: 10)
        // Wall 02:00 once (00:00Z); 03:00 CET is 02:00Z.
        #expect(around == [Self.utc(2026, 10, 25, 0, 0), Self.utc(2026, 10, 25, 2, 0), Self.utc(2026, 10, 25, 3, 0)])
    }

    @Test func impossibleDaysAndExtremes() throws {
        #expect(try CronExpression("0 0 29 2 *").next(after: Self.utc(2026, 1, 1)) == Self.utc(2028, 2, 29))
        let c = try CronExpression("* * * * *")
        #expect(c.next(after: Self.utc(1969, 12, 31, 23, 59, 30)) == 0)
        #expect(c.next(after: Self.utc(2099, 12, 31, 23, 59, 0)) == Self.utc(2100, 1, 1))
    }

    /// Next-run times equal croniter's for 1,000 random patterns, zones and start times; cases whose interval crosses
    /// a DST change are left to the rule tests above (croniter's DST handling differs and is not the rule).
    @Test func matchesCroniterForRandomPatterns() throws {
        var rng = SplitMix(seed: 2026)
        let zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham", "America/Sao_Paulo",
                     "Asia/Tokyo", "Africa/Casablanca", "America/St_Johns", "Europe/London", "Pacific/Kiritimati"]
        func field(_ range: ClosedRange<Int>) -> String {
            switch rng.next(6) {
            case 0, 1: return "*"
            case 2: return String(Int(rng.next(UInt64(range.count))) + range.lowerBound)
            case 3:
                let a = Int(rng.next(UInt64(range.count))) + range.lowerBound
                let b = Int(rng.next(UInt64(range.upperBound - a + 1))) + a
                return "\(a)-\(b)"
            case 4: return "*/\(rng.next(UInt64(range.count / 2)) + 1)"
            default:
                let n = Int(rng.next(3)) + 2
                return Set((0..<n).map { _ in Int(rng.next(UInt64(range.count))) + range.lowerBound }).sorted().map(String.init).joined(separator: ",")
            }
        }
        var cases: [(String, String, Int64)] = []
        while cases.count < 1000 {
            var fields = [field(0...59), field(0...23), field(1...28), field(1...12), field(0...6)]
            if rng.next(4) == 0 { fields.insert(field(0...59), at: 0) }
            let line = fields.joined(separator: " ")
            let zone = zones[Int(rng.next(UInt64(zones.count)))]
            let start = Self.utc(2026, 1, 1) + Int64(rng.next(3 * 365 * 86400))
            cases.append((line, zone, start))
        }
        let input = cases.map { #"{"cron":"\#($0.0)","zone":"\#($0.1)","start":\#($0.2)}"# }.joined(separator: "\n") + "\n"
        let output = try Self.run(["python3", Self.oracle], input: input)
        let answers = output.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(answers.count == 1000)
        var compared = 0
        for (i, answer) in answers.enumerated() where !(answer["dst"] as! Bool) {
            let (line, zone, start) = cases[i]
            let mine = try CronExpression("\(line) \(zone)").next(after: start)
            #expect(mine == (answer["next"] as! NSNumber).int64Value, "\(line) \(zone) after \(start)")
            compared += 1
        }
        #expect(compared >= 800, "only \(compared) cases without a DST change")
    }

    static func run(_ arguments: [String], input: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        let data = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        return String(decoding: data, as: UTF8.self)
    }
}

/// A seeded generator, so a failing case can be replayed.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func next(_ bound: UInt64) -> UInt64 { bound == 0 ? 0 : next() % bound }
}
