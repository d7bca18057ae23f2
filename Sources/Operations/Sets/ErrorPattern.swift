/// The `--error` / `?error=` filter: a regular expression run by a Thompson NFA (a Pike VM without captures), so
/// matching costs at most (program size × text length) steps whatever the pattern: `(.*.*)*QQQ` cannot backtrack.
///
/// The subset operators use: literals, `.`, `[...]` and `[^...]` with ranges, `\d \w \s \D \W \S`, `\.`-style escapes
/// of punctuation, `\n \t \r`, groups `(...)` and `(?:...)`, `|`, `* + ?` (a trailing `?` for laziness is accepted
/// and changes nothing: only whether a match exists counts), `{n}`, `{n,}`, `{n,m}` (n, m ≤ 100), `^` and `$`, and a
/// leading `(?i)` for case-insensitive matching. Back-references and look-arounds are refused (they need
/// backtracking). Patterns are at most 512 characters and 2,000 compiled steps; the text matched is the first 4,096
/// characters of `error_class: error_message`.
public struct ErrorPattern: Sendable {
    public static let maxPatternLength = 512
    public static let maxProgramSize = 2000
    public static let maxTextLength = 4096

    enum Item: Sendable {
        case scalar(UInt32)
        case range(UInt32, UInt32)
        case digit(Bool)
        case word(Bool)
        case space(Bool)
        case any

        func matches(_ c: UInt32) -> Bool {
            switch self {
            case .scalar(let s): c == s
            case .range(let a, let b): a <= c && c <= b
            case .digit(let yes): ErrorPattern.isDigit(c) == yes
            case .word(let yes): (ErrorPattern.isDigit(c) || ErrorPattern.isLetter(c) || c == 95) == yes
            case .space(let yes): (c == 32 || (9...13).contains(c)) == yes
            case .any: c != 10
            }
        }
    }

    struct CharClass: Sendable {
        var items: [Item]
        var negated: Bool

        func matches(_ c: UInt32) -> Bool { items.contains { $0.matches(c) } != negated }
    }

    enum Instruction: Sendable {
        case char(CharClass)
        case split(Int, Int)
        case jump(Int)
        case atStart
        case atEnd
        case match
    }

    indirect enum Node {
        case empty
        case char(CharClass)
        case concat([Node])
        case alternation([Node])
        case star(Node)
        case plus(Node)
        case optional(Node)
        case atStart
        case atEnd
    }

    public let source: String
    let program: [Instruction]
    let caseInsensitive: Bool

    /// Compiles `pattern`; a pattern outside the subset or over its limits is refused with a message naming it.
    public init(_ pattern: String) throws(JobSetError) {
        source = pattern
        var scalars = pattern.unicodeScalars.map(\.value)
        guard scalars.count <= Self.maxPatternLength else {
            throw .usage("--error pattern of \(scalars.count) characters: at most \(Self.maxPatternLength)")
        }
        var insensitive = false
        if scalars.starts(with: Array("(?i)".unicodeScalars.map(\.value))) {
            insensitive = true
            scalars.removeFirst(4)
        }
        caseInsensitive = insensitive
        var parser = Parser(scalars: scalars, caseInsensitive: insensitive)
        let node: Node
        do throws(ParseError) {
            node = try parser.parseAlternation()
            if parser.position < scalars.count { throw ParseError("unbalanced ')' at character \(parser.position + 1)") }
        } catch {
            throw .usage("--error \(pattern): not a valid regular expression here: \(error.reason)")
        }
        var program: [Instruction] = []
        guard Self.emit(node, into: &program) else {
            throw .usage("--error \(pattern): too complex (more than \(Self.maxProgramSize) steps once compiled)")
        }
        program.append(.match)
        self.program = program
    }

