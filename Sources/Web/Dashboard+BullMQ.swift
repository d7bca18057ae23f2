public import BullMQQueue
import ConveyorCore
import Foundation
import Redis

/// The BullMQ queues the dashboard shows: those of `CONVEYOR_BULLMQ_QUEUES` under `CONVEYOR_BULLMQ_PREFIX`, and
/// BullMQ's scripts for retrying (nil: the pages show, retrying is refused with the reason).
public struct BullMQPages: Sendable {
    public var queues: [String]
    public var prefix: String
    public var scripts: BullMQScripts?
    /// Why there are no scripts, shown instead of the Retry buttons.
    public var scriptsProblem: String?

    public init(queues: [String], prefix: String, scripts: BullMQScripts?, scriptsProblem: String? = nil) {
        self.queues = queues
        self.prefix = prefix
        self.scripts = scripts
        self.scriptsProblem = scriptsProblem
    }

    var keys: [String: BullMQKeys] { Dictionary(uniqueKeysWithValues: queues.map { ($0, BullMQKeys(prefix: prefix, queue: $0)) }) }
}

extension Dashboard {
    /// Most active jobs one queue page lists.
    static let maximumActiveShown = 50

    /// `/bullmq`: every configured BullMQ queue's jobs by state (as `conveyor bullmq stats`), failed and stalled marked.
    func bullmqQueues(_ v: Visitor) async throws -> WebResponse {
        guard let bullmq else { throw WebFailure.notFound }
        let keys = bullmq.keys
        let counts = try await redis { try BullMQDepth.counts(of: keys, on: $0) }
        let rows = counts.sorted { $0.key < $1.key }.map { name, c -> [String: Any] in
            [
                "name": name, "path": "/bullmq/" + FormCoding.encode(name), "ready": Format.count(c.depth), "waiting": Format.count(c.waiting),
                "prioritized": Format.count(c.prioritized), "delayed": Format.count(c.delayed), "due": Format.count(c.delayedDue),
                "active": Format.count(c.active), "paused": Format.count(c.paused), "completed": Format.count(c.completed),
                "failed": Format.count(c.failed), "failedBad": c.failed > 0, "stalled": Format.count(c.stalled), "stalledBad": c.stalled > 0,
            ]
        }
        return page(
            "BullMQ", "bullmqQueues", ["queues": rows, "prefix": bullmq.prefix], v, refresh: true, current: "/bullmq", counts: try await navCounts())
    }

    /// `/bullmq/<queue>`: its counts, its failed jobs (newest first, paged, each with Retry, and Retry all) and its
    /// active jobs with their locks (a job without one is stalled).
    func bullmqQueue(_ name: String, _ request: WebRequest, _ v: Visitor) async throws -> WebResponse {
        guard let bullmq, bullmq.queues.contains(name) else { throw WebFailure.notFound }
        let inspection = BullMQInspection(prefix: bullmq.prefix, queue: name)
        let size = configuration.pageSize
        let offset = Format.offset(request.parameter("offset"))
        let (counts, failed, active) = try await redis { connection in
            (
                try BullMQDepth.counts(of: [name: inspection.keys], on: connection)[name] ?? BullMQDepth.Counts(),
                try inspection.failed(offset: offset, count: size, on: connection),
                try inspection.active(limit: Self.maximumActiveShown, on: connection)
            )
        }
        let now = Date().timeIntervalSince1970
        let base = "/bullmq/" + FormCoding.encode(name)
        let failedRows = failed.jobs.map { job -> [String: Any] in
            [
                "id": job.id, "name": job.name, "reason": Format.line(job.failedReason, 300), "data": Format.cut(job.data, 160),
                "attempts": job.attempts.map { "\(job.attemptsMade)/\($0)" } ?? String(job.attemptsMade),
                "finished": Format.time(job.finishedAt), "ago": Format.ago(job.finishedAt, now: now),
            ]
        }
        let activeRows = active.jobs.map { job -> [String: Any] in
            var row: [String: Any] = [
                "id": job.id, "name": job.name, "worker": job.worker, "started": Format.time(job.startedAt), "ago": Format.ago(job.startedAt, now: now),
            ]
            switch job.lock {
            case .expiresIn(let ms): row["lock"] = Format.duration(Double(ms) / 1000)
            case .noExpiry: row["lock"] = "no expiry"
            case .none: row["stalled"] = true
            }
            return row
        }
        var context: [String: Any] = [
            "name": name, "base": base, "ready": Format.count(counts.depth), "waiting": counts.waiting, "prioritized": counts.prioritized,
            "delayed": counts.delayed, "due": counts.delayedDue, "activeCount": counts.active, "pausedCount": counts.paused,
            "completed": counts.completed, "failedCount": failed.total, "failed": failedRows, "active": activeRows,
            "moreActive": active.total > active.jobs.count ? active.total - active.jobs.count : 0,
            "canRetry": bullmq.scripts != nil && !failed.jobs.isEmpty, "range": failed.total == 0 ? "" : "\(offset + 1)-\(offset + failed.jobs.count) of \(failed.total)",
        ]
        if let problem = bullmq.scriptsProblem { context["scriptsProblem"] = problem }
        if offset > 0 { context["prev"] = "\(base)?offset=\(max(0, offset - size))" }
        if offset + failed.jobs.count < failed.total { context["next"] = "\(base)?offset=\(offset + size)" }
        return page("BullMQ \(name)", "bullmqQueue", context, v, refresh: true, current: "/bullmq", counts: try await navCounts())
    }

