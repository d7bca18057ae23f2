import Foundation

/// The one reader of configuration, built once at start-up from its providers in order: flags, then the environment,
/// then the config file (`--config FILE` / `CONVEYOR_CONFIG_FILE`), then each setting's default. Every value any
/// provider gives is checked against its declaration; `problems` holds every refusal at once, each naming where the
/// value came from (`--concurrency 0`, `CONVEYOR_CONCURRENCY=0 in the environment`, `concurrency: 0 in conveyor.yml
/// line 3`) and what is allowed. Nothing else reads `ProcessInfo.environment` for settings.
public struct SettingsReader: Sendable {
    /// Where an effective value came from.
    public enum Source: Sendable, Equatable {
        case defaultValue
        case environment
        case file(path: String, line: Int)
        case flag(String)

        /// `default`, `env`, `file:conveyor.yml:3`, `flag`.
        public var label: String {
            switch self {
            case .defaultValue: return "default"
            case .environment: return "env"
            case .file(let path, let line): return "file:\(path):\(line)"
            case .flag: return "flag"
            }
        }
    }

    /// A flag's value as typed, with the spelling the user used (`--concurrency`).
    public struct FlagValue: Sendable {
        public let spelling: String
        public let value: String
        public init(_ spelling: String, _ value: String) {
            self.spelling = spelling
            self.value = value
        }
    }

    /// One setting's effective value.
    public struct Resolved: Sendable {
        public let setting: Setting
        /// Nil when nothing sets it and it has no default.
        public let text: String?
        public let source: Source

        /// Where it came from with the value as written (masked): for messages.
        public var origin: String {
            let shown = setting.masked(text ?? "")
            switch source {
            case .defaultValue: return "\(setting.name) (default \(shown))"
            case .environment: return "\(setting.name)=\(shown) in the environment"
            case .file(let path, let line): return "\(setting.key): \(shown) in \(path) line \(line)"
            case .flag(let spelling): return "\(spelling) \(shown)"
            }
        }
    }

    /// Prefixes of the names Conveyor owns: an unknown variable with one of them is warned about.
    public static let ownedPrefixes = ["CONVEYOR_", "REDIS_", "SMTP_", "AWS_", "OPENAI_", "ANTHROPIC_", "OTEL_"]

    public let catalogue: [Setting]
    /// The process environment as read at start-up.
    public let processEnvironment: [String: String]
    public let file: SettingsFile?
    private let values: [String: Resolved]
    /// Every value that cannot be used, and every unreadable or unknown entry in the file (a usage error, exit 64),
    /// masked: no secret and no URL password in effect appears in one.
    public var problems: [String] { refusals.map(\.message) }
    /// The settings whose value was refused.
    public var problemSettings: [String] { refusals.compactMap(\.setting) }
    /// For each of `problems`, the setting it refuses (nil for the file's own problems and the types' checks).
    public var problemSettingsByProblem: [String?] { refusals.map(\.setting) }
    private var refusals: [(setting: String?, message: String)] = []
    /// Unknown variables with an owned prefix, with the nearest known name.
    public private(set) var warnings: [String] = []
    /// The unknown variable names themselves.
    public private(set) var unknownNames: [String] = []

    /// - Parameters:
    ///   - ignoring: variables with an owned prefix that are not settings but are known (the scripts' and tests').
    public init(
        catalogue: [Setting], flags: [String: FlagValue] = [:], environment: [String: String], file: SettingsFile? = nil,
        ignoring: Set<String> = []
    ) {
        self.catalogue = catalogue
        self.processEnvironment = environment
        self.file = file
        var byKey: [String: SettingsFile.Entry] = [:]
        for entry in file?.entries ?? [] where byKey[entry.key] == nil { byKey[entry.key] = entry }
        var values: [String: Resolved] = [:]
        var problems: [(setting: String?, message: String)] = (file?.problems ?? []).map { (nil, $0) }
        for setting in catalogue {
            let resolved: Resolved
            if let flag = flags[setting.name] {
                resolved = Resolved(setting: setting, text: flag.value, source: .flag(flag.spelling))
            } else if let text = environment[setting.name], !text.isEmpty {
                resolved = Resolved(setting: setting, text: text, source: .environment)
            } else if let file, !setting.key.isEmpty, let entry = byKey[setting.key], let text = entry.value {
                resolved = Resolved(setting: setting, text: text, source: .file(path: file.path, line: entry.line))
            } else {
                resolved = Resolved(setting: setting, text: setting.defaultValue, source: .defaultValue)
            }
            values[setting.name] = resolved
            if resolved.source != .defaultValue, let text = resolved.text, let reason = setting.problem(with: text) {
                problems.append((setting.name, "\(resolved.origin): \(reason)"))
            }
        }
        self.values = values
        if let file {
            let keys = Set(catalogue.map(\.key))
            for entry in file.entries where !keys.contains(entry.key) {
                let byName = catalogue.first { $0.name == entry.key.uppercased() }
                let guess = byName?.key ?? Self.nearest(entry.key, among: catalogue.map(\.key))
                problems.append(
                    (nil, "\(entry.key) in \(file.path) line \(entry.line) is not a setting" + (guess.map { " (did you mean \($0)?)" } ?? "")))
            }
        }
        for problem in problems { refusals.append((problem.setting, scrubbed(problem.message))) }
        let names = Set(catalogue.map(\.name)).union(ignoring)
        let unknown = environment.keys.filter { name in
            !names.contains(name) && Self.ownedPrefixes.contains(where: { name.hasPrefix($0) })
        }.sorted()
        unknownNames = unknown
        warnings = unknown.map { name in
            let guess = Self.nearest(name, among: catalogue.map(\.name))
            return "\(name) is not a Conveyor setting (a typo?); it is ignored" + (guess.map { " (did you mean \($0)?)" } ?? "")
        }
    }

