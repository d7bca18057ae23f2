import Foundation
import Operations
import Testing

/// The error filter's matcher against Foundation's backtracking one, on patterns both support, and on the patterns
/// that make a backtracking matcher run away.
struct ErrorPatternTests {
    static let patterns = [
        "boom", "^Runtime", "timeout$", "^VipsError: .*pixels", "(Timeout|Connection)Error", "a.c", "[0-9]+ ms", "[^a-z ]+",
        #"\d{3}"#, #"\w+Error: \s*$"#, "x?y+z*", "(?:ab)+c", "a{2,3}b", "a{2,}", "^$", "colou?r", #"\.png"#, "[A-Fa-f0-9]{8}",
        "(a|ab)(c|bcd)(d*)", "((a)|b)+", "()", "a||b", "[-a]", "[a-]", "[]a]", #"[\d\s]x"#, "é+", "(?i)TIMEOUT", "(?i)[a-c]+Z",
        "Q{0}", "(x*)*y", "[.]", "a+?b", "a*?",
    ]
    static let texts = [
        "", "boom", "RuntimeError: boom", "Net::ReadTimeout: timeout", "VipsError: 42000x42000 exceeds 50 megapixel pixels",
        "TimeoutError", "ConnectionError: refused", "abc", "a-c", "took 120 ms", "ABC 123", "abcd", "aab", "aaab", "color",
        "colour", "image.png", "imagexpng", "deadBEEF", "abcd", "abab c", "ababc", "]a", "-", "x y", "café", "timeout",
        "ZZabcZ", "yy", "xxxxxxxxxxxxxxxxxxxxxxxxy", "SomeError:   ", "a\nb",
    ]

    @Test func agreesWithABacktrackingMatcherOnTheSubset() throws {
        for pattern in Self.patterns {
            let ours = try ErrorPattern(pattern)
            let theirs = try NSRegularExpression(pattern: pattern)
            for text in Self.texts {
                var steps = 0
                let expected = theirs.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
                #expect(ours.matches(text, steps: &steps) == expected, "\(pattern) on \(text.debugDescription)")
            }
        }
    }

    @Test func runawayPatternsCostLinearWork() throws {
        let text = "RuntimeError: " + String(repeating: "a", count: 4000)
        for pattern in ["(.*.*)*QQQ", "(a*)*b", "(a|a)*b", "(a|aa)+$b", "^(a+)+$Q", "(.*){100}Q"] {
            var steps = 0
            let p = try ErrorPattern(pattern)
            #expect(!p.matches(text, steps: &steps))
            #expect(steps < ErrorPattern.maxProgramSize * 2 * (ErrorPattern.maxTextLength + 1), "\(pattern): \(steps) steps")
        }
    }

    @Test func patternsOutsideTheSubsetOrItsLimitsAreRefusedWithAReason() {
        for (pattern, reason) in [
            (#"(a)\1"#, "not supported"), ("(?=a)", "not supported"), ("(?<n>a)", "not supported"), ("a{1,1000}", "up to 100"),
            ("(", "missing ')'"), (")", "unbalanced"), ("[a", "missing ']'"), ("*a", "nothing to repeat"), (#"\"#, "trailing backslash"),
            ("[z-a]", "bad range"), (String(repeating: "a", count: 513), "at most 512"), (String(repeating: "(a{100})", count: 30), "too complex"),
            ("a*+", "possessive"),
        ] {
            do {
                _ = try ErrorPattern(pattern)
                Issue.record("\(pattern) was accepted")
            } catch {
                #expect("\(error)".contains(reason), "\(pattern): \(error)")
            }
        }
    }
}
