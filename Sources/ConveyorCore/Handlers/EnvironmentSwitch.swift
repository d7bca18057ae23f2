/// An on/off setting read from the environment.
public enum EnvironmentSwitch {
    /// `on`/`off` (or `1`/`0`, `true`/`false`, `yes`/`no`, any case); unset or empty gives `defaultValue`.
    /// Anything else is a configuration error rather than a silent default.
    public static func value(_ name: String, in environment: [String: String], default defaultValue: Bool) throws(JobFailure) -> Bool {
        switch environment[name]?.lowercased() {
        case nil, "": return defaultValue
        case "on", "1", "true", "yes": return true
        case "off", "0", "false", "no": return false
        case let other?: throw .permanent("InvalidConfiguration", "\(name)=\(other) is neither on nor off")
        }
    }
}
