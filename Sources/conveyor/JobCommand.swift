import ArgumentParser
import ConveyorCore
import Foundation
import Operations
import Postgres

/// `conveyor job JID`: where a job is and how far it got: taken by a process (running), queued, scheduled, waiting
/// for a retry or dead, its progress hash, and its outcome row in PostgreSQL.
struct JobCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job",
        abstract: "Show a job by jid: where it is, its progress, and its outcome row.",
        discussion: "Reads DATABASE_URL (or --database-url) for the outcome row. Exit codes: 0 found, 3 Redis unreachable, 4 not found anywhere, 64 bad usage.")

    @OptionGroup var redis: RedisOptions
    @Option(help: "PostgreSQL URL for the outcome row (default: $DATABASE_URL).") var databaseURL: String?
    @Argument(help: "The job's jid.") var jid: String
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        guard JobCancellation.isPlausibleJID(jid) else { throw ValidationError("\(jid.prefix(80)): not a jid (1-128 letters, digits, - or _)") }
    }

    func run() {
        let connection = redis.connect()
        let locator = JobLocator(keys: redis.keys, connection: connection)
        let (sightings, progress) = SetCommands.run { (try locator.locate(jid), try locator.progress(jid)) }
        var row: JobResultRecord?
        var note: String?
        let settings = try? redis.settings()
        if let url = databaseURL ?? settings?.text(OperationsSettings.databaseUrl) {
            do {
                row = try JobResultQueries.byJID(jid, on: try PostgresConnection(url: url))
            } catch {
                note = "PostgreSQL: \(error)"
            }
        }
        if json {
            var o = JSONObject()
            o["jid"] = .string(jid)
            o["places"] = .array(sightings.map(Self.object))
            var p = JSONObject()
            for (name, value) in progress.sorted(by: { $0.key < $1.key }) {
                p[name] = name == "detail" ? ((try? JSONValue(parsing: value)) ?? .string(value)) : (Double(value).map { JSONValue($0) } ?? .string(value))
            }
            o["progress"] = progress.isEmpty ? .null : .object(p)
            o["result"] = row.map(Self.object) ?? .null
            if let note { o["note"] = .string(note) }
            print(JSONValue.object(o).text)
        } else {
            print("job \(jid)")
            for s in sightings {
                var line = "  \(s.place)"
                if let process = s.process { line += " by \(process)" }
                if let queue = s.queue { line += s.place == "queued" ? " in \(queue)" : " (queue \(queue))" }
                if let score = s.score { line += (s.place == "dead" ? " at " : " for ") + SetCommands.iso(score) }
                if let c = s.job?["class"]?.stringValue { line += "  \(c)" }
                if let e = s.job?["error_class"]?.stringValue { line += "  \(e): \(String((s.job?["error_message"]?.stringValue ?? "").prefix(120)))" }
                print(line)
            }
            if !progress.isEmpty {
                print("  progress \(progress["progress"] ?? "-")%  \(progress["detail"] ?? "")  updated \(progress["updated_at"].flatMap(Double.init).map(SetCommands.iso) ?? "-")  \(progress["status"] ?? "")")
            }
            if let row {
                var line = "  outcome \(row.status) after \(row.attempts) run\(row.attempts == 1 ? "" : "s") at \(SetCommands.iso(row.finishedAt))"
                if let e = row.errorClass { line += "  \(e): \(String((row.errorMessage ?? "").prefix(200)))" }
                print(line)
            }
            if let note { print("  (\(note))") }
        }
        if sightings.isEmpty && progress.isEmpty && row == nil { OperatorExit.fail("no job \(jid) in Redis or the results table", code: .notFound) }
    }

    static func object(_ s: JobLocator.Sighting) -> JSONValue {
        var o = JSONObject()
        o["place"] = .string(s.place)
        o["queue"] = s.queue.map { .string($0) } ?? .null
        if let process = s.process { o["process"] = .string(process) }
        if let score = s.score { o["at"] = JSONValue(score) }
        o["class"] = s.job?["class"] ?? .null
        o["args"] = s.job?["args"] ?? .null
        if let e = s.job?["error_class"] { o["error_class"] = e }
        if let e = s.job?["error_message"] { o["error_message"] = e }
        return .object(o)
    }

    static func object(_ r: JobResultRecord) -> JSONValue {
        var o = JSONObject()
        o["status"] = .string(r.status)
        o["class"] = .string(r.jobClass)
        o["queue"] = .string(r.queue)
        o["attempts"] = JSONValue(r.attempts)
        o["error_class"] = r.errorClass.map { .string($0) } ?? .null
        o["error_message"] = r.errorMessage.map { .string($0) } ?? .null
        o["result"] = r.result.flatMap { try? JSONValue(parsing: $0) } ?? .null
        o["finished_at"] = JSONValue(r.finishedAt)
        return .object(o)
    }
}