    /// Whether the pattern occurs anywhere in `text` (cut to `maxTextLength` characters).
    /// - Parameter steps: incremented by the work done (threads stepped), for callers that bound the total.
    public func matches(_ text: String, steps: inout Int) -> Bool {
        var input: [UInt32] = []
        input.reserveCapacity(min(text.unicodeScalars.count, Self.maxTextLength))
        for s in text.unicodeScalars.prefix(Self.maxTextLength) { input.append(caseInsensitive ? Self.lower(s.value) : s.value) }
        let count = program.count
        var current: [Int] = []
        var next: [Int] = []
        current.reserveCapacity(count)
        next.reserveCapacity(count)
        var mark = [Int](repeating: -1, count: count)
        var stack: [Int] = []
        var generation = 0
        // Adds pc and everything it reaches without consuming input; true when that reaches `match`.
        func add(_ pc: Int, at position: Int, to list: inout [Int]) -> Bool {
            stack.append(pc)
            while let pc = stack.popLast() {
                if mark[pc] == generation { continue }
                mark[pc] = generation
                steps &+= 1
                switch program[pc] {
                case .match: stack.removeAll(); return true
                case .jump(let to): stack.append(to)
                case .split(let a, let b): stack.append(b); stack.append(a)
                case .atStart: if position == 0 { stack.append(pc + 1) }
                case .atEnd: if position == input.count { stack.append(pc + 1) }
                case .char: list.append(pc)
                }
            }
            return false
        }
        var position = 0
        while true {
            // A new attempt starts at every position (unanchored search), after the threads already running.
            if add(0, at: position, to: &current) { return true }
            guard position < input.count, !current.isEmpty else { return false }
            let c = input[position]
            generation += 1
            next.removeAll(keepingCapacity: true)
            for pc in current {
                steps &+= 1
                if case .char(let set) = program[pc], set.matches(c), add(pc + 1, at: position + 1, to: &next) { return true }
            }
            swap(&current, &next)
            position += 1
        }
    }

    /// Emits `node`; false when the program would exceed `maxProgramSize`.
    static func emit(_ node: Node, into p: inout [Instruction]) -> Bool {
        guard p.count < maxProgramSize else { return false }
        switch node {
        case .empty: return true
        case .char(let set): p.append(.char(set))
        case .atStart: p.append(.atStart)
        case .atEnd: p.append(.atEnd)
        case .concat(let parts):
            for part in parts { guard emit(part, into: &p) else { return false } }
        case .alternation(let options):
            var jumps: [Int] = []
            for (i, option) in options.enumerated() {
                if i < options.count - 1 {
                    let split = p.count
                    p.append(.split(split + 1, 0))
                    guard emit(option, into: &p) else { return false }
                    jumps.append(p.count)
                    p.append(.jump(0))
                    p[split] = .split(split + 1, p.count)
                } else {
                    guard emit(option, into: &p) else { return false }
                }
            }
            for j in jumps { p[j] = .jump(p.count) }
        case .star(let inner):
            let split = p.count
            p.append(.split(split + 1, 0))
            guard emit(inner, into: &p) else { return false }
            p.append(.jump(split))
            p[split] = .split(split + 1, p.count)
        case .plus(let inner):
            let start = p.count
            guard emit(inner, into: &p) else { return false }
            p.append(.split(start, p.count + 1))
        case .optional(let inner):
            let split = p.count
            p.append(.split(split + 1, 0))
            guard emit(inner, into: &p) else { return false }
            p[split] = .split(split + 1, p.count)
        }
        return p.count <= maxProgramSize
    }

    static func isDigit(_ c: UInt32) -> Bool { (48...57).contains(c) }
    static func isLetter(_ c: UInt32) -> Bool {
        (65...90).contains(c) || (97...122).contains(c) || (c >= 0x80 && (Unicode.Scalar(c)?.properties.isAlphabetic ?? false))
    }

    static func lower(_ c: UInt32) -> UInt32 {
        if (65...90).contains(c) { return c + 32 }
        guard c >= 0x80, let s = Unicode.Scalar(c) else { return c }
        let lowered = s.properties.lowercaseMapping.unicodeScalars
        return lowered.count == 1 ? lowered.first!.value : c
    }

    struct ParseError: Error {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    struct Parser {
        let scalars: [UInt32]
        let caseInsensitive: Bool
        var position = 0
        var depth = 0

        init(scalars: [UInt32], caseInsensitive: Bool) {
            self.scalars = scalars
            self.caseInsensitive = caseInsensitive
        }

        var peek: UInt32? { position < scalars.count ? scalars[position] : nil }

        mutating func take(_ c: Character) -> Bool {
            guard let p = peek, p == c.unicodeScalars.first!.value else { return false }
            position += 1
            return true
        }

        mutating func parseAlternation() throws(ParseError) -> Node {
            var options = [try parseConcat()]
            while take("|") { options.append(try parseConcat()) }
            return options.count == 1 ? options[0] : .alternation(options)
        }

        mutating func parseConcat() throws(ParseError) -> Node {
            var parts: [Node] = []
            while let c = peek, c != 124 /* | */, c != 41 /* ) */ {
                parts.append(try parseRepeat())
            }
            return parts.isEmpty ? .empty : parts.count == 1 ? parts[0] : .concat(parts)
        }

