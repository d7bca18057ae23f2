import Foundation

/// An on/off setting read from the environment.
public enum EnvironmentSwitch {
    /// `on`/`off` (or `1`/`0`, `true`/`false`, `yes`/`no`, any case); unset or empty gives `defaultValue`.
    /// Anything else is a configuration error rather than a silent default.
    public static func value(_ name: String, in environment: [String: String], default defaultValue: Bool) throws(JobFailure) -> Bool {
        switch environment[name]?.lowercased() {
        case nil, "": return defaultValue
        case "on", "1", "true", "yes": return true
        case "off", "0", "false", "no": return false
        case let other?: throw .permanent(.invalidConfiguration, "\(name)=\(other) is neither on nor off")
        }
    }
}

/// A numeric setting read from the environment: unset or empty gives the default; anything that is not a number in
/// range is a configuration error naming the variable, never a silent fallback.
public enum EnvironmentNumber {
    public static func int(
        _ name: String, in environment: [String: String], default defaultValue: Int, range: ClosedRange<Int> = 1...Int.max
    ) throws(JobFailure) -> Int {
        guard let text = environment[name], !text.isEmpty else { return defaultValue }
        guard let n = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(n) else {
            throw .permanent(.invalidConfiguration, "\(name)=\(text) is not a whole number in \(describe(range))")
        }
        return n
    }

    public static func double(
        _ name: String, in environment: [String: String], default defaultValue: Double, range: ClosedRange<Double>
    ) throws(JobFailure) -> Double {
        guard let text = environment[name], !text.isEmpty else { return defaultValue }
        guard let n = Double(text.trimmingCharacters(in: .whitespaces)), n.isFinite, range.contains(n) else {
            throw .permanent(.invalidConfiguration, "\(name)=\(text) is not a number in \(range.lowerBound)...\(range.upperBound)")
        }
        return n
    }

    private static func describe(_ range: ClosedRange<Int>) -> String {
        range.upperBound == Int.max ? "\(range.lowerBound) or more" : "\(range.lowerBound)...\(range.upperBound)"
    }
}
