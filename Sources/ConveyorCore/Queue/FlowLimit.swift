/// A limit from the config file's `limits:` block: jobs of `classes` grouped by a key read from their arguments, each
/// key allowed `concurrency` running at once (across every process) and `rate` starts per window. The queue backend
/// checks it when it fetches, so a job over its limit is never taken: it waits in its key's line, and keys are
/// served in turn.
///
/// ```yaml
/// limits:
///   per-tenant:
///     classes: [media.ingest, image.thumbnail]
///     key: args.tenant      # a dotted path into the job's arguments; jobs without it share one key
///     concurrency: 2        # running at once per key, across all processes
///     rate: 30/1m           # started per key per window
///     lease: 60s            # how long a slot outlives a worker that stopped renewing it (default 60s)
/// ```
public struct FlowLimit: Sendable, Equatable {
    public var name: String
    public var classes: [String]
    /// The path below the job's arguments object (`args.tenant.id` is `["tenant", "id"]`); empty: one key for all.
    public var keyPath: [String]
    public var concurrency: Int?
    public var rate: Rate?
    /// Milliseconds a running job's slot is held without being renewed (each heartbeat renews its own).
    public var leaseMilliseconds: Int

    public struct Rate: Sendable, Equatable {
        public var starts: Int
        public var windowMilliseconds: Int
        public init(starts: Int, windowMilliseconds: Int) {
            self.starts = starts
            self.windowMilliseconds = windowMilliseconds
        }
    }

    public init(name: String, classes: [String], keyPath: [String] = [], concurrency: Int? = nil, rate: Rate? = nil, leaseMilliseconds: Int = 60_000) {
        self.name = name
        self.classes = classes
        self.keyPath = keyPath
        self.concurrency = concurrency
        self.rate = rate
        self.leaseMilliseconds = leaseMilliseconds
    }

    /// `key:` as written (`args.tenant`), or nil for one key.
    public var keyText: String? { keyPath.isEmpty ? nil : "args." + keyPath.joined(separator: ".") }

    public static let concurrencyRange = 1...100_000
    public static let rateStartsRange = 1...100_000
    /// Windows from a second to a day, in milliseconds.
    public static let windowRange = 1_000...86_400_000
    /// Leases from two seconds to a day, in milliseconds.
    public static let leaseRange = 2_000...86_400_000
    public static let maximumKeyDepth = 8

    /// A limit name: 1-64 letters, digits or `-_.` (it is part of Redis keys and a metric label).
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64 && name.utf8.allSatisfy { isWordByte($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }
    }

