/// A failure's message as it is stored where the API reads it (`error_message` in the retry and dead sets and in
/// `conveyor.job_results`): without the job's own jid (a column of its own there) and without server paths. The log
/// keeps the message whole.
public enum StoredErrorMessage {
    /// `message` without `jid=<jid>` and with every absolute path (a word starting with `/` with two parts or more)
    /// cut to `…/<last part>`.
    public static func clean(_ message: String, jid: String) -> String {
        var text = message
        if !jid.isEmpty {
            for form in [" jid=\(jid)", "jid=\(jid) ", "jid=\(jid)"] { text = text.replacingAll(form, with: "") }
        }
        return withoutPaths(text)
    }

    static func withoutPaths(_ text: String) -> String {
        guard text.contains("/") else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count)
        var word = ""
        func flush() {
            out += shortened(word)
            word = ""
        }
        for c in text {
            if c == " " || c == "\n" || c == "\t" || c == "\"" || c == "'" || c == "(" || c == ")" || c == "," || c == "=" {
                flush()
                out.append(c)
            } else {
                word.append(c)
            }
        }
        flush()
        return out
    }

    /// A word that is an absolute path (`/a/b`, maybe followed by `:`), as `…/b`; anything else as it is.
    private static func shortened(_ word: String) -> String {
        guard word.hasPrefix("/"), !word.hasPrefix("//") else { return word }
        var core = Substring(word)
        var tail = ""
        while let last = core.last, last == ":" || last == "." || last == ";" {
            tail = String(last) + tail
            core = core.dropLast()
        }
        let parts = core.split(separator: "/", omittingEmptySubsequences: true)
        guard parts.count >= 2, let name = parts.last else { return word }
        return "…/" + name + tail
    }
}

extension String {
    /// Every occurrence of `target` replaced by `replacement`, without Foundation.
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty, contains(target) else { return self }
        var result = ""
        var rest = Substring(self)
        while let range = rest.range(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
