/// Text that comes from a provider (error bodies, replies, model names, request ids), made safe to log and store.
enum ProviderText {
    /// Longest provider error text put in a log line or a job's error.
    static let maxErrorCharacters = 300

    /// `text` with every credential removed: each of `secrets` (the configured API keys) wherever it appears, and
    /// anything shaped like a key (`sk-…`, `sk-ant-…`) or a bearer token (`Bearer …`), each replaced by `****`;
    /// control characters dropped; cut to `limit` characters after the masking, so a cut never leaves half a key.
    static func redacted(_ text: String, secrets: [String], limit: Int = maxErrorCharacters) -> String {
        var out = text
        // Longest first, so a key that contains another is masked whole.
        for secret in secrets.filter({ $0.utf8.count >= 4 }).sorted(by: { $0.utf8.count > $1.utf8.count }) {
            out = out.replacingAll(secret, with: "****")
            out = out.maskingTrailingPart(of: secret)
        }
        out = maskTokens(out)
        var oneLine = String.UnicodeScalarView()
        for scalar in out.unicodeScalars {
            if scalar == "\t" || scalar == "\n" || scalar == "\r" { oneLine.append(" ") } else if !isControl(scalar) { oneLine.append(scalar) }
        }
        out = String(oneLine)
        if out.count > limit { out = String(out.prefix(limit)) + "…" }
        return out
    }

    /// `sk-…` keys and `Bearer …` / `Basic …` credentials (any case) replaced by `****`.
    static func maskTokens(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        func isTokenScalar(_ s: Unicode.Scalar) -> Bool {
            (s.value >= 0x30 && s.value <= 0x39) || (s.value >= 0x41 && s.value <= 0x5A) || (s.value >= 0x61 && s.value <= 0x7A)
                || s == "-" || s == "_" || s == "." || s == "~" || s == "+" || s == "/" || s == "="
        }
        func startsWord(_ at: Int) -> Bool { at == 0 || !isTokenScalar(scalars[at - 1]) }
        func matches(_ word: String, at: Int) -> Bool {
            let w = Array(word.unicodeScalars)
            guard at + w.count <= scalars.count else { return false }
            for k in 0..<w.count where Character(scalars[at + k]).lowercased() != Character(w[k]).lowercased() { return false }
            return true
        }
        while i < scalars.count {
            if startsWord(i), matches("sk-", at: i) {
                var end = i + 3
                while end < scalars.count, isTokenScalar(scalars[end]) { end += 1 }
                if end - i >= 16 {
                    out.append(contentsOf: "sk-****".unicodeScalars)
                    i = end
                    continue
                }
            }
            var masked = false
            for scheme in ["bearer", "basic"] where !masked && startsWord(i) && matches(scheme, at: i) {
                let separators: Set<Unicode.Scalar> = [" ", "\t", ":", "="]
                var gap = i + scheme.unicodeScalars.count
                while gap < scalars.count, separators.contains(scalars[gap]) { gap += 1 }
                var end = gap
                while end < scalars.count, isTokenScalar(scalars[end]) { end += 1 }
                guard gap > i + scheme.unicodeScalars.count, end > gap else { continue }
                out.append(contentsOf: scalars[i..<gap])
                out.append(contentsOf: "****".unicodeScalars)
                i = end
                masked = true
            }
            if masked { continue }
            out.append(scalars[i])
            i += 1
        }
        return String(out)
    }

    /// Provider output to keep (summary, model name, request id): without NUL, which PostgreSQL text and jsonb
    /// cannot hold, and without the other C0 controls and DEL (tab, newline and carriage return stay).
    static func storable(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { isControl($0) && $0 != "\t" && $0 != "\n" && $0 != "\r" }) else { return text }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: text.unicodeScalars.filter { !isControl($0) || $0 == "\t" || $0 == "\n" || $0 == "\r" })
        return String(out)
    }

    static func isControl(_ s: Unicode.Scalar) -> Bool { s.value < 0x20 || s.value == 0x7F }
}

extension String {
    /// The text with a trailing start of `secret` (4 scalars or more, as a cut text may end) replaced by `****`.
    fileprivate func maskingTrailingPart(of secret: String) -> String {
        let s = Array(unicodeScalars), t = Array(secret.unicodeScalars)
        var length = min(t.count - 1, s.count)
        while length >= 4 {
            if Array(s[(s.count - length)...]) == Array(t[..<length]) {
                var out = String.UnicodeScalarView(s[..<(s.count - length)])
                out.append(contentsOf: "****".unicodeScalars)
                return String(out)
            }
            length -= 1
        }
        return self
    }

    /// Every occurrence of `target` replaced (compared by Unicode scalars, so a key is found inside any text).
    fileprivate func replacingAll(_ target: String, with replacement: String) -> String {
        let t = Array(target.unicodeScalars)
        let s = Array(unicodeScalars)
        guard !t.isEmpty, s.count >= t.count else { return self }
        var out = String.UnicodeScalarView()
        var i = 0
        while i < s.count {
            if i + t.count <= s.count, s[i] == t[0], Array(s[i..<(i + t.count)]) == t {
                out.append(contentsOf: replacement.unicodeScalars)
                i += t.count
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return String(out)
    }
}
