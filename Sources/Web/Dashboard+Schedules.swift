import ConveyorCore
import Foundation
import Operations
import Redis
import Schedules
import SidekiqQueue

extension Dashboard {
    /// Most schedules one page shows (they come from a config file: a few dozen is usual).
    static let maximumSchedulesShown = 500
    /// Most last-run outcomes one page reads from PostgreSQL.
    static let maximumOutcomeLookups = 100

    // MARK: Schedules

    /// `/schedules`: every schedule workers wrote into Redis (sidekiq-cron's layout) with its cron line and zone, status,
    /// next and last run, last jid and that job's outcome, and the buttons Run now and Disable/Enable.
    func schedules(_ v: Visitor) async throws -> WebResponse {
        let keys = keys
        let store = ScheduleStore(prefix: keys.prefix)
        let hashes = try await redis { connection -> [(String, [String: String])] in
            try store.names(on: connection).prefix(Self.maximumSchedulesShown).map { ($0, try store.info($0, on: connection)) }
        }
        let now = Date().timeIntervalSince1970
        var outcomes: [String: String] = [:]
        var notes: [String] = []
        let lastJIDs = hashes.compactMap { $0.1["conveyor_last_jid"].flatMap { $0.isEmpty ? nil : $0 } }.prefix(Self.maximumOutcomeLookups)
        if database != nil, !lastJIDs.isEmpty {
            do {
                for jid in lastJIDs {
                    if let row = try await postgres({ try JobResultQueries.byJID(jid, on: $0) }), let row { outcomes[jid] = row.status }
                }
            } catch {
                logger.warning("schedules page: outcomes unavailable", metadata: ["error": "\(error)"])
                notes.append("Outcomes are unavailable: PostgreSQL did not answer (the dashboard's log has the details).")
            }
        }
        let rows = hashes.map { name, h -> [String: Any] in
            let cron = try? CronExpression(h["cron"] ?? "")
            let enabled = h["status"] == "enabled"
            let message = (try? JSONValue(parsing: h["message"] ?? "{}")) ?? .null
            var row: [String: Any] = [
                "name": Format.cut(name), "path": "/schedules/" + FormCoding.encode(name), "cron": Format.cut(h["cron"] ?? "-"),
                "zone": cron.map { $0.timeZone.identifier } ?? "-", "jobClass": Format.cut(h["klass"] ?? "-"),
                "queue": Format.cut(message["queue"]?.stringValue ?? "default"), "enabled": enabled,
                "catchUp": Format.cut(h["catch_up"] ?? "-"), "file": Format.cut(h["conveyor_file"] ?? ""),
                "args": Format.cut(h["args"] ?? "[]", 160),
            ]
            if cron == nil { row["unreadable"] = true }
            if enabled, let next = cron?.next(after: Int64(now.rounded(.down))) {
                row["next"] = Format.time(Double(next))
                row["nextIn"] = Format.ago(Double(next), now: now)
            }
            if let tick = h["conveyor_last_tick"].flatMap({ Int64($0) }) {
                row["last"] = Format.time(Double(tick))
                row["lastAgo"] = Format.ago(Double(tick), now: now)
            } else if let text = h["last_enqueue_time"], !text.isEmpty {
                row["last"] = Format.cut(text, 40)
            }
            if let jid = h["conveyor_last_jid"], !jid.isEmpty {
                row["lastJID"] = Format.cut(jid)
                row["lastJIDQuery"] = FormCoding.encode(Format.cut(jid, 200))
                row["outcome"] = outcomes[jid] ?? (database == nil ? "-" : "not finished")
                row["outcomeBad"] = outcomes[jid] == "dead" || outcomes[jid] == "failed"
            }
            return row
        }
        var context: [String: Any] = ["schedules": rows, "count": hashes.count, "notes": notes]
        if keys.cluster { context["cluster"] = true }
        if hashes.count >= Self.maximumSchedulesShown { context["more"] = true }
        return page("Schedules", "schedules", context, v, current: "/schedules", counts: try await navCounts())
    }

    /// `POST /schedules/<name>/run|enable|disable`: run now pushes the schedule's job at once (also when disabled, as
    /// `conveyor schedules run` does); enable and disable set sidekiq-cron's `status`, which every worker reads before
    /// claiming a tick.
    func scheduleAction(_ name: String, _ verb: String, _ v: Visitor) async throws -> WebResponse {
        guard Schedule.isValidName(name) else { throw WebFailure.notFound }
        let keys = keys
        guard !keys.cluster else {
            throw WebFailure(status: 409, heading: "Not on a cluster", message: "Schedules are not supported on a Redis Cluster.")
        }
        let store = ScheduleStore(prefix: keys.prefix)
        switch verb {
        case "enable", "disable":
            let enabled = verb == "enable"
            let found = try await redis { try store.setEnabled(name, enabled, on: $0) }
            guard found else { return redirect("/schedules", flash: "No schedule \(name) in Redis.", v) }
            await bulk.record(who: v.who, "\(verb) schedule \(name)", metadata: ["schedule": "\(name)"])
            return redirect(
                "/schedules", flash: enabled ? "Enabled \(name): its next tick runs." : "Disabled \(name): no tick runs until it is enabled.", v)
        case "run":
            let outcome = try await redis { connection -> ScheduleStore.Claim? in
                guard let schedule = try store.schedule(name, on: connection) else { return nil }
                let now = Date().timeIntervalSince1970
                return try store.claim(
                    schedule, tick: Int64(now.rounded(.down)), now: now, queueKey: keys.queue(schedule.queue), queuesKey: keys.queues,
                    on: connection, force: true)
            }
            switch outcome {
            case .pushed(let jid)?:
                await bulk.record(who: v.who, "run schedule \(name) now (\(jid))", metadata: ["schedule": "\(name)", "jid": "\(jid)"])
                return redirect("/schedules", flash: "Queued \(name) as \(jid).", v)
            case .alreadyClaimed?:
                return redirect("/schedules", flash: "\(name) already ran this second.", v)
            case .disabled?, nil:
                return redirect("/schedules", flash: "No schedule \(name) in Redis.", v)
            }
        default:
            throw WebFailure.notFound
        }
    }
}
