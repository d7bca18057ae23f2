import Foundation

/// The one masking rule for values shown by `conveyor config`, in error messages and in logs: in a URL of any
/// scheme (`redis://`, `rediss+sentinel://`, `redis+cluster://`, `postgres://`, `smtp://`...) the password of the
/// userinfo is `****` (the whole userinfo when it has no `:`, as in `redis://PASSWORD@host`) and so is the value of
/// every password-like query parameter; anything with an `@` that does not read as such a URL is `****`. A setting
/// declared secret is `****` whole (`Setting.masked`).
public enum SettingMasking {
    /// Query parameters whose value is a secret (`sentinel_password=`, `password=`, `auth=`, `token=`...), matched
    /// case-insensitively as substrings of the parameter name.
    public static let secretParameterParts = ["pass", "pwd", "secret", "token", "auth", "key", "credential"]

    /// `value` with what the rule hides replaced by `****`.
    public static func masked(_ value: String) -> String {
        var secrets: [String] = []
        return maskedValue(value, secrets: &secrets)
    }

    /// `masked` for a value of any name; `secrets` gets what was hidden (as written and percent-decoded).
    public static func maskedValue(_ value: String, secrets: inout [String]) -> String {
        func hidden(_ secret: Substring) {
            secrets.append(String(secret))
            if let plain = String(secret).removingPercentEncoding, plain != secret { secrets.append(plain) }
        }
        func whole() -> String {
            hidden(Substring(value))
            return "****"
        }
        // The fragment and query first: a `?` or `#` inside a password makes the rest unreadable, and then any `@`
        // left outside the userinfo makes the whole value unparsable.
        var main = Substring(value)
        var fragment: Substring?
        if let hash = main.firstIndex(of: "#") {
            fragment = main[main.index(after: hash)...]
            main = main[..<hash]
        }
        var query: Substring?
        if let mark = main.firstIndex(of: "?") {
            query = main[main.index(after: mark)...]
            main = main[..<mark]
        }
        var out = ""
        if let separator = main.range(of: "://") {
            let scheme = main[..<separator.lowerBound]
            guard !scheme.isEmpty, scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }) else {
                return value.contains("@") ? whole() : value
            }
            let rest = main[separator.upperBound...]
            let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
            let authority = rest[..<authorityEnd]
            let path = rest[authorityEnd...]
            let ats = authority.filter { $0 == "@" }.count
            guard ats <= 1, !path.contains("@") else { return whole() }
            out = scheme + "://"
            if let at = authority.firstIndex(of: "@") {
                let userinfo = authority[..<at]
                if let colon = userinfo.firstIndex(of: ":") {
                    hidden(userinfo[userinfo.index(after: colon)...])
                    out += userinfo[..<colon] + ":****@"
                } else {
                    hidden(userinfo)
                    out += "****@"
                }
                out += authority[authority.index(after: at)...]
            } else {
                out += authority
            }
            out += path
        } else {
            guard !main.contains("@") else { return whole() }
            out = String(main)
        }
        if let query {
            var parameters: [String] = []
            for parameter in query.split(separator: "&", omittingEmptySubsequences: false) {
                guard let equals = parameter.firstIndex(of: "=") else {
                    guard !parameter.contains("@") else { return whole() }
                    parameters.append(String(parameter))
                    continue
                }
                let key = parameter[..<equals]
                let plainKey = (String(key).removingPercentEncoding ?? String(key)).lowercased()
                if secretParameterParts.contains(where: { plainKey.contains($0) }) {
                    hidden(parameter[parameter.index(after: equals)...])
                    parameters.append(key + "=****")
                } else {
                    guard !parameter.contains("@") else { return whole() }
                    parameters.append(String(parameter))
                }
            }
            out += "?" + parameters.joined(separator: "&")
        }
        if let fragment {
            guard !fragment.contains("@") else { return whole() }
            out += "#" + fragment
        }
        return out
    }

    /// `text` with every secret in `secrets` (longest first) replaced by `****`. Secrets of fewer than three
    /// non-blank characters are left alone: replacing every space or every `a` would garble the message and
    /// protect nothing (the message never quotes them; `Setting.masked` hides them where values are shown).
    public static func scrub(_ text: String, secrets: [String]) -> String {
        var out = text
        for secret in secrets.sorted(by: { $0.count > $1.count }) where secret.trimmingCharacters(in: .whitespaces).count >= 3 {
            out = out.replacingOccurrences(of: secret, with: "****")
        }
        return out
    }
}
