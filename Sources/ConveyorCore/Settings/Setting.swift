import Foundation

/// One setting Conveyor reads: its environment variable, its key in a config file, its flag, what it accepts, its
/// default, whether it is a secret, one line of documentation. Every check, the masking, the unknown-name warnings,
/// `conveyor config` and the table in docs/configuration.md derive from these declarations.
public struct Setting: Sendable {
    /// What a value must look like.
    public enum Kind: Sendable {
        /// Any text (the owning family may check it further).
        case text
        /// A whole number in the range.
        case int(ClosedRange<Int>)
        /// A finite decimal number in the range (`inf`, `nan`, hex and `1e400` refused).
        case number(ClosedRange<Double>)
        /// Seconds, plain (`30`, `0.5`) or with a unit (`500ms`, `30s`, `5m`, `2h`, `7d`, `1w`), within the range.
        case duration(ClosedRange<Double>)
        /// `on`/`off` (`1`/`0`, `true`/`false`, `yes`/`no`, any case).
        case onOff
        /// One of the words (compared lowercased).
        case choice([String])
        /// A URL whose scheme is one of these.
        case url([String])
        /// Comma-separated entries (a YAML sequence in a file).
        case list
    }

    /// The environment variable, also the setting's name everywhere (`CONVEYOR_CONCURRENCY`).
    public let name: String
    /// The key in conveyor.yml (`concurrency`, `media.store`); empty for a setting the file cannot hold (its own path).
    public let key: String
    /// The command-line flag that sets it, where one exists (`--concurrency`).
    public let flag: String?
    public let kind: Kind
    /// The value in effect when nothing sets it, as it would be written; nil when unset means "none"/"off".
    public let defaultValue: String?
    /// How the docs describe the default when it is not a plain value (`every registered queue`).
    public let defaultNote: String?
    /// A secret is shown as `****` everywhere and never quoted in an error.
    public let secret: Bool
    /// One line of documentation (Markdown).
    public let doc: String
    /// A further check of a value `kind` accepts; returns why it is refused, nil when it is fine.
    public let check: (@Sendable (String) -> String?)?

    public init(
        _ name: String, key: String? = nil, flag: String? = nil, _ kind: Kind = .text, default defaultValue: String? = nil,
        note defaultNote: String? = nil, secret: Bool = false, doc: String, check: (@Sendable (String) -> String?)? = nil
    ) {
        self.name = name
        self.key = key ?? Setting.fileKey(for: name)
        self.flag = flag
        self.kind = kind
        self.defaultValue = defaultValue
        self.defaultNote = defaultNote
        self.secret = secret
        self.doc = doc
        self.check = check
    }

    /// `CONVEYOR_MEDIA_STORE` → `media.store`, `CONVEYOR_CONCURRENCY` → `concurrency`, `REDIS_URL` → `redis.url`,
    /// `AWS_ACCESS_KEY_ID` → `aws.access_key_id`: the prefix `CONVEYOR_` dropped, the first word a section.
    public static func fileKey(for name: String) -> String {
        var rest = name.hasPrefix("CONVEYOR_") ? String(name.dropFirst("CONVEYOR_".count)) : name
        rest = rest.lowercased()
        guard let underscore = rest.firstIndex(of: "_") else { return rest }
        return rest[..<underscore] + "." + rest[rest.index(after: underscore)...]
    }

    /// Why `text` cannot be this setting's value (without naming the setting or its source), or nil when it can.
    public func problem(with text: String) -> String? {
        if let reason = kind.problem(with: text) { return reason }
        return check?(text)
    }

    /// `text` as it may be shown: `****` for a secret, URLs with their passwords masked (see `SettingMasking`).
    public func masked(_ text: String) -> String {
        if secret { return text.isEmpty ? "" : "****" }
        return SettingMasking.masked(text)
    }

    /// What the value may be, for messages and the docs: `a whole number in 1...10000`.
    public var allowed: String { kind.allowed }
}

