import Foundation
import Yams

/// A conveyor.yml: settings under their keys (`concurrency: 10`, `media.store: s3://bucket`, or nested as
/// `media:` / `  store: s3://bucket`), each with the line it is on. The blocks later features fill (`schedules:`,
/// `limits:`) are accepted and kept aside. Only scalars and lists of scalars are values.
public struct SettingsFile: Sendable {
    public struct Entry: Sendable {
        /// The dotted key (`media.store`).
        public let key: String
        /// As written; nil for an explicit null (`key: ~`, `key:`), which leaves the setting unset.
        public let value: String?
        /// 1-based.
        public let line: Int
    }

    /// Top-level blocks that belong to other features, accepted as they are.
    public static let reservedBlocks: Set<String> = ["schedules", "limits"]
    /// The largest file read, so a mistaken path (a log, a device) is refused instead of read whole.
    public static let maximumBytes = 1_048_576

    /// As given on the command line or in `CONVEYOR_CONFIG_FILE`, for messages.
    public let path: String
    public let entries: [Entry]
    /// The reserved blocks present, with their lines.
    public let reserved: [String: Int]
    /// What cannot be read as settings (each naming the file and line); unknown keys are found by `SettingsReader`.
    public let problems: [String]
    /// The `schedules:` block's entries as written (checked by `Schedule.check` in the Schedules target).
    public private(set) var schedules: [RawSchedule] = []
    /// What in the `schedules:` block is not a name with a mapping of plain values.
    public private(set) var scheduleProblems: [String] = []
    /// The `limits:` block's entries as written (checked by `FlowLimit.check`).
    public private(set) var limits: [RawLimit] = []
    /// What in the `limits:` block is not a name with a mapping of plain values and lists.
    public private(set) var limitProblems: [String] = []

    /// One entry of `limits:`: its plain fields with their lines, and `classes` (a list or a comma-separated value).
    public struct RawLimit: Sendable {
        public let name: String
        public let line: Int
        public let fields: [String: (value: String?, line: Int)]
        public let classes: [String]?
    }

    /// One entry of `schedules:`: its scalar fields with their lines, and `args` (any YAML value) as JSON text.
    public struct RawSchedule: Sendable {
        public let name: String
        public let line: Int
        public let fields: [String: (value: String?, line: Int)]
        public let argsJSON: String?
    }

    /// Reads and parses `path`; a file that cannot be read or is not YAML is a problem, not a crash.
    public init(path: String) {
        let url = URL(fileURLWithPath: path)
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        if let type = attributes?[.type] as? FileAttributeType, type != .typeRegular {
            // A device or a pipe (`/dev/zero`, `/dev/stdin`) would be read without end.
            self.init(path: path, entries: [], reserved: [:], problems: ["\(path): not a regular file"])
            return
        }
        let size = (attributes?[.size] as? NSNumber)?.intValue ?? 0
        guard size <= Self.maximumBytes else {
            self.init(path: path, entries: [], reserved: [:], problems: ["\(path): larger than \(Self.maximumBytes) bytes; is it a config file?"])
            return
        }
        guard let data = try? Data(contentsOf: url) else {
            self.init(path: path, entries: [], reserved: [:], problems: ["\(path): cannot be read (\(Self.reason(path)))"])
            return
        }
        guard let text = String(data: data, encoding: .utf8) else {
            self.init(path: path, entries: [], reserved: [:], problems: ["\(path): not UTF-8 text"])
            return
        }
        self.init(path: path, text: text)
    }

