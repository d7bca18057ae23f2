public import ConveyorCore
public import Foundation

/// One entry of the config file's `schedules:` block, checked: a job of `className` on `queue` with `args` at every
/// firing of `cron`; after an outage `catchUp` decides which missed firings within `catchUpWindow` still run.
public struct Schedule: Sendable, Equatable {
    public enum CatchUp: String, Sendable, CaseIterable {
        /// Missed firings are dropped; only firings from now on run.
        case skip
        /// The most recent missed firing within the window runs once.
        case latest
        /// Every missed firing within the window runs, oldest first.
        case all
    }

    public let name: String
    public let cron: CronExpression
    public let className: String
    public let queue: String
    /// The job's arguments as a JSON array.
    public let args: [JSONValue]
    public let catchUp: CatchUp
    /// Seconds.
    public let catchUpWindow: Int64
    /// Where it is declared, for messages.
    public let origin: String

    /// Default catch-up window: one hour.
    public static let defaultWindow: Int64 = 3600
    /// Longest catch-up window: seven days (claimed ticks are remembered a day longer than the window).
    public static let maximumWindow: Int64 = 7 * 86400
    /// Most firings one catch-up replays for one schedule.
    public static let maximumReplay = 10_000

    public init(
        name: String, cron: CronExpression, className: String, queue: String = "default", args: [JSONValue] = [],
        catchUp: CatchUp = .latest, catchUpWindow: Int64 = Schedule.defaultWindow, origin: String = ""
    ) {
        self.name = name
        self.cron = cron
        self.className = className
        self.queue = queue
        self.args = args
        self.catchUp = catchUp
        self.catchUpWindow = catchUpWindow
        self.origin = origin
    }

    /// A schedule name: what sidekiq-cron and Redis keys can carry (1-200 bytes of letters, digits, `-_.:`).
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 200 && name.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "-_.:".unicodeScalars.contains($0)) }
    }

    /// Checks the file's `schedules:` block: each entry's cron line and zone, class (`classQueue` gives a known
    /// class's own queue, the default when `queue:` is not given), queue, args, catch_up and catch_up_window. Every
    /// refusal names the schedule, the file and the line.
    public static func check(_ file: SettingsFile, classQueue: (String) -> String?) -> (schedules: [Schedule], problems: [String]) {
        var schedules: [Schedule] = []
        var problems = file.scheduleProblems
        for raw in file.schedules {
            func at(_ key: String) -> String { "\(file.path) line \(raw.fields[key]?.line ?? raw.line): schedule \(raw.name)" }
            let before = problems.count
            if !isValidName(raw.name) {
                problems.append("\(file.path) line \(raw.line): schedule name \"\(raw.name.prefix(80))\" must be 1-200 letters, digits or -_.:")
            }
            for key in raw.fields.keys where !["cron", "class", "queue", "args", "catch_up", "catch_up_window", "description"].contains(key) {
                problems.append("\(at(key)): unknown key \(key) (cron, class, queue, args, catch_up, catch_up_window, description)")
            }
            var cron: CronExpression?
            if let line = raw.fields["cron"]?.value {
                do { cron = try CronExpression(line) } catch { problems.append("\(at("cron")): \(error)") }
            } else {
                problems.append("\(at("cron")): cron is required")
            }
            let className = raw.fields["class"]?.value ?? ""
            if className.isEmpty {
                problems.append("\(at("class")): class is required")
            } else if classQueue(className) == nil {
                problems.append("\(at("class")): no job class \"\(className.prefix(80))\" in this worker")
            }
            let queue = raw.fields["queue"]?.value ?? classQueue(className) ?? "default"
            if queue.isEmpty || queue.utf8.count > Job.maxNameBytes || queue.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7f }) {
                problems.append("\(at("queue")): queue \"\(queue.prefix(80))\" must be 1-\(Job.maxNameBytes) bytes without spaces or control characters")
            }
            var args: [JSONValue] = []
            if let text = raw.argsJSON {
                switch try? JSONValue(parsing: text) {
                case .array(let list)?: args = list
                case let value?: args = [value]
                case nil: problems.append("\(at("args")): args cannot be read as JSON")
                }
            }
            var catchUp = CatchUp.latest
            if let word = raw.fields["catch_up"]?.value {
                if let c = CatchUp(rawValue: word) { catchUp = c } else { problems.append("\(at("catch_up")): catch_up \"\(word.prefix(80))\" is not skip, latest or all") }
            }
            var window = defaultWindow
            if let text = raw.fields["catch_up_window"]?.value {
                if let seconds = parseDuration(text), seconds >= 0, seconds <= maximumWindow {
                    window = seconds
                } else {
                    problems.append("\(at("catch_up_window")): catch_up_window \"\(text.prefix(80))\" is not a duration of 0s to 7d (like 90s, 30m, 1h, 2d)")
                }
            }
            if problems.count == before, let cron {
                schedules.append(
                    Schedule(
                        name: raw.name, cron: cron, className: className, queue: queue, args: args, catchUp: catchUp, catchUpWindow: window,
                        origin: "\(file.path) line \(raw.line)"))
            }
        }
        return (schedules, problems)
    }

    /// `90`, `90s`, `30m`, `1h`, `2d` as seconds; nil for anything else or past a day count of 10,000.
    public static func parseDuration(_ text: String) -> Int64? {
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        var digits = Substring(text)
        var unit: Int64 = 1
        if let last = text.last, let u = units[last] {
            unit = u
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int64(digits) else { return nil }
        let (value, overflow) = n.multipliedReportingOverflow(by: unit)
        return overflow ? nil : value
    }
}
