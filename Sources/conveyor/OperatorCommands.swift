import ArgumentParser
import ConveyorCore
import Foundation
import Operations
import Redis
import SidekiqQueue

// What the operator commands share (`dead`, `retry`, `scheduled`, `queue`, `bullmq`, `cancel`, `job`): connecting,
// exit codes, the action history, set filters and their replay/delete plumbing, and progress lines.

extension RedisOptions {
    /// Connects or exits with code 3 (Redis unreachable) or 64 (bad URL).
    func connect() -> RedisConnection {
        let endpoint: RedisEndpoint
        do { endpoint = try self.endpoint() } catch { OperatorExit.fail("\(error)", code: .usage) }
        do {
            return try RedisConnection(endpoint, connectTimeout: 5, commandTimeout: 30)
        } catch {
            OperatorExit.fail("\(error)", code: .unreachable)
        }
    }
}

/// The shared action history (`ActionLog`, what the dashboard's Actions page shows): every command that changes
/// jobs or queues records what it did and who ran it. A history that cannot be written is a warning, not a failure.
enum CLIAudit {
    static func record(_ what: String, keys: QueueKeys, connection: RedisConnection) {
        do {
            try ActionLog(keys: keys, connection: connection).record(
                .init(at: Date().timeIntervalSince1970, who: ActionLog.cliUser, what: what, via: "cli"))
        } catch {
            FileHandle.standardError.write(Data("conveyor: warning: the action was not written to the shared history: \(error)\n".utf8))
        }
    }
}

/// Exit codes of the operator commands (documented in docs/operations.md).
enum OperatorExit: Int32 {
    case ok = 0
    case failed = 1
    case unreachable = 3
    case notFound = 4
    case usage = 64

    static func fail(_ message: String, code: OperatorExit) -> Never {
        FileHandle.standardError.write(Data("conveyor: \(message)\n".utf8))
        exit(code.rawValue)
    }
}

struct SetFilterOptions: ParsableArguments {
    @Option(name: .customLong("class"), help: "Only jobs of this class (repeatable).")
    var classes: [String] = []

    @Option(name: .customLong("queue"), help: "Only jobs from this queue (repeatable).")
    var queues: [String] = []

    @Option(name: .customLong("error"), help: "Only jobs whose 'error_class: error_message' matches this regular expression (linear-time subset: no back-references or look-arounds; at most 512 characters).")
    var errorPattern: String?

    @Option(help: "Only jobs that failed at or after this time (Unix seconds, ISO 8601, or an age like 2h, 7d).")
    var since: String?

    @Option(help: "Only jobs that failed at or before this time (same forms as --since).")
    var until: String?

    @Option(name: .customLong("jid"), help: "Only this job id (repeatable).")
    var jids: [String] = []

    @Option(help: "At most this many jobs.")
    var limit: Int?

    /// True when no filter was given: deleting then needs `--all`.
    var isEmpty: Bool {
        classes.isEmpty && queues.isEmpty && errorPattern == nil && since == nil && until == nil && jids.isEmpty && limit == nil
    }

    func filter() -> JobFilter {
        var f = JobFilter()
        f.classes = classes
        f.queues = queues
        f.errorPattern = errorPattern
        f.jids = jids
        f.limit = limit
        if let since {
            guard let t = OperatorInput.time(since) else { OperatorExit.fail("--since \(since): not a time", code: .usage) }
            f.since = t
        }
        if let until {
            guard let t = OperatorInput.time(until) else { OperatorExit.fail("--until \(until): not a time", code: .usage) }
            f.until = t
        }
        if let limit, limit <= 0 { OperatorExit.fail("--limit must be positive", code: .usage) }
        return f
    }

    /// Deleting needs a filter or `--all`, so a bare `delete` cannot empty a set by accident.
    func requireFilter(orAll all: Bool, _ set: String) throws {
        if isEmpty && !all { throw ValidationError("no filter given: pass --all to delete every job in \(set)") }
    }
}