    /// Parses `text` as the content of `path`.
    public init(path: String, text: String) {
        var schedulesNode: Node?
        var limitsNode: Node?
        var entries: [Entry] = []
        var reserved: [String: Int] = [:]
        var problems: [String] = []
        do {
            if let root = try Yams.compose(yaml: text) {
                switch root {
                case .mapping(let mapping):
                    Self.flatten(mapping, prefix: "", path: path, into: &entries, reserved: &reserved, problems: &problems, schedules: &schedulesNode, limits: &limitsNode)
                case .scalar(let scalar) where ["", "~", "null"].contains(scalar.string):
                    break
                default:
                    problems.append("\(path) line \(root.mark?.line ?? 1): expected key: value lines at the top level")
                }
            }
        } catch {
            problems.append("\(path): not YAML: \(Self.oneLine("\(error)"))")
        }
        var seen: [String: Int] = [:]
        for entry in entries {
            if let first = seen[entry.key] {
                problems.append("\(path) line \(entry.line): \(entry.key) is set again (first on line \(first))")
            } else {
                seen[entry.key] = entry.line
            }
        }
        self.init(path: path, entries: entries, reserved: reserved, problems: problems)
        if let node = schedulesNode { (schedules, scheduleProblems) = Self.readSchedules(node, path: path) }
        if let node = limitsNode { (limits, limitProblems) = Self.readLimits(node, path: path) }
    }

    private init(path: String, entries: [Entry], reserved: [String: Int], problems: [String]) {
        self.path = path
        self.entries = entries
        self.reserved = reserved
        self.problems = problems
    }

    private static func flatten(
        _ mapping: Node.Mapping, prefix: String, path: String, into entries: inout [Entry], reserved: inout [String: Int],
        problems: inout [String], schedules schedulesNode: inout Node?, limits limitsNode: inout Node?
    ) {
        for (keyNode, value) in mapping {
            let line = keyNode.mark?.line ?? value.mark?.line ?? 0
            guard case .scalar(let keyScalar) = keyNode, !keyScalar.string.isEmpty, keyScalar.string.utf8.count <= 200 else {
                problems.append("\(path) line \(line): a key must be a plain name")
                continue
            }
            let key = prefix + keyScalar.string
            if prefix.isEmpty, reservedBlocks.contains(key) {
                reserved[key] = line
                if key == "schedules" { schedulesNode = value }
                if key == "limits" { limitsNode = value }
                continue
            }
            switch value {
            case .scalar(let scalar):
                let isNull = scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
                entries.append(Entry(key: key, value: isNull ? nil : scalar.string, line: line))
            case .sequence(let sequence):
                var items: [String] = []
                for item in sequence {
                    guard case .scalar(let s) = item else {
                        problems.append("\(path) line \(item.mark?.line ?? line): \(key) takes a list of plain values")
                        break
                    }
                    items.append(s.string)
                }
                entries.append(Entry(key: key, value: items.joined(separator: ","), line: line))
            case .mapping(let nested):
                flatten(nested, prefix: key + ".", path: path, into: &entries, reserved: &reserved, problems: &problems, schedules: &schedulesNode, limits: &limitsNode)
            case .alias:
                problems.append("\(path) line \(line): \(key): YAML aliases are not supported")
            }
        }
    }

    private static func readSchedules(_ node: Node, path: String) -> ([RawSchedule], [String]) {
        var out: [RawSchedule] = []
        var problems: [String] = []
        let blockLine = node.mark?.line ?? 0
        if case .scalar(let s) = node, ["", "~", "null"].contains(s.string) { return ([], []) }
        guard case .mapping(let mapping) = node else {
            return ([], ["\(path) line \(blockLine): schedules: expected one mapping per schedule name"])
        }
        for (keyNode, value) in mapping {
            let line = keyNode.mark?.line ?? blockLine
            guard case .scalar(let name) = keyNode, case .mapping(let body) = value else {
                problems.append("\(path) line \(line): schedules: each schedule is a name with cron:, class: and the rest under it")
                continue
            }
            var fields: [String: (value: String?, line: Int)] = [:]
            var argsJSON: String?
            for (fieldKey, fieldValue) in body {
                let fieldLine = fieldKey.mark?.line ?? line
                guard case .scalar(let k) = fieldKey else {
                    problems.append("\(path) line \(fieldLine): schedule \(name.string): a key must be a plain name")
                    continue
                }
                if k.string == "args" {
                    guard let json = jsonText(fieldValue, depth: 0) else {
                        problems.append("\(path) line \(fieldLine): schedule \(name.string): args must be plain YAML (no aliases, at most 32 levels)")
                        continue
                    }
                    argsJSON = json
                    fields["args"] = (json, fieldLine)
                } else if case .scalar(let v) = fieldValue {
                    fields[k.string] = (v.string, fieldLine)
                } else {
                    problems.append("\(path) line \(fieldLine): schedule \(name.string): \(k.string) takes a plain value")
                }
            }
            out.append(RawSchedule(name: name.string, line: line, fields: fields, argsJSON: argsJSON))
        }
        return (out, problems)
    }

