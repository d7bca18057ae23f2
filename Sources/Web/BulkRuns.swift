import ConveyorCore
import Foundation
import Logging
import Operations
import Redis
import SidekiqQueue
import Synchronization

/// Bulk replays and deletes started from the dashboard: each runs `JobSet.move` (the code behind
/// `conveyor dead|retry replay|delete`) on its own Redis connection and thread, so a paced replay of thousands of
/// jobs never holds up a page. The Actions page shows their progress; the last 50 are kept.
final class BulkRuns: Sendable {
    struct Run: Sendable {
        var id: Int
        var who: String
        var what: String
        var started: Double
        var done = 0
        var matched = 0
        var state = "running"
        var failed = false
    }

    /// One line of the action log the Actions page shows (the same lines go to the process log).
    struct LogLine: Sendable {
        var at: Double
        var who: String
        var what: String
    }

    private let runs = Mutex<[Run]>([])
    private let lines = Mutex<[LogLine]>([])
    private let next = Atomic<Int>(1)
    private let logger: Logger
    /// Where each action is also written: the shared history in Redis (`ActionLog`), on its own connection.
    private let history: (thread: RedisThread, keys: QueueKeys)?

    init(logger: Logger, history: (thread: RedisThread, keys: QueueKeys)? = nil) {
        self.logger = logger
        self.history = history
    }

    func close() { history?.thread.stop() }

    var all: [Run] { runs.withLock { $0.reversed() } }
    var log: [LogLine] { lines.withLock { $0.reversed() } }

    /// Logs an action with who did it: to the process log (notice) and the Actions page.
    func record(who: String, _ what: String, metadata: Logger.Metadata = [:]) async {
        var m = metadata
        m["who"] = "\(who)"
        logger.notice("dashboard action: \(what)", metadata: m)
        let now = Date().timeIntervalSince1970
        lines.withLock { l in
            l.append(LogLine(at: now, who: who, what: what))
            if l.count > 200 { l.removeFirst(l.count - 200) }
        }
        guard let history else { return }
        // Written before the action's page answers, so the Actions page (on any replica) shows it at once.
        do {
            try await history.thread.run { connection in
                try ActionLog(keys: history.keys, connection: connection).record(.init(at: now, who: who, what: what, via: "dashboard"))
            }
        } catch {
            logger.warning("action not written to the shared history", metadata: ["error": "\(error)"])
        }
    }

    /// Starts one bulk move; returns its number at once.
    @discardableResult
    func start(
        who: String, set: JobSetName, filter: JobFilter, action: JobSet.MoveAction, perSecond: Double?, endpoint: RedisEndpoint,
        keys: QueueKeys, description: String
    ) async -> Int {
        let id = next.wrappingAdd(1, ordering: .relaxed).oldValue
        runs.withLock { r in
            r.append(Run(id: id, who: who, what: description, started: Date().timeIntervalSince1970))
            if r.count > 50 { r.removeFirst(r.count - 50) }
        }
        await record(who: who, "started #\(id): \(description)")
        let thread = RedisThread(endpoint, name: "conveyor-web-bulk-\(id)", commandTimeout: 30)
        Task.detached { [self] in
            defer { thread.stop() }
            do {
                let report = try await thread.run { connection in
                    try JobSet(set, keys: keys, connection: connection).move(filter, action, perSecond: perSecond) { done, matched in
                        self.runs.withLock { r in
                            if let i = r.firstIndex(where: { $0.id == id }) {
                                r[i].done = done
                                r[i].matched = matched
                            }
                        }
                        return true
                    }
                }
                runs.withLock { r in
                    if let i = r.firstIndex(where: { $0.id == id }) {
                        r[i].done = report.done
                        r[i].matched = report.matched
                        var state = "done"
                        if report.skipped > 0 { state += ", \(report.skipped) already gone" }
                        if report.unreplayable > 0 { state += ", \(report.unreplayable) not jobs" }
                        r[i].state = state
                    }
                }
                await record(who: who, "finished #\(id): \(action.verb) \(report.done) of \(report.matched) from \(set.rawValue)")
            } catch {
                runs.withLock { r in
                    if let i = r.firstIndex(where: { $0.id == id }) {
                        r[i].state = "failed: \(error)"
                        r[i].failed = true
                    }
                }
                await record(who: who, "failed #\(id): \(error)")
            }
        }
        return id
    }
}