/// How `replay` and `delete` go about it, for the dead and the retry set alike.
struct MoveOptions: ParsableArguments {
    @Flag(help: "Show which jobs it would touch; change nothing.") var dryRun = false
    @Option(help: "At most this many jobs per second (N/s, N/m, N/h).") var rate: String?
    @Flag(help: "Print JSON.") var json = false
}

/// Shared implementation of `dead ...` and `retry ...`.
enum SetCommands {
    static func list(_ set: JobSetName, _ redis: RedisOptions, _ filter: SetFilterOptions, json: Bool) {
        let f = filter.filter()
        let entries = run { try JobSet(set, keys: redis.keys, connection: redis.connect()).list(f) }
        // Every set command exits 4 when the jids it was given matched nothing.
        let unknownJIDs = !f.jids.isEmpty && entries.isEmpty
        if json {
            var o = JSONObject()
            o["set"] = .string(set.rawValue)
            o["count"] = JSONValue(entries.count)
            o["jobs"] = .array(entries.map(\.summary))
            print(JSONValue.object(o).text)
            if unknownJIDs { exit(OperatorExit.notFound.rawValue) }
            return
        }
        if unknownJIDs { OperatorExit.fail("no job \(f.jids.joined(separator: ", ")) in \(set.rawValue)", code: .notFound) }
        if entries.isEmpty {
            print("no jobs in \(set.rawValue) match")
            return
        }
        print(pad("JID", 26) + pad("CLASS", 24) + pad("QUEUE", 12) + pad(set == .dead ? "DIED" : set == .scheduled ? "DUE" : "NEXT RUN", 22)
              + (set == .scheduled ? "ARGUMENTS" : "ERROR"))
        for e in entries {
            let when = set == .dead ? (e.failedAt ?? e.score) : e.score
            let error = set == .scheduled ? (e.job?["args"]?.text ?? "") : "\(e.errorClass ?? "?"): \(e.errorMessage ?? "")"
            print(pad(e.jid ?? "(not a job)", 26) + pad(e.jobClass ?? "-", 24) + pad(e.queue ?? "-", 12) + pad(iso(when), 22) + String(error.prefix(80)))
        }
    }

    static func show(_ set: JobSetName, _ redis: RedisOptions, jid: String) {
        var filter = JobFilter()
        filter.jids = [jid]
        let entries = run { try JobSet(set, keys: redis.keys, connection: redis.connect()).list(filter) }
        guard !entries.isEmpty else { OperatorExit.fail("no job \(jid) in \(set.rawValue)", code: .notFound) }
        for e in entries {
            if let job = e.job { print(JSONValue.object(job).text) } else { print(String(decoding: e.member, as: UTF8.self)) }
        }
    }

