import ConveyorCore
import Foundation
import Operations
import Redis
import SidekiqQueue

extension Dashboard {
    // MARK: Queues

    func queueAction(_ name: String, _ verb: String, _ request: WebRequest, _ v: Visitor) async throws -> WebResponse {
        let keys = keys
        let back = "/queues/" + FormCoding.encode(name)
        switch verb {
        case "pause", "resume":
            let changed = try await redis { connection in
                let pauses = QueuePauses(keys: keys, connection: connection)
                return verb == "pause" ? try pauses.pause(name) : try pauses.resume(name)
            }
            await bulk.record(who: v.who, "\(verb) queue \(name)", metadata: ["queue": "\(name)"])
            let message = verb == "pause"
                ? (changed ? "Paused \(name): workers fetch nothing more from it." : "\(name) was already paused.")
                : (changed ? "Resumed \(name)." : "\(name) was not paused.")
            let target = request.headers["referer"].flatMap { $0.hasSuffix("/queues") ? "/queues" : nil } ?? back
            return redirect(target, flash: message, v)
        case "delete":
            let deleted: Bool
            let job: QueuedJob
            if let text = request.field("member"), let data = Data(base64Encoded: text) {
                let member = [UInt8](data)
                deleted = try await redis { try QueueContents(name, keys: keys, connection: $0).delete(member) }
                job = QueuedJob(member: member)
            } else if let jid = request.field("jid"), let bytes = request.field("bytes").flatMap({ Int($0) }) {
                // A large job, named by jid and size: the member is read back from the queue and removed exactly.
                let found = try await redis { connection -> (Bool, QueuedJob?) in
                    let contents = QueueContents(name, keys: keys, connection: connection)
                    guard let hit = try contents.find(jid: jid), hit.member.count == bytes else { return (false, nil) }
                    return (try contents.delete(hit.member), hit)
                }
                deleted = found.0
                job = found.1 ?? QueuedJob(member: Array("{\"jid\":\(JSONValue.string(jid).text)}".utf8))
            } else {
                throw WebFailure(status: 400, heading: "Bad request", message: "no job given")
            }
            await bulk.record(who: v.who, "delete job \(job.jid ?? "?") (\(job.jobClass ?? "?")) from queue \(name)", metadata: ["queue": "\(name)"])
            let page = request.field("page").map { "?page=\(Format.pageNumber($0))" } ?? ""
            return redirect(back + page, flash: deleted ? "Deleted \(job.jid ?? "the job") from \(name)." : "That job was already gone (a worker took it).", v)
        case "clear":
            // Every ready job of the queue, as `conveyor queue clear`: confirmed first with the count.
            if request.field("confirm") != "1" {
                let depth = try await redis { try $0.command("LLEN", keys.queue(name)).check().int ?? 0 }
                return page(
                    "Confirm", "confirm",
                    ["question": "Delete all \(depth) ready jobs of queue \(name)? They will not run and cannot be brought back.",
                     "action": back + "/clear", "hidden": [[String: String]](), "replay": false, "verb": "Delete", "count": depth, "back": back],
                    v, current: "/queues", counts: try await navCounts())
            }
            let deleted = try await redis { try QueueContents(name, keys: keys, connection: $0).clear() }
            await bulk.record(who: v.who, "clear queue \(name) (\(deleted) jobs)", metadata: ["queue": "\(name)"])
            return redirect(back, flash: "Deleted \(deleted) job\(deleted == 1 ? "" : "s") from \(name).", v)
        default:
            throw WebFailure.notFound
        }
    }

    // MARK: Processes

    func processAction(_ verb: String, _ request: WebRequest, _ v: Visitor) async throws -> WebResponse {
        let signal: ProcessSignals.Signal
        switch verb {
        case "quiet": signal = .quiet
        case "stop": signal = .stop
        default: throw WebFailure.notFound
        }
        guard let identity = request.field("identity") else { throw WebFailure(status: 400, heading: "Bad request", message: "no process given") }
        let keys = keys
        let sent = try await redis { try ProcessSignals(keys: keys, connection: $0).send(signal, to: identity) }
        await bulk.record(who: v.who, "\(verb) process \(identity)", metadata: ["process": "\(identity)"])
        return redirect("/busy", flash: sent ? "Sent \(verb) to \(identity); it acts on its next heartbeat." : "\(identity) is not a live process.", v)
    }

    // MARK: Cancel

    /// `POST /jobs/cancel` (`jid`, `back`): cancels a job wherever it is (`JobCancellation`, as `conveyor cancel`),
    /// then returns to the page the button was on.
    func cancelAction(_ request: WebRequest, _ v: Visitor) async throws -> WebResponse {
        guard let jid = request.field("jid"), JobCancellation.isPlausibleJID(jid) else {
            throw WebFailure(status: 400, heading: "Bad request", message: "no jid given, or not a jid")
        }
        // Back to one of the pages with a Cancel button, never to an address from the form.
        let back: String
        switch request.field("back") {
        case "lookup": back = "/lookup?" + FormCoding.query([("q", jid)])
        case "scheduled": back = "/scheduled"
        case "retry": back = "/retry"
        default: back = "/busy"
        }
        let keys = keys
        let who = v.who
        let place = try await redis { try JobCancellation(keys: keys, connection: $0).cancel(jid, by: "\(who) via the dashboard") }
        await bulk.record(who: v.who, "cancel job \(jid) (\(place))", metadata: ["jid": "\(jid)"])
        let message: String
        switch place {
        case .taken(let identity): message = "Cancelling \(jid) on \(Format.cut(identity, 80)): it stops within a second."
        case .dead: message = "\(jid) is dead already; nothing to cancel."
        case .unknown: message = "\(jid) was not found (finished?); it is flagged and will not start if it shows up."
        default: message = "Cancelled \(jid) (was \(place))."
        }
        return redirect(back, flash: message, v)
    }