    private static func readLimits(_ node: Node, path: String) -> ([RawLimit], [String]) {
        var out: [RawLimit] = []
        var problems: [String] = []
        let blockLine = node.mark?.line ?? 0
        if case .scalar(let s) = node, ["", "~", "null"].contains(s.string) { return ([], []) }
        guard case .mapping(let mapping) = node else {
            return ([], ["\(path) line \(blockLine): limits: expected one mapping per limit name"])
        }
        for (keyNode, value) in mapping {
            let line = keyNode.mark?.line ?? blockLine
            guard case .scalar(let name) = keyNode, case .mapping(let body) = value else {
                problems.append("\(path) line \(line): limits: each limit is a name with classes:, key:, concurrency: or rate: under it")
                continue
            }
            var fields: [String: (value: String?, line: Int)] = [:]
            var classes: [String]?
            for (fieldKey, fieldValue) in body {
                let fieldLine = fieldKey.mark?.line ?? line
                guard case .scalar(let k) = fieldKey else {
                    problems.append("\(path) line \(fieldLine): limit \(name.string): a key must be a plain name")
                    continue
                }
                switch fieldValue {
                case .scalar(let v):
                    fields[k.string] = (v.string, fieldLine)
                    if k.string == "classes" {
                        classes = v.string.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                    }
                case .sequence(let items) where k.string == "classes":
                    var list: [String] = []
                    for item in items {
                        guard case .scalar(let s) = item else {
                            problems.append("\(path) line \(fieldLine): limit \(name.string): classes takes a list of class names")
                            break
                        }
                        list.append(s.string)
                    }
                    fields[k.string] = (list.joined(separator: ","), fieldLine)
                    classes = list
                default:
                    problems.append("\(path) line \(fieldLine): limit \(name.string): \(k.string) takes a plain value")
                }
            }
            out.append(RawLimit(name: name.string, line: line, fields: fields, classes: classes))
        }
        return (out, problems)
    }

    /// A YAML value as JSON text: plain scalars that read as numbers, booleans or null become those.
    private static func jsonText(_ node: Node, depth: Int) -> String? {
        guard depth < 32 else { return nil }
        switch node {
        case .scalar(let s):
            if s.style == .plain {
                if ["~", "null", "Null", "NULL", ""].contains(s.string) { return "null" }
                if ["true", "True", "TRUE"].contains(s.string) { return "true" }
                if ["false", "False", "FALSE"].contains(s.string) { return "false" }
                if Int64(s.string) != nil { return s.string }
                if let d = Double(s.string), d.isFinite, s.string.allSatisfy({ "0123456789.eE+-".contains($0) }) { return s.string }
            }
            return quote(s.string)
        case .sequence(let seq):
            var parts: [String] = []
            for item in seq {
                guard let j = jsonText(item, depth: depth + 1) else { return nil }
                parts.append(j)
            }
            return "[" + parts.joined(separator: ",") + "]"
        case .mapping(let map):
            var parts: [String] = []
            for (k, v) in map {
                guard case .scalar(let ks) = k, let j = jsonText(v, depth: depth + 1) else { return nil }
                parts.append(quote(ks.string) + ":" + j)
            }
            return "{" + parts.joined(separator: ",") + "}"
        case .alias:
            return nil
        }
    }

    private static func quote(_ text: String) -> String {
        JSONValue.string(text).text
    }

    private static func reason(_ path: String) -> String {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) { return "no such file" }
        return isDirectory.boolValue ? "a directory" : "permission denied"
    }

    /// The parser's first line (`3:5: error: ...`), cut: the lines after it quote the file, which may hold a secret.
    private static func oneLine(_ text: String) -> String {
        let first = text.split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        return first.count > 200 ? String(first.prefix(200)) + "..." : first
    }
}