    /// Replays or deletes every matching entry, one atomic step per job.
    static func move(
        _ set: JobSetName, _ redis: RedisOptions, _ filterOptions: SetFilterOptions, _ options: MoveOptions, delete: Bool,
        resetAttempts: Bool
    ) {
        let (dryRun, rate, json) = (options.dryRun, options.rate, options.json)
        var perSecond: Double?
        if let rate {
            guard let r = OperatorInput.rate(rate) else { OperatorExit.fail("--rate \(rate): expected N/s, N/m or N/h", code: .usage) }
            perSecond = r
        }
        let filter = filterOptions.filter()
        let connection = redis.connect()
        let jobSet = JobSet(set, keys: redis.keys, connection: connection)
        let action: JobSet.MoveAction = delete ? .delete : .replay(resetAttempts: resetAttempts)
        var progress: Progress?
        let report = run {
            try jobSet.move(filter, action, perSecond: perSecond, dryRun: dryRun) { done, matched in
                if progress == nil { progress = Progress(total: matched, verb: delete ? "deleted" : "replayed", enabled: !json) }
                progress?.update(done)
                return true
            }
        }
        progress?.finish()
        if !dryRun, report.matched > 0 {
            CLIAudit.record(
                "\(delete ? "delete" : "replay") \(set.rawValue) jobs: \(report.jids.count) of \(report.matched) matching\(filter.isEmpty ? " (all)" : "")",
                keys: redis.keys, connection: connection)
        }
        let unknownJIDs = !filter.jids.isEmpty && report.matched == 0
        if unknownJIDs && !json {
            OperatorExit.fail("no job \(filter.jids.joined(separator: ", ")) in \(set.rawValue)", code: .notFound)
        }
        defer { if unknownJIDs { exit(OperatorExit.notFound.rawValue) } }
        let done = report.jids
        let (skipped, unreplayable) = (report.skipped, report.unreplayable)
        if json {
            var o = JSONObject()
            o["set"] = .string(set.rawValue)
            o["action"] = .string(delete ? "delete" : "replay")
            o["dry_run"] = .bool(dryRun)
            o["matched"] = JSONValue(report.matched)
            o[delete ? "deleted" : "replayed"] = JSONValue(dryRun ? 0 : done.count)
            o["skipped"] = JSONValue(skipped)
            if !delete { o["unreplayable"] = JSONValue(unreplayable) }
            o["jids"] = .array(done.map { .string($0) })
            print(JSONValue.object(o).text)
        } else if dryRun {
            let entries = run { try jobSet.list(filter) }
            for e in entries { print("would \(delete ? "delete" : "replay")  \(e.jid ?? "(not a job)")  \(e.jobClass ?? "-")  \(e.queue ?? "-")") }
            print("\(Self.jobs(report.matched)) match\(report.matched == 1 ? "es" : "") (dry run: nothing changed)")
        } else {
            var line = "\(delete ? "deleted" : "replayed") \(done.count) of \(report.matched) matching job\(report.matched == 1 ? "" : "s") from \(set.rawValue)"
            if skipped > 0 { line += "; \(skipped) \(skipped == 1 ? "was" : "were") already gone (taken by a worker or another command)" }
            if unreplayable > 0 { line += "; \(unreplayable) \(unreplayable == 1 ? "is not a job and was" : "are not jobs and were") left (delete \(unreplayable == 1 ? "it" : "them"))" }
            print(line)
        }
    }

    static func run<T>(_ body: () throws -> T) -> T {
        do { return try body() } catch let error as RedisError where error.isConnectionError {
            OperatorExit.fail("\(error)", code: .unreachable)
        } catch let error as JobSetError {
            if case .usage = error { OperatorExit.fail("\(error)", code: .usage) }
            OperatorExit.fail("\(error)", code: .failed)
        } catch {
            OperatorExit.fail("\(error)", code: .failed)
        }
    }

    /// `1 job`, `2 jobs`.
    static func jobs(_ n: Int) -> String { "\(n) job\(n == 1 ? "" : "s")" }

    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? String(s.prefix(width - 1)) + " " : s + String(repeating: " ", count: width - s.count)
    }

    /// ISO 8601 for a time between 1970 and year 9999; anything else (a producer's 1e300, inf) as the raw score.
    static func iso(_ t: Double) -> String {
        guard t.isFinite, t >= 0, t <= 253_402_300_799 else { return "score \(t)" }
        let f = ISO8601DateFormatter()
        return f.string(from: Date(timeIntervalSince1970: t))
    }
}

/// A progress line on stderr, only when stderr is a terminal.
final class Progress {
    let total: Int
    let verb: String
    let enabled: Bool
    private var last = Date.distantPast

    init(total: Int, verb: String, enabled: Bool) {
        self.total = total
        self.verb = verb
        self.enabled = enabled && isatty(STDERR_FILENO) == 1 && total > 0
    }

    func update(_ n: Int) {
        guard enabled, n == total || Date().timeIntervalSince(last) > 0.1 else { return }
        last = Date()
        FileHandle.standardError.write(Data("\r\(verb) \(n)/\(total)".utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
