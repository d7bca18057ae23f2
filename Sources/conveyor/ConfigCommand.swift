import ArgumentParser
import ConveyorCore
import Foundation
import Operations
import Web

/// `conveyor config`: every setting's effective value (secrets masked) and where it came from (default, env,
/// file:line, flag), checked exactly as `conveyor worker` and `conveyor web` check them before they start. Exits 64
/// with every problem at once; warns about unknown variables with an owned prefix, with the nearest known name.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Print the effective configuration (secrets masked) and its sources, and check every setting.",
        discussion: "--example prints a commented conveyor.yml with every setting at its default; --markdown the reference tables of docs/configuration.md.")

    @Flag(help: "One JSON object instead of a table.")
    var json = false

    @Flag(help: "Only the settings that something other than their default sets.")
    var onlySet = false

    @Flag(help: "Print a commented conveyor.yml with every setting at its default, and nothing else.")
    var example = false

    @Flag(help: "Print the reference tables of docs/configuration.md, and nothing else.")
    var markdown = false

    @Option(name: .customLong("update-docs"), help: "Rewrite the generated tables of this file (docs/configuration.md) from the catalogue.")
    var updateDocs: String?

    @OptionGroup var worker: WorkerSettingFlags

    @Option(help: "The dashboard's host:port, as conveyor web --addr (env CONVEYOR_WEB_ADDR).")
    var addr: String?

    @OptionGroup var redis: RedisOptions

    func run() throws {
        if example {
            print(Catalogue.example(), terminator: "")
            return
        }
        if let updateDocs {
            try Self.rewriteTables(in: updateDocs)
            return
        }
        if markdown {
            print(Catalogue.markdown(), terminator: "")
            return
        }
        var flags = redis.flags.merging(worker.flags) { a, _ in a }
        if let addr { flags[WebSettings.webAddr.name] = .init("--addr", addr) }
        var reader = Catalogue.reader(flags: flags)
        Catalogue.checkEverything(&reader)
        let rows = reader.all.filter { !onlySet || $0.source != .defaultValue }
        if json {
            var o = JSONObject()
            o["version"] = .string(Conveyor.version)
            if let file = reader.file { o["config_file"] = .string(file.path) }
            o["settings"] = .array(rows.map(Self.object))
            o["unknown"] = .array(reader.unknownNames.map { .string($0) })
            o["warnings"] = .array(reader.warnings.map { .string($0) })
            o["errors"] = .array(reader.problems.map { .string($0) })
            print(String(decoding: o.bytes, as: UTF8.self))
        } else {
            let width = rows.map(\.setting.name.count).max() ?? 10
            let shown = rows.map { r in r.text.map { Self.shown(r, $0) } ?? "(unset)" }
            let valueWidth = min(60, shown.map(\.count).max() ?? 10)
            for (r, value) in zip(rows, shown) {
                print(
                    r.setting.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                        + value.padding(toLength: max(valueWidth, value.count), withPad: " ", startingAt: 0) + "  " + r.source.label)
            }
        }
        for warning in reader.warnings { FileHandle.standardError.write(Data("conveyor: warning: \(warning)\n".utf8)) }
        for problem in reader.problems { FileHandle.standardError.write(Data("conveyor: error: \(problem)\n".utf8)) }
        if !reader.problems.isEmpty { throw ExitCode(64) }
    }

    /// Replaces the text between `<!-- settings:begin ... -->` and `<!-- settings:end -->` in `path` with
    /// `Catalogue.markdown()`.
    static func rewriteTables(in path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
            let begin = text.range(of: "<!-- settings:begin"), let open = text.range(of: "-->\n", range: begin.upperBound..<text.endIndex),
            let end = text.range(of: "<!-- settings:end -->", range: open.upperBound..<text.endIndex)
        else { throw ValidationError("--update-docs \(path): no readable file with <!-- settings:begin --> and <!-- settings:end --> markers") }
        let updated = String(text[..<open.upperBound]) + Catalogue.markdown() + String(text[end.lowerBound...])
        try updated.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// A value as shown: masked unless it is the built-in default (never a secret: it is in the docs).
    static func shown(_ r: SettingsReader.Resolved, _ text: String) -> String {
        r.source == .defaultValue ? text : r.setting.masked(text)
    }

    /// One setting as `--json` shows it: the value and default as text (masked), the source and, for the file, its line.
    static func object(_ r: SettingsReader.Resolved) -> JSONValue {
        let s = r.setting
        var fields: [(String, JSONValue)] = [
            ("name", .string(s.name)), ("key", .string(s.key)), ("flag", s.flag.map { .string($0) } ?? .null),
            ("type", .string(s.kind.typeName)), ("value", r.text.map { .string(Self.shown(r, $0)) } ?? .null),
            ("default", s.defaultValue.map { .string($0) } ?? .null), ("source", .string(r.source.label)),
            ("secret", .bool(s.secret)),
        ]
        switch s.kind {
        case .int(let range):
            fields.append(("min", JSONValue(range.lowerBound)))
            fields.append(("max", JSONValue(range.upperBound)))
        case .number(let range), .duration(let range):
            fields.append(("min", JSONValue(range.lowerBound)))
            fields.append(("max", JSONValue(range.upperBound)))
        case .choice(let words):
            fields.append(("allowed", .array(words.map { .string($0) })))
        case .url(let schemes):
            fields.append(("schemes", .array(schemes.map { .string($0) })))
        case .text, .onOff, .list:
            break
        }
        if case .file(let path, let line) = r.source {
            fields.append(("file", .string(path)))
            fields.append(("line", JSONValue(line)))
        }
        return .object(JSONObject(fields))
    }
}
