/// A summary without any network: the post's most representative sentences (word-frequency scoring, as in
/// Luhn's 1958 method), in their original order, within the word budget. Used when no provider key is set
/// and when every provider is open or failing.
public enum ExtractiveSummarizer {
    /// Characters of body (and of all comments together) looked at, so a huge post costs bounded CPU.
    static let inputCap = 100_000

    public static func summarize(title: String, body fullBody: String, comments allComments: [String] = [], maxWords: Int) -> String {
        let body = String(fullBody.prefix(inputCap))
        var budget = inputCap
        var comments: [String] = []
        for comment in allComments where budget > 0 {
            comments.append(String(comment.prefix(budget)))
            budget -= comment.count
        }
        let sentences = split(body.isEmpty ? title : body)
        guard !sentences.isEmpty else { return clip(title, maxWords) }
        // Word weights from the whole post (comments weigh in at half), ignoring stop words.
        var weights: [String: Double] = [:]
        for word in words(title) { weights[word, default: 0] += 2 }
        for word in words(body) { weights[word, default: 0] += 1 }
        for comment in comments { for word in words(comment) { weights[word, default: 0] += 0.5 } }
        let scored = sentences.enumerated().map { index, sentence -> (Int, Double) in
            let ws = words(sentence)
            guard !ws.isEmpty else { return (index, 0) }
            let score = ws.reduce(0) { $0 + (weights[$1] ?? 0) } / Double(ws.count).squareRoot()
            // Leading sentences usually carry the point of a post.
            return (index, score * (index == 0 ? 1.5 : 1))
        }
        var chosen: [Int] = []
        var used = 0
        for (index, _) in scored.sorted(by: { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }) {
            let count = sentences[index].split(whereSeparator: \.isWhitespace).count
            if used + count > maxWords { continue }
            chosen.append(index)
            used += count
        }
        if chosen.isEmpty { return clip(sentences[0], maxWords) }
        return chosen.sorted().map { sentences[$0] }.joined(separator: " ")
    }

    static func split(_ text: String) -> [String] {
        var sentences: [String] = []
        var current = ""
        let chars = Array(text)
        for (i, c) in chars.enumerated() {
            if c == "\n" && (i + 1 < chars.count && chars[i + 1] == "\n") {
                flush(&current, into: &sentences)
                continue
            }
            current.append(c == "\n" ? " " : c)
            if ".!?".contains(c), i + 1 == chars.count || chars[i + 1].isWhitespace {
                flush(&current, into: &sentences)
            }
        }
        flush(&current, into: &sentences)
        return sentences
    }

    private static func flush(_ current: inout String, into sentences: inout [String]) {
        let trimmed = current.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        if !trimmed.isEmpty { sentences.append(trimmed) }
        current = ""
    }

    static func words(_ text: String) -> [String] {
        text.lowercased().split { !$0.isLetter && !$0.isNumber }.map(String.init).filter { $0.count > 2 && !stopWords.contains($0) }
    }

    static func clip(_ text: String, _ maxWords: Int) -> String {
        let words = text.split(whereSeparator: \.isWhitespace)
        return words.count <= maxWords ? words.joined(separator: " ") : words.prefix(maxWords).joined(separator: " ") + "…"
    }

    private static let stopWords: Set<String> = [
        "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "had", "her", "was", "one", "our", "out",
        "has", "have", "him", "his", "how", "its", "may", "new", "now", "see", "two", "who", "did", "get", "let", "say",
        "she", "too", "use", "that", "this", "with", "from", "they", "will", "would", "there", "their", "what", "about",
        "which", "when", "make", "like", "just", "than", "then", "them", "been", "were", "into", "some", "could",
        "also", "very", "your", "more", "only", "other", "such", "these", "those", "over", "after", "because",
    ]
}