    // MARK: Sets

    func setAction(_ set: JobSetName, _ verb: String, _ request: WebRequest, _ v: Visitor) async throws -> WebResponse {
        let action: JobSet.MoveAction
        switch verb {
        case "retry": action = .replay(resetAttempts: request.field("reset") == "1")
        case "delete": action = .delete
        default: throw WebFailure.notFound
        }
        let keys = keys
        let base = "/" + (set == .scheduled ? "scheduled" : set.rawValue)
        let filterQuery = FormCoding.query(Self.filterNames.map { ($0, request.field($0)) })
        let back = base + (filterQuery.isEmpty ? "" : "?" + filterQuery)
        let done = action == .delete ? "Deleted" : (set == .dead ? "Retried" : "Queued")

        // One job: the row's button or the detail page.
        if let one = request.field("one") {
            let parts = one.split(separator: " ", maxSplits: 1).map(String.init)
            let jid = parts[0]
            let score = parts.count > 1 ? Double(parts[1]) : nil
            let moved = try await redis { connection -> Bool? in
                let jobSet = JobSet(set, keys: keys, connection: connection)
                guard let entry = try jobSet.find(jid: jid, score: score) else { return nil }
                switch action {
                case .replay(let reset): return try jobSet.replay(entry, resetAttempts: reset)
                case .delete: return try jobSet.delete(entry)
                }
            }
            await bulk.record(who: v.who, "\(action.verb) \(jid) from \(set.rawValue)", metadata: ["set": "\(set.rawValue)", "jid": "\(jid)"])
            guard let moved, moved else { return redirect(back, flash: "\(jid) is no longer in \(set.rawValue).", v) }
            return redirect(back, flash: "\(done) \(jid).", v)
        }

        var filter: JobFilter
        let scope = request.field("scope") ?? "selected"
        switch scope {
        case "selected":
            let jids = (request.form["jid"] ?? []).filter { !$0.isEmpty }
            guard !jids.isEmpty else { return redirect(back, flash: "Nothing selected.", v) }
            filter = JobFilter()
            filter.jids = Array(Set(jids))
        case "all":
            filter = try Self.filter(request.field)
        default:
            throw WebFailure(status: 400, heading: "Bad request", message: "scope must be one, selected or all")
        }
        var perSecond: Double?
        if let rate = request.field("rate") {
            guard let r = OperatorInput.rate(rate) else {
                throw WebFailure(status: 400, heading: "Bad rate", message: "rate \(rate): expected N/s, N/m or N/h")
            }
            perSecond = r
        }
        let criteria = describe(filter, scope: scope)
        let f = filter
        if request.field("confirm") != "1" {
            // Bulk actions are confirmed first, with the count they would touch.
            let count = try await redis { connection in
                let jobSet = JobSet(set, keys: keys, connection: connection)
                return f.isEmpty ? try jobSet.count() : try jobSet.list(f).count
            }
            var hidden: [[String: String]] = [["name": "scope", "value": scope]]
            for name in Self.filterNames { if let value = request.field(name) { hidden.append(["name": name, "value": value]) } }
            for jid in filter.jids { hidden.append(["name": "jid", "value": jid]) }
            let verbText = action == .delete ? "Delete" : set.retryLabel
            let question = "\(verbText) \(count) jobs in \(set.rawValue) (\(criteria))?"
                + (action == .delete ? " Deleted jobs cannot be brought back." : "")
            return page(
                "Confirm", "confirm",
                ["question": question, "action": base + "/" + verb, "hidden": hidden, "replay": action != .delete, "verb": verbText, "count": count,
                 "back": back, "rate": count > 1000 ? "100/s" : ""], v, current: base, counts: try await navCounts())
        }
        let description = "\(action.verb) \(set.rawValue) jobs (\(criteria))" + (perSecond.map { String(format: " at %.4g/s", $0) } ?? "")
        let id = await bulk.start(
            who: v.who, set: set, filter: filter, action: action, perSecond: perSecond, endpoint: endpoint, keys: keys, description: description)
        return redirect("/actions", flash: "Started #\(id): \(description).", v)
    }

    private func describe(_ filter: JobFilter, scope: String) -> String {
        if scope == "selected" { return "\(filter.jids.count) selected" }
        var parts: [String] = []
        if !filter.classes.isEmpty { parts.append("class \(filter.classes.joined(separator: ","))") }
        if !filter.queues.isEmpty { parts.append("queue \(filter.queues.joined(separator: ","))") }
        if let e = filter.errorPattern { parts.append("error ~ \(e)") }
        if let s = filter.since { parts.append("since \(Format.time(s))") }
        if let u = filter.until { parts.append("until \(Format.time(u))") }
        return parts.isEmpty ? "all" : "matching " + parts.joined(separator: ", ")
    }
}
