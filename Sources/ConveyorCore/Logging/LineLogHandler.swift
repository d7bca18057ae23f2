import Foundation
public import Logging

/// Writes one line per event to standard error, `<time> <level> <label>: key=value ... [source] message`, with
/// every part made safe first: job classes, arguments, error texts and whatever else reaches a log from a job are
/// hostile input. Control characters are escaped (`\n`, `\u{1B}`), so a newline in a job's class cannot start a
/// forged line; values with spaces or quotes are quoted; and long values are cut, so a 1 MB class name costs a
/// bounded line.
///
/// `format: .json` writes one JSON object per line instead (`CONVEYOR_LOG_FORMAT=json`): `time`, `level`, `label`,
/// `source`, `message`, then every metadata key as a field of its own, typed (whole numbers as numbers, lists as
/// arrays, dictionaries as objects: `typed(_:depth:)`), cut the same way, escaped by JSON's rules.
public struct LineLogHandler: LogHandler {
    public enum Format: String, Sendable {
        case text, json
    }

    /// Longest metadata value, in characters, before it is cut.
    public static let maximumValueLength = 512
    /// Longest message, in characters, before it is cut.
    public static let maximumMessageLength = 4096

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    public let label: String
    public let format: Format
    private let write: @Sendable (String) -> Void

    public init(
        label: String, level: Logger.Level, format: Format = .text,
        write: @escaping @Sendable (String) -> Void = LineLogHandler.standardError
    ) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let explicit = event.metadata { merged.merge(explicit) { _, new in new } }
        if let error = event.error { merged["error.message"] = "\(error)" }
        if format == .json {
            var o = JSONObject()
            o["time"] = .string(Self.timestamp())
            o["level"] = .string("\(event.level)")
            o["label"] = .string(Self.cut(label, limit: 200))
            o["source"] = .string(Self.cut(event.source, limit: 100))
            o["message"] = .string(Self.cut("\(event.message)", limit: Self.maximumMessageLength))
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) where o[key] == nil {
                o[Self.cut(key, limit: 100)] = Self.typed(value, depth: 0)
            }
            write(String(decoding: o.bytes, as: UTF8.self) + "\n")
            return
        }
        var line = Self.timestamp()
        line += " \(event.level) "
        line += Self.escape(label, limit: 200)
        line += ":"
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            line += " " + Self.escape(key, limit: 100) + "=" + Self.quoted(Self.escape("\(value)", limit: Self.maximumValueLength))
        }
        line += " [\(Self.escape(event.source, limit: 100))] "
        line += Self.escape("\(event.message)", limit: Self.maximumMessageLength)
        line += "\n"
        write(line)
    }

    /// `text` with control characters (C0, DEL, C1, and the Unicode line and paragraph separators) and backslashes
    /// escaped, cut to `limit` characters with a note of how much was left out.
    public static func escape(_ text: String, limit: Int) -> String {
        var out = ""
        var kept = 0
        var total = 0
        for scalar in text.unicodeScalars {
            total += 1
            if kept >= limit { continue }
            kept += 1
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\\": out += "\\\\"
            default:
                let v = scalar.value
                if v < 0x20 || (0x7F...0x9F).contains(v) || v == 0x2028 || v == 0x2029 || v == 0x85 {
                    out += "\\u{" + String(v, radix: 16, uppercase: true) + "}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        if total > kept { out += "…(\(total - kept) more characters)" }
        return out
    }

    /// Most entries of a list or a dictionary kept in a JSON line; the rest is noted.
    static let maximumEntries = 64

    /// A metadata value as JSON, typed: a whole number (`"3"`, or an integer passed as `.stringConvertible`) within
    /// ±2^53 as a number, a finite floating-point value or a `Bool` passed as `.stringConvertible` as a number or a
    /// boolean, a list as an array, a dictionary as an object; anything else (`"inf"`, `"nan"`, `"1e400"`, `"007"`,
    /// a 24-digit id) as a string, cut as in text lines. Nesting deeper than 4 is written as a string.
    static func typed(_ value: Logger.Metadata.Value, depth: Int) -> JSONValue {
        switch value {
        case .string(let text):
            return wholeNumber(text).map { JSONValue($0) } ?? .string(cut(text, limit: maximumValueLength))
        case .stringConvertible(let convertible):
            switch convertible {
            case let b as Bool: return .bool(b)
            case let n as any BinaryInteger:
                if let i = Int64(exactly: n), i.magnitude <= 1 << 53 { return JSONValue(Int(i)) }
            case let d as Double where d.isFinite: return JSONValue(d)
            case let f as Float where f.isFinite: return JSONValue(Double(f))
            default: break
            }
            let text = "\(convertible)"
            return wholeNumber(text).map { JSONValue($0) } ?? .string(cut(text, limit: maximumValueLength))
        case .array(let items):
            guard depth < 4 else { return .string(cut("\(value)", limit: maximumValueLength)) }
            var out = items.prefix(maximumEntries).map { typed($0, depth: depth + 1) }
            if items.count > maximumEntries { out.append(.string("…(\(items.count - maximumEntries) more entries)")) }
            return .array(out)
        case .dictionary(let entries):
            guard depth < 4 else { return .string(cut("\(value)", limit: maximumValueLength)) }
            var o = JSONObject()
            for (key, item) in entries.sorted(by: { $0.key < $1.key }).prefix(maximumEntries) {
                o[cut(key, limit: 100)] = typed(item, depth: depth + 1)
            }
            if entries.count > maximumEntries { o["…"] = .string("\(entries.count - maximumEntries) more entries") }
            return .object(o)
        }
    }

    /// `text` as an integer when it is written as one canonically (`0`, `42`, `-7`; no sign `+`, no leading zero,
    /// no blanks) and within ±2^53, where every JSON reader keeps it exact.
    static func wholeNumber(_ text: String) -> Int? {
        let digits = text.hasPrefix("-") ? text.utf8.dropFirst() : text.utf8[...]
        guard !digits.isEmpty, digits.count <= 16, digits.allSatisfy({ $0 >= 48 && $0 <= 57 }),
            digits.first != 48 || digits.count == 1, text != "-0",
            let n = Int(text), n.magnitude <= 1 << 53
        else { return nil }
        return n
    }

    /// `text` cut to `limit` characters, with a note of how much was left out (JSON escapes the rest).
    static func cut(_ text: String, limit: Int) -> String {
        let count = text.unicodeScalars.count
        guard count > limit else { return text }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: text.unicodeScalars.prefix(limit))
        return String(out) + "…(\(count - limit) more characters)"
    }

    /// An escaped value, in double quotes when it is empty or holds a space, a quote or an equals sign.
    static func quoted(_ value: String) -> String {
        guard value.isEmpty || value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    private static func timestamp() -> String {
        var buffer = [Int8](repeating: 0, count: 64)
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Writes a whole line to standard error in one call, so lines from several threads never interleave.
    public static let standardError: @Sendable (String) -> Void = { line in
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Foundation.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if n <= 0 {
                    if n < 0 && errno == EINTR { continue }
                    return
                }
                offset += n
            }
        }
    }
}