        mutating func parseRepeat() throws(ParseError) -> Node {
            var node = try parseAtom()
            while let c = peek {
                switch c {
                case 42: position += 1; node = .star(node)
                case 43: position += 1; node = .plus(node)
                case 63: position += 1; node = .optional(node)
                case 123:
                    guard let (low, high) = try parseBraces() else { return node }
                    var parts = Array(repeating: node, count: low)
                    if let high {
                        parts += Array(repeating: Node.optional(node), count: high - low)
                    } else {
                        parts.append(.star(node))
                    }
                    node = .concat(parts)
                default: return node
                }
                _ = take("?")  // lazy: the same set of matches
                if take("+") { throw ParseError("possessive quantifiers are not supported") }
            }
            return node
        }

        /// `{n}`, `{n,}`, `{n,m}`; nil (a literal `{`) when it is not one.
        mutating func parseBraces() throws(ParseError) -> (Int, Int?)? {
            let start = position
            position += 1
            func number(_ p: inout Parser) -> Int? {
                var n = 0
                var any = false
                while let c = p.peek, ErrorPattern.isDigit(c), n <= 1000 { n = n * 10 + Int(c - 48); any = true; p.position += 1 }
                return any ? n : nil
            }
            guard let low = number(&self) else { position = start; return nil }
            var high: Int? = low
            if take(",") { high = number(&self) }
            guard take("}") else { position = start; return nil }
            guard low <= 100, (high ?? 0) <= 100, low <= (high ?? low) else {
                throw ParseError("repetition {\(low),\(high.map(String.init) ?? "")}: counts up to 100, the first not above the second")
            }
            return (low, high)
        }

        mutating func parseAtom() throws(ParseError) -> Node {
            guard let c = peek else { throw ParseError("unexpected end") }
            position += 1
            switch c {
            case 40:  // (
                if take("?") {
                    guard take(":") else { throw ParseError("look-arounds and other (? groups are not supported (only (?:...) and a leading (?i))") }
                }
                depth += 1
                guard depth <= 100 else { throw ParseError("groups nested more than 100 deep") }
                let inner = try parseAlternation()
                depth -= 1
                guard take(")") else { throw ParseError("missing ')'") }
                return inner
            case 91: return .char(try parseClass())
            case 46: return .char(CharClass(items: [.any], negated: false))
            case 94: return .atStart
            case 36: return .atEnd
            case 42, 43, 63: throw ParseError("nothing to repeat at character \(position)")
            case 92: return .char(CharClass(items: [try parseEscape(inClass: false)], negated: false))
            default: return .char(CharClass(items: [literal(c)], negated: false))
            }
        }

        func literal(_ c: UInt32) -> Item { .scalar(caseInsensitive ? ErrorPattern.lower(c) : c) }

        mutating func parseEscape(inClass: Bool) throws(ParseError) -> Item {
            guard let c = peek else { throw ParseError("trailing backslash") }
            position += 1
            switch c {
            case 100: return .digit(true)
            case 68: return .digit(false)
            case 119: return .word(true)
            case 87: return .word(false)
            case 115: return .space(true)
            case 83: return .space(false)
            case 110: return .scalar(10)
            case 116: return .scalar(9)
            case 114: return .scalar(13)
            default:
                guard !ErrorPattern.isDigit(c), !ErrorPattern.isLetter(c) else {
                    throw ParseError("\\\(Unicode.Scalar(c).map { String(Character($0)) } ?? "?") is not supported (back-references and other escapes need backtracking)")
                }
                return literal(c)
            }
        }

        mutating func parseClass() throws(ParseError) -> CharClass {
            let negated = take("^")
            var items: [Item] = []
            var first = true
            while true {
                guard let c = peek else { throw ParseError("missing ']'") }
                if c == 93 && !first { position += 1; break }
                first = false
                position += 1
                var item: Item = c == 92 ? try parseEscape(inClass: true) : literal(c)
                if case .scalar(let low) = item, peek == 45, position + 1 < scalars.count, scalars[position + 1] != 93 {
                    position += 1
                    let h = scalars[position]
                    position += 1
                    let highItem = h == 92 ? try parseEscape(inClass: true) : literal(h)
                    guard case .scalar(let high) = highItem, low <= high else { throw ParseError("bad range in [...]") }
                    item = .range(low, high)
                }
                items.append(item)
            }
            return CharClass(items: items, negated: negated)
        }
    }
}