    /// The effective value of a declared setting.
    public func resolved(_ setting: Setting) -> Resolved {
        values[setting.name] ?? Resolved(setting: setting, text: setting.defaultValue, source: .defaultValue)
    }

    /// Every declared setting's effective value, in catalogue order.
    public var all: [Resolved] { catalogue.map { resolved($0) } }

    /// The effective text, nil when unset or empty.
    public func text(_ setting: Setting) -> String? {
        guard let text = resolved(setting).text, !text.isEmpty else { return nil }
        return text
    }

    /// Whether anything but the default set it.
    public func isSet(_ setting: Setting) -> Bool { resolved(setting).source != .defaultValue }

    /// A whole-number setting; its default when the value was refused (the refusal is in `problems`).
    public func int(_ setting: Setting) -> Int {
        let parse = { (text: String?) in text.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
        if let text = text(setting), setting.problem(with: text) == nil, let n = parse(text) { return n }
        return parse(setting.defaultValue) ?? 0
    }

    /// A decimal or duration setting in its unit (seconds for durations).
    public func number(_ setting: Setting) -> Double {
        let parse = { (text: String?) -> Double? in
            guard let t = text?.trimmingCharacters(in: .whitespaces) else { return nil }
            if case .duration = setting.kind { return Setting.seconds(t) }
            return Setting.decimal(t)
        }
        if let text = text(setting), setting.problem(with: text) == nil, let n = parse(text) { return n }
        return parse(setting.defaultValue) ?? 0
    }

    /// An on/off setting.
    public func bool(_ setting: Setting) -> Bool {
        if let text = text(setting), let b = Setting.onOff(text.trimmingCharacters(in: .whitespaces)) { return b }
        return setting.defaultValue.flatMap(Setting.onOff) ?? false
    }

    /// A list setting's entries, trimmed, empty ones dropped.
    public func list(_ setting: Setting) -> [String] {
        (text(setting) ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// The environment the families still read as a dictionary: the process environment with every value a flag or
    /// the config file set written under its variable, so a setting reaches them from any source.
    public var effectiveEnvironment: [String: String] {
        var out = processEnvironment
        for resolved in values.values {
            switch resolved.source {
            case .flag, .file: out[resolved.setting.name] = resolved.text
            case .environment, .defaultValue: break
            }
        }
        return out
    }

    /// The effective values of `settings` only, under their variables: for a configuration type that still parses
    /// a dictionary, so that it sees its own settings from any source and nothing else of the process environment.
    public func values(of settings: [Setting]) -> [String: String] {
        var out: [String: String] = [:]
        for setting in settings { out[setting.name] = text(setting) }
        return out
    }

    /// Adds a refusal found by a configuration type's own checks (`message` names the variable): it is rewritten to
    /// name the source of that variable's value when it came from a flag or the file, and masked.
    public mutating func add(problem message: String) {
        var text = message
        for resolved in all where resolved.source != .defaultValue {
            guard let value = resolved.text, !value.isEmpty else { continue }
            let name = resolved.setting.name
            let written = "\(name)=\(value)"
            if resolved.source != .environment, text.contains(written) {
                text = text.replacingOccurrences(of: written, with: resolved.origin)
            } else if resolved.source != .environment, text.contains(name) {
                text += " (\(resolved.origin))"
            } else if !text.contains(name), value.count >= 5, value.contains(where: { !$0.isLetter }), text.contains(value) {
                text += " (\(resolved.origin))"
            }
        }
        refusals.append((nil, scrubbed(text)))
    }

    /// `text` with every secret value and every URL password in effect replaced by `****`.
    public func scrubbed(_ text: String) -> String {
        var out = text
        var secrets: [String] = []
        for resolved in all {
            guard let value = resolved.text, !value.isEmpty else { continue }
            if resolved.setting.secret {
                secrets.append(value)
                continue
            }
            let shown = SettingMasking.maskedValue(value, secrets: &secrets)
            if shown != value { out = out.replacingOccurrences(of: value, with: shown) }
        }
        return SettingMasking.scrub(out, secrets: secrets)
    }

    /// The candidate closest to `word` (case-insensitive edit distance), when close enough to be a likely typo.
    public static func nearest(_ word: String, among candidates: [String]) -> String? {
        let w = Array(word.lowercased())
        guard w.count <= 200 else { return nil }
        var best: (String, Int)?
        for candidate in candidates {
            let d = distance(w, Array(candidate.lowercased()))
            if best == nil || d < best!.1 { best = (candidate, d) }
        }
        guard let best, best.1 <= max(2, w.count / 3) else { return nil }
        return best.0
    }

    private static func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = previous
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