extension Setting.Kind {
    /// Why `text` is not of this kind, or nil.
    public func problem(with text: String) -> String? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        switch self {
        case .text, .list:
            return text.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" || $0.value == 0x7f }) ? "control characters are not allowed" : nil
        case .int(let range):
            guard trimmed.utf8.count <= 40, let n = Int(trimmed), range.contains(n) else { return "expected \(allowed)" }
            return nil
        case .number(let range):
            guard let n = Setting.decimal(trimmed), range.contains(n) else { return "expected \(allowed)" }
            return nil
        case .duration(let range):
            guard let s = Setting.seconds(trimmed), range.contains(s) else { return "expected \(allowed)" }
            return nil
        case .onOff:
            return Setting.onOff(trimmed) == nil ? "expected \(allowed)" : nil
        case .choice(let words):
            return words.contains(trimmed.lowercased()) ? nil : "expected \(allowed)"
        case .url(let schemes):
            guard let colon = trimmed.range(of: "://"), schemes.contains(trimmed[..<colon.lowerBound].lowercased()),
                !trimmed[colon.upperBound...].isEmpty, !trimmed.contains(where: { $0 == " " || $0.asciiValue.map { $0 < 0x20 } == true })
            else { return "expected \(allowed)" }
            return nil
        }
    }

    /// For messages and the docs.
    public var allowed: String {
        switch self {
        case .text: return "text"
        case .list: return "a comma-separated list"
        case .int(let r): return "a whole number in \(r.lowerBound)...\(r.upperBound)"
        case .number(let r): return "a number in \(Setting.format(r.lowerBound))...\(Setting.format(r.upperBound))"
        case .duration(let r): return "a duration from \(Setting.describe(seconds: r.lowerBound)) to \(Setting.describe(seconds: r.upperBound)) (500ms, 30s, 5m, 2h, 7d or plain seconds)"
        case .onOff: return "on or off"
        case .choice(let words): return "one of " + words.joined(separator: ", ")
        case .url(let schemes): return "a URL starting " + schemes.map { $0 + "://" }.joined(separator: " or ")
        }
    }

    /// The type name `conveyor config --json` and the docs show.
    public var typeName: String {
        switch self {
        case .text: return "text"
        case .list: return "list"
        case .int: return "int"
        case .number: return "number"
        case .duration: return "duration"
        case .onOff: return "on/off"
        case .choice: return "choice"
        case .url: return "url"
        }
    }
}

extension Setting {
    /// A finite decimal number: digits, one point, an exponent; never `inf`, `nan`, hex floats or an overflow.
    public static func decimal(_ text: String) -> Double? {
        guard !text.isEmpty, text.utf8.count <= 40,
            text.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) || ".eE+-".unicodeScalars.contains($0) }),
            let n = Double(text), n.isFinite
        else { return nil }
        return n
    }

    private static let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400), ("w", 604_800)]

    /// Seconds from `30`, `0.5`, `500ms`, `30s`, `5m`, `2h`, `7d`, `1w`; nil unless finite and not negative.
    public static func seconds(_ text: String) -> Double? {
        for (unit, scale) in units where text.hasSuffix(unit) {
            let number = String(text.dropLast(unit.count))
            // `5ms` also ends in `s`: the longer unit was tried first only if it parses.
            guard let n = decimal(number) else { continue }
            let s = n * scale
            return s.isFinite && s >= 0 ? s : nil
        }
        guard let n = decimal(text), n >= 0 else { return nil }
        return n
    }

    /// `on`/`off` and their spellings; nil for anything else.
    public static func onOff(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "on", "1", "true", "yes": return true
        case "off", "0", "false", "no": return false
        default: return nil
        }
    }

    static func format(_ n: Double) -> String {
        if let i = Int(exactly: n) { return String(i) }
        return String(n)
    }

    /// `500ms`, `30s`, `5m`, `2h`, `1d` for a limit in seconds.
    public static func describe(seconds s: Double) -> String {
        if s == 0 { return "0s" }
        for (unit, scale) in [("d", 86_400.0), ("h", 3600), ("m", 60), ("s", 1)] where s >= scale && (s / scale).rounded() == s / scale {
            return format(s / scale) + unit
        }
        if s < 1, let ms = Int(exactly: (s * 1000).rounded()), Double(ms) / 1000 == s { return "\(ms)ms" }
        return format(s) + "s"
    }
}

/// A group of settings, one per configuration type (the worker's, Redis', the dashboard's, each family's).
public struct SettingGroup: Sendable {
    public let title: String
    /// A sentence the docs print above the group's table.
    public let note: String?
    public let settings: [Setting]

    public init(_ title: String, note: String? = nil, _ settings: [Setting]) {
        self.title = title
        self.note = note
        self.settings = settings
    }
}