    private static func isWordByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == UInt8(ascii: "_")
    }

    /// `args.tenant` or `args.account.id`: `args.` then 1-8 names of 1-64 letters, digits, `-` or `_`.
    public static func parseKeyPath(_ text: String) -> [String]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, parts.count <= maximumKeyDepth + 1, parts[0] == "args" else { return nil }
        let path = Array(parts.dropFirst())
        for part in path {
            guard !part.isEmpty, part.utf8.count <= 64, part.utf8.allSatisfy({ isWordByte($0) || $0 == UInt8(ascii: "-") }) else { return nil }
        }
        return path
    }

    /// `30/1m`, `5/1s`, `1000/1h`, `100/90s`: starts per window. The count is a whole number, the window a whole
    /// number with `ms`, `s`, `m`, `h` or `d` (`1m` when only the unit: `30/m`); nil outside the ranges.
    public static func parseRate(_ text: String) -> Rate? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].utf8.count <= 7, parts[0].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let starts = Int(parts[0]), rateStartsRange.contains(starts)
        else { return nil }
        var window = String(parts[1])
        if let first = window.first, first.isLetter { window = "1" + window }
        guard let ms = milliseconds(window), windowRange.contains(ms) else { return nil }
        return Rate(starts: starts, windowMilliseconds: ms)
    }

    /// `90s`, `500ms`, `2m`, `1h`, `1d` as milliseconds; nil for anything else (no sign, no fraction, no exponent) or
    /// past a day count of 10,000.
    public static func milliseconds(_ text: String) -> Int? {
        let units: [(String, Int)] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            let digits = text.dropLast(suffix.count)
            // `ms` before `s`: "500ms" must not read as 500m + "s".
            guard !digits.isEmpty, digits.utf8.count <= 9, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int(digits) else {
                return nil
            }
            let (product, overflow) = n.multipliedReportingOverflow(by: factor)
            return overflow || product > 10_000 * 86_400_000 ? nil : product
        }
        return nil
    }

    /// Checks the file's `limits:` block. `isKnownClass` says whether this worker has a class; each class may be in one
    /// limit only. Every refusal names the limit, the file and the line.
    public static func check(_ file: SettingsFile, isKnownClass: (String) -> Bool) -> (limits: [FlowLimit], problems: [String]) {
        var limits: [FlowLimit] = []
        var problems = file.limitProblems
        var owner: [String: String] = [:]
        for raw in file.limits {
            func at(_ key: String) -> String { "\(file.path) line \(raw.fields[key]?.line ?? raw.line): limit \(raw.name.prefix(80))" }
            let before = problems.count
            if !isValidName(raw.name) {
                problems.append("\(file.path) line \(raw.line): limit name \"\(raw.name.prefix(80))\" must be 1-64 letters, digits or -_.")
            }
            for key in raw.fields.keys.sorted() where !["classes", "key", "concurrency", "rate", "lease"].contains(key) {
                problems.append("\(at(key)): unknown key \(key.prefix(80)) (classes, key, concurrency, rate, lease)")
            }
            let classes = (raw.classes ?? []).filter { !$0.isEmpty }
            if classes.isEmpty { problems.append("\(at("classes")): classes is required (the job classes the limit applies to)") }
            for name in classes {
                if !isKnownClass(name) {
                    problems.append("\(at("classes")): no job class \"\(name.prefix(80))\" in this worker")
                } else if let other = owner[name] {
                    problems.append("\(at("classes")): class \(name) is already limited by \(other) (a class takes one limit)")
                } else {
                    owner[name] = raw.name
                }
            }
            var path: [String] = []
            if let text = raw.fields["key"]?.value {
                if let parsed = parseKeyPath(text) {
                    path = parsed
                } else {
                    problems.append("\(at("key")): key \"\(text.prefix(80))\" is not a path like args.tenant (args. then up to \(maximumKeyDepth) names of letters, digits, - or _)")
                }
            }
            var concurrency: Int?
            if let text = raw.fields["concurrency"]?.value {
                if text.utf8.count <= 7, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int(text), concurrencyRange.contains(n) {
                    concurrency = n
                } else {
                    problems.append("\(at("concurrency")): concurrency \"\(text.prefix(80))\" must be a whole number in \(concurrencyRange.lowerBound)...\(concurrencyRange.upperBound)")
                }
            }
            var rate: Rate?
            if let text = raw.fields["rate"]?.value {
                if let parsed = parseRate(text) {
                    rate = parsed
                } else {
                    problems.append("\(at("rate")): rate \"\(text.prefix(80))\" must be STARTS/WINDOW, like 30/1m (1-100000 starts, a window of 1s to 1d)")
                }
            }
            var lease = 60_000
            if let text = raw.fields["lease"]?.value {
                if let ms = milliseconds(text), leaseRange.contains(ms) {
                    lease = ms
                } else {
                    problems.append("\(at("lease")): lease \"\(text.prefix(80))\" must be a duration of 2s to 1d (like 30s, 5m)")
                }
            }
            if raw.fields["concurrency"] == nil && raw.fields["rate"] == nil {
                problems.append("\(at("classes")): a limit needs concurrency:, rate: or both")
            }
            if problems.count == before {
                limits.append(FlowLimit(name: raw.name, classes: classes, keyPath: path, concurrency: concurrency, rate: rate, leaseMilliseconds: lease))
            }
        }
        return (limits, problems)
    }
}