    /// `POST /bullmq/<queue>/retry`: one failed job (`id`) or, confirmed first with the count, every one (`all=1`),
    /// through BullMQ's `reprocessJob` as `conveyor bullmq retry` does.
    func bullmqAction(_ name: String, _ verb: String, _ request: WebRequest, _ v: Visitor) async throws -> WebResponse {
        guard let bullmq, bullmq.queues.contains(name), verb == "retry" else { throw WebFailure.notFound }
        guard let scripts = bullmq.scripts else {
            throw WebFailure(status: 409, heading: "Cannot retry", message: bullmq.scriptsProblem ?? "BullMQ's scripts are not available.")
        }
        let inspection = BullMQInspection(prefix: bullmq.prefix, queue: name)
        let base = "/bullmq/" + FormCoding.encode(name)
        if request.field("all") == "1" {
            if request.field("confirm") != "1" {
                let count = try await redis { try $0.command("ZCARD", inspection.keys.failed).check().int ?? 0 }
                return page(
                    "Confirm", "confirm",
                    ["question": "Retry all \(count) failed jobs of BullMQ queue \(name)? Each goes back to wait with the attempts it made.",
                     "action": base + "/retry", "hidden": [["name": "all", "value": "1"]], "replay": false, "verb": "Retry", "count": count, "back": base],
                    v, current: "/bullmq", counts: try await navCounts())
            }
            let retried = try await redis { try inspection.retryAll(resetAttempts: false, scripts: scripts, on: $0) }
            await bulk.record(who: v.who, "retry all failed jobs of BullMQ queue \(name) (\(retried))", metadata: ["bullmq_queue": "\(name)"])
            return redirect(base, flash: "Retried \(retried) failed job\(retried == 1 ? "" : "s") of \(name).", v)
        }
        guard let id = request.field("id"), BullMQInspection.isValidID(id) else {
            throw WebFailure(status: 400, heading: "Bad request", message: "no BullMQ job id given")
        }
        let result = try await redis { try inspection.retry([id], resetAttempts: false, scripts: scripts, on: $0) }.first?.result
        await bulk.record(who: v.who, "retry BullMQ job \(id) of \(name)", metadata: ["bullmq_queue": "\(name)", "bullmq_id": "\(id)"])
        let message: String
        switch result {
        case .retried?: message = "Retried job \(id) of \(name): it is waiting."
        case .missing?: message = "No job \(id) in \(name) (removed)."
        case .notFailed?: message = "Job \(id) is no longer failed (already retried?)."
        case .refused(let code)?: message = "BullMQ refused to retry job \(id) (code \(code))."
        case nil: message = "Nothing retried."
        }
        let back = request.field("offset").map { "\(base)?offset=\(Format.offset($0))" } ?? base
        return redirect(back, flash: message, v)
    }
}
