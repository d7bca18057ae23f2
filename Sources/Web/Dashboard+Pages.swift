import ConveyorCore
import Foundation
import Operations
import Postgres
import Redis
import SidekiqQueue
import Storage
import Summaries
import Media

extension Dashboard {
    // MARK: Overview

    func overview(_ v: Visitor) async throws -> WebResponse {
        let keys = keys
        let (snapshot, history, journal) = try await redis { connection in
            let s = try QueueSnapshot.read(connection, keys: keys)
            let h = try StatHistory.read(connection, keys: keys, days: 30)
            return (s, h, try Self.journalBacklog(connection, keys: keys))
        }
        let now = snapshot.readAt
        let rate = sampler.currentRate
        let enqueued = snapshot.queues.reduce(0) { $0 + $1.depth }
        let cards: [[String: Any]] = [
            ["label": "processed", "value": Format.count(snapshot.processed), "href": "/"],
            ["label": "failed", "value": Format.count(snapshot.failed), "href": "/dead"],
            ["label": "busy / concurrency", "value": "\(snapshot.busy)/\(snapshot.concurrency)", "href": "/busy"],
            ["label": "enqueued", "value": Format.count(enqueued), "href": "/queues"],
            ["label": "scheduled", "value": Format.count(snapshot.scheduled), "href": "/scheduled"],
            ["label": "retries", "value": Format.count(snapshot.retries), "href": "/retry", "alert": snapshot.retries > 0],
            ["label": "dead", "value": Format.count(snapshot.dead), "href": "/dead", "alert": snapshot.dead > 0],
            ["label": "processes", "value": String(snapshot.processes.count), "href": "/busy", "alert": snapshot.processes.isEmpty],
        ]
        let minutes = sampler.perMinute(minutes: 60, now: now).map { m in
            Charts.Bucket(label: String(Format.time(m.minute).dropFirst(11).prefix(5)), processed: m.processed, failed: m.failed)
        }
        let days = history.days.map { Charts.Bucket(label: String($0.day.dropFirst(5)), processed: $0.processed, failed: $0.failed) }
        var rateLine = "Sampled by this dashboard every 5 s since it started; grey: before that."
        if let rate { rateLine = String(format: "Now %.1f processed/s, %.1f failed/s. ", rate.processed, rate.failed) + rateLine }
        var context: [String: Any] = [
            "cards": cards,
            "minuteChart": Charts.bars(minutes, title: "Processed (green) and failed (red) per minute, last hour", unit: "jobs/min"),
            "dayChart": Charts.bars(days, title: "Processed (green) and failed (red) per day, last 30 days", unit: "jobs/day", labelEvery: 5),
            "rateLine": rateLine,
            "queues": snapshot.queues.prefix(1000).map(queueRow),
        ]
        var backlog = "\(journal) job outcomes acknowledged in Redis and not yet written to PostgreSQL (outcome journals)."
        if let metrics = await workerMetrics.read() {
            context["breakers"] = metrics.breakers.map { b -> [String: Any] in
                ["provider": b.provider, "state": b.state, "bad": b.state != "closed", "open": b.openSeconds > 0 ? Format.duration(b.openSeconds) : "-",
                 "source": b.source]
            }
            context["hasBreakers"] = !metrics.breakers.isEmpty
            if metrics.breakers.isEmpty { context["breakerNote"] = "No breaker series in the workers' metrics (summaries not configured?)." }
            backlog += " Buffered in worker memory: \(metrics.backlog)" + (metrics.failing > 0 ? "; \(metrics.failing) writers failing." : ".")
            if !metrics.unreachable.isEmpty { backlog += " Unreachable: " + metrics.unreachable.joined(separator: "; ") }
        } else {
            context["breakerNote"] = "Breakers live in each worker: set CONVEYOR_WEB_METRICS_URLS to the workers' /metrics URLs to see them here."
        }
        context["backlogLine"] = backlog
        var counts = NavCounts(scheduled: snapshot.scheduled, retry: snapshot.retries, dead: snapshot.dead, busy: snapshot.busy)
        counts.busy = snapshot.busy
        _ = now
        return page("Overview", "overview", context, v, refresh: true, current: "/", counts: counts)
    }

    /// Outcomes every process's journal (and the orphaned ones) still holds: acknowledged, not yet in PostgreSQL.
    static func journalBacklog(_ connection: RedisConnection, keys: QueueKeys) throws -> Int {
        let first = try connection.pipeline([RedisCommand("SMEMBERS", keys.conveyorProcesses), RedisCommand("SMEMBERS", keys.orphanedOutcomes)])
        var journals = (first[0].array ?? []).compactMap(\.text).map(keys.outcomes)
        journals += (first[1].array ?? []).compactMap(\.text)
        guard !journals.isEmpty else { return 0 }
        return try connection.pipeline(journals.prefix(500).map { RedisCommand("HLEN", $0) }).reduce(0) { $0 + ($1.int ?? 0) }
    }

    func queueRow(_ q: QueueSnapshot.Queue) -> [String: Any] {
        // A queue name is whatever a producer wrote: shown cut; one over 1,000 bytes gets a link that cannot open it.
        ["name": Format.cut(q.name), "href": "/queues/" + FormCoding.encode(Format.cut(q.name, 1000)), "depth": Format.count(q.depth),
         "latency": q.depth == 0 ? "-" : Format.duration(q.latency), "paused": q.paused]
    }

    // MARK: Queues

    func queues(_ v: Visitor) async throws -> WebResponse {
        let keys = keys
        let snapshot = try await redis { try QueueSnapshot.read($0, keys: keys) }
        var rates: [String: QueueRate] = [:]
        var note = "Finished/min: jobs per minute over the last 5 minutes, from conveyor.job_results."
        let now = Date().timeIntervalSince1970
        if let cached = queueRates.withLock({ $0 }), now - cached.at < 5 {
            rates = cached.rates
        } else {
            do {
                let read = try await postgres { try JobResultQueries.finishedByQueue(lastSeconds: 300, on: $0) } ?? [:]
                rates = read.mapValues { QueueRate(succeeded: $0.succeeded, dead: $0.dead) }
                if database != nil { queueRates.withLock { [rates] in $0 = (now, rates) } }
            } catch {
                note = "PostgreSQL unreachable: no rates (\(error))."
            }
        }
        if database == nil { note = "Set DATABASE_URL to see each queue's rate (from conveyor.job_results)." }
        // The queues some live process fetches from: the others' jobs wait for nobody.
        let served = Set(snapshot.processes.flatMap(\.queues))
        let rows = snapshot.queues.prefix(1000).map { q -> [String: Any] in
            var row = queueRow(q)
            row["unserved"] = !served.contains(q.name)
            if let r = rates[q.name] { row["rate"] = String(format: "%.1f", Double(r.succeeded + r.dead) / 5) } else { row["rate"] = database == nil ? "-" : "0" }
            return row
        }
        let counts = NavCounts(scheduled: snapshot.scheduled, retry: snapshot.retries, dead: snapshot.dead, busy: snapshot.busy)
        return page("Queues", "queues", ["queues": rows, "rateNote": note], v, refresh: true, current: "/queues", counts: counts)
    }

    func queue(_ name: String, _ request: WebRequest, _ v: Visitor) async throws -> WebResponse {
        let keys = keys
        let size = configuration.pageSize
        let pageNumber = Format.pageNumber(request.parameter("page"))
        let offset = (pageNumber - 1) * size
        let (contents, paused, oldest) = try await redis { connection in
            let q = QueueContents(name, keys: keys, connection: connection)
            let page = try q.page(offset: offset, count: size)
            let paused = try QueuePauses(keys: keys, connection: connection).paused().contains(name)
            let oldest = try connection.command("LINDEX", keys.queue(name), "-1").check().bytes.map { QueuedJob(member: $0) }
            return (page, paused, oldest)
        }
        let base = "/queues/" + FormCoding.encode(name)
        let jobs = contents.jobs.map { job -> [String: Any] in
            // A small job's delete form carries the job itself; a large one's its jid and size (found again on delete).
            let small = job.member.count <= Self.inlineMemberLimit
            var row: [String: Any] = [
                "jid": Format.cut(job.jid ?? "(not a job)"), "jobClass": Format.cut(job.jobClass ?? "-"), "args": Format.args(job.job),
                "enqueued": Format.ago(job.enqueuedAt), "bytes": String(job.member.count), "base": base, "page": String(pageNumber),
            ]
            if small { row["member"] = Data(job.member).base64EncodedString() }
            if let jid = job.jid, !small || (job.job?["args"]?.text.utf8.count ?? 0) > 160 {
                row["json"] = base + "/job.json?" + FormCoding.query([("jid", jid)])
            }
            return row
        }
        var context: [String: Any] = [
            "name": name, "base": base, "depth": contents.depth, "empty": contents.depth == 0, "paused": paused, "jobs": jobs,
            "latency": oldest?.enqueuedAt.map { Format.duration(max(0, Date().timeIntervalSince1970 - $0)) } ?? "-",
            "range": contents.jobs.isEmpty ? "" : "\(offset + 1)–\(offset + contents.jobs.count) of \(contents.depth)",
        ]
        if pageNumber > 1 { context["prev"] = base + "?page=\(pageNumber - 1)" }
        if contents.more { context["next"] = base + "?page=\(pageNumber + 1)" }
        return page("Queue \(name)", "queue", context, v, current: "/queues", counts: try await navCounts())
    }

    // MARK: Busy

    func busy(_ v: Visitor) async throws -> WebResponse {
        let keys = keys
        let (snapshot, running, progress) = try await redis { connection in
            let s = try QueueSnapshot.read(connection, keys: keys)
            var running: [(String, RunningJob)] = []
            for p in s.processes.prefix(200) {
                running += try QueueSnapshot.running(connection, keys: keys, identity: p.identity).map { (p.identity, $0) }
            }
            running = Array(running.prefix(500))
            // Each running job's progress hash, in one round trip.
            let jids = running.map { JobCancellation.isPlausibleJID($0.1.jid ?? "") ? $0.1.jid! : "-" }
            return (s, running, try JobLocator.progress(jids, keys: keys, connection: connection))
        }
        let now = snapshot.readAt
        // Heartbeat fields are whatever was written to Redis: cut for display (the form keeps an identity up to 4 KB).
        let processes = snapshot.processes.prefix(500).map { p -> [String: Any] in
            ["identity": Format.cut(p.identity, 4096), "shown": Format.cut(p.identity), "host": Format.cut(p.hostname ?? "-"),
             "pid": p.pid.map(String.init) ?? "-", "tag": Format.cut(p.tag ?? "-"), "busy": p.busy,
             "concurrency": p.concurrency.map(String.init) ?? "?", "rss": p.rss.map { String(format: "%.0f MB", Double($0) / 1024) } ?? "-",
             "started": Format.ago(p.startedAt, now: now), "beat": Format.ago(p.beat, now: now), "quiet": p.quiet,
             "queues": Format.cut(p.queues.joined(separator: ", "), 1000)]
        }
        let jobs = zip(running, progress).map { entry, progress -> [String: Any] in
            let (identity, job) = entry
            var row: [String: Any] = [
                "process": Format.cut(identity), "jid": Format.cut(job.jid ?? "-"), "jidQuery": FormCoding.encode(Format.cut(job.jid ?? "", 200)),
                "jobClass": Format.cut(job.jobClass ?? "-"), "queue": Format.cut(job.queue),
                "started": Format.ago(job.runAt, now: now), "args": Format.args(job.payload),
            ]
            if let jid = job.jid, JobCancellation.isPlausibleJID(jid) { row["cancelJID"] = jid }
            if let p = Self.progressView(progress) { row["progress"] = p }
            return row
        }
        let counts = NavCounts(scheduled: snapshot.scheduled, retry: snapshot.retries, dead: snapshot.dead, busy: snapshot.busy)
        return page(
            "Busy", "busy",
            ["processes": processes, "running": Array(jobs), "processCount": snapshot.processes.count, "busy": snapshot.busy,
             "concurrency": snapshot.concurrency], v, refresh: true, current: "/busy", counts: counts)
    }

    /// A progress hash as the pages show it: the percent (0-100, one decimal) for the bar, and the detail cut to a line.
    static func progressView(_ fields: [String: String]) -> [String: Any]? {
        guard let text = fields["progress"], let value = Double(text), value.isFinite else { return nil }
        let percent = min(100, max(0, value))
        var view: [String: Any] = ["percent": String(format: "%.1f", percent)]
        if let detail = fields["detail"], detail != "{}" { view["detail"] = Format.cut(detail, 120) }
        if let at = fields["updated_at"].flatMap(Double.init) { view["updated"] = Format.ago(at) }
        return view
    }

    // MARK: Scheduled, retry, dead

    /// The CLI's filters from the URL (`?class=&queue=&error=&since=&until=`): links with filters can be shared.
    static func filter(_ values: (String) -> String?) throws -> JobFilter {
        var f = JobFilter()
        if let c = values("class") { f.classes = [c] }
        if let q = values("queue") { f.queues = [q] }
        f.errorPattern = values("error")
        if let since = values("since") {
            guard let t = OperatorInput.time(since) else { throw WebFailure(status: 400, heading: "Bad filter", message: "since \(since): not a time") }
            f.since = t
        }
        if let until = values("until") {
            guard let t = OperatorInput.time(until) else { throw WebFailure(status: 400, heading: "Bad filter", message: "until \(until): not a time") }
            f.until = t
        }
        return f
    }

    static let filterNames = ["class", "queue", "error", "since", "until"]

    func setPage(_ set: JobSetName, _ request: WebRequest, _ v: Visitor) async throws -> WebResponse {
        let keys = keys
        let size = configuration.pageSize
        let base = "/" + (set == .scheduled ? "scheduled" : set.rawValue)
        var problem: String?
        var filter = JobFilter()
        do { filter = try Self.filter(request.parameter) } catch let failure as WebFailure { problem = failure.message }
        // Unfiltered pages are numbered; filtered ones continue from where the last one stopped looking (`from`).
        let pageNumber = Format.pageNumber(request.parameter("page"))
        let offset = filter.isEmpty ? (pageNumber - 1) * size : Format.offset(request.parameter("from"))
        let f = filter
        let result: JobSetPage
        do {
            result = try await redis { try JobSet(set, keys: keys, connection: $0).page(f, offset: offset, count: size) }
        } catch let error as JobSetError {
            problem = "\(error)"
            filter = JobFilter()
            result = try await redis { try JobSet(set, keys: keys, connection: $0).page(JobFilter(), offset: offset, count: size) }
        }
        let now = Date().timeIntervalSince1970
        let entries = result.entries.map { e -> [String: Any] in
            let when = set == .dead ? (e.failedAt ?? e.score) : e.score
            let error = e.errorClass.map { "\($0): \(e.errorMessage ?? "")" } ?? ""
            return [
                "jid": Format.cut(e.jid ?? "(not a job)"), "jobClass": Format.cut(e.jobClass ?? "-"), "queue": Format.cut(e.queue ?? "-"),
                "when": Format.ago(when, now: now), "at": Format.time(when), "attempts": Format.attempts(e.retryCount) ?? "1",
                "error": Format.line(error, 140), "args": Format.line(Format.args(e.job, limit: 120), 120),
                "href": base + "/job?" + FormCoding.query([("jid", e.jid), ("score", String(e.score))]),
                "one": "\(e.jid ?? "") \(String(e.score))",
            ]
        }
        let filterValues = Dictionary(uniqueKeysWithValues: Self.filterNames.map { ($0, request.parameter($0) ?? "") })
        let filtered = !filter.isEmpty
        let query = Self.filterNames.map { ($0, request.parameter($0)) }
        var range = ""
        if filtered, let scanned = result.scanned {
            range = "\(result.entries.count) matching among entries \(offset + 1)–\(offset + scanned) of \(result.total)"
        } else if !result.entries.isEmpty {
            range = "\(offset + 1)–\(offset + result.entries.count) of \(result.total)"
        }
        var context: [String: Any] = [
            "title": set.title, "base": base, "total": Format.count(result.total), "empty": result.total == 0, "entries": entries, "filter": filterValues,
            "filtered": filtered, "retryLabel": set.retryLabel, "whenLabel": set == .dead ? "Died" : "Runs", "failures": set != .scheduled,
            "matching": filtered ? "matching" : "",
            "hidden": query.compactMap { name, value in value.map { ["name": name, "value": $0] } },
            "range": range,
        ]
        if let problem { context["problem"] = problem }
        if filtered {
            if offset > 0 { context["prev"] = base + "?" + FormCoding.query(query) }
            if let next = result.next { context["next"] = base + "?" + FormCoding.query(query + [("from", String(next))]) }
        } else {
            if pageNumber > 1 { context["prev"] = base + "?" + FormCoding.query(query + [("page", String(pageNumber - 1))]) }
            if result.next != nil { context["next"] = base + "?" + FormCoding.query(query + [("page", String(pageNumber + 1))]) }
        }
        return page(set.title, "set", context, v, current: base, counts: try await navCounts())
    }

    func jobPage(_ set: JobSetName, _ request: WebRequest, _ v: Visitor) async throws -> WebResponse {
        guard let jid = request.parameter("jid") else { throw WebFailure.notFound }
        let score = request.parameter("score").flatMap { Double($0) }
        let keys = keys
        guard let entry = try await redis({ try JobSet(set, keys: keys, connection: $0).find(jid: jid, score: score) }) else {
            throw WebFailure(status: 404, heading: "Not found", message: "No job \(jid) in \(set.rawValue) (retried, deleted or run since?).")
        }
        let base = "/" + (set == .scheduled ? "scheduled" : set.rawValue)
        var context: [String: Any] = [
            "jid": Format.cut(jid), "back": base, "setTitle": set.title, "base": base, "retryLabel": set.retryLabel, "one": "\(jid) \(String(entry.score))",
            "facts": Self.jobFacts(entry.job, set: set, score: entry.score), "args": Format.pretty(entry.job?["args"]),
            "payload": entry.job.map { Format.pretty(.object($0)) } ?? Format.cut(String(decoding: entry.member.prefix(8192), as: UTF8.self), 4096),
            "json": base + "/job.json?" + FormCoding.query([("jid", jid), ("score", String(entry.score))]),
        ]
        if entry.member.count > 4096 { context["cut"] = "4 KB of \(entry.member.count) bytes" }
        if set != .dead, JobCancellation.isPlausibleJID(jid) {
            context["cancel"] = ["jid": jid, "back": set == .scheduled ? "scheduled" : "retry"]
        }
        if let ec = entry.errorClass {
            context["error"] = Format.cut("\(ec): \(entry.errorMessage ?? "")", 70_000)
            if set == .dead {
                let runs = Format.attempts(entry.retryCount) ?? "1"
                context["errorNote"] = entry.job?["error_permanent"]?.boolValue == true
                    ? "A permanent error: the job was not retried (it failed the same way whatever the attempt)."
                    : "Its retries were used up after \(runs) run\(runs == "1" ? "" : "s")."
            } else if set == .retry {
                context["errorNote"] = "A transient error: it runs again at its retry time."
            }
        }
        if let bt = entry.job?["error_backtrace"], !bt.isNull { context["backtrace"] = Format.cut(bt.stringValue ?? bt.text, 8192) }
        if let row = try? await postgres({ try JobResultQueries.byJID(jid, on: $0) }), let row {
            context["result"] = Self.resultFacts(row)
        }
        return page("Job \(Format.cut(jid, 40))", "job", context, v, current: base, counts: try await navCounts())
    }

    /// Jobs bigger than this are not copied into their queue page's delete form.
    static let inlineMemberLimit = 4096

    /// One job's JSON exactly as stored (`/dead/job.json?jid=&score=`, `/queues/NAME/job.json?jid=`): what the pages
    /// cut, whole, as `application/json` (never rendered as a page).
    func jobJSON(set: JobSetName?, queue: String?, _ request: WebRequest) async throws -> WebResponse {
        guard let jid = request.parameter("jid") else { throw WebFailure.notFound }
        let score = request.parameter("score").flatMap { Double($0) }
        let keys = keys
        let member: [UInt8]? = try await redis { connection in
            if let set { return try JobSet(set, keys: keys, connection: connection).find(jid: jid, score: score)?.member }
            guard let queue else { return nil }
            return try QueueContents(queue, keys: keys, connection: connection).find(jid: jid)?.member
        }
        guard let member else { throw WebFailure(status: 404, heading: "Not found", message: "No job \(Format.cut(jid, 40)) there (run, retried or deleted since?).") }
        return WebResponse(
            headers: [("Content-Type", "application/json; charset=utf-8"), ("Content-Disposition", "inline; filename=\"job.json\"")], body: member)
    }

    static func jobFacts(_ job: JSONObject?, set: JobSetName?, score: Double?) -> [[String: String]] {
        var facts: [(String, String)] = []
        func add(_ name: String, _ value: String?) { if let value, !value.isEmpty { facts.append((name, value)) } }
        add("class", job?["class"]?.stringValue.map { Format.cut($0) })
        add("queue", job?["queue"]?.stringValue.map { Format.cut($0) })
        if let set, let score { add(set == .dead ? "died" : "runs at", Format.time(score)) }
        add("attempts", Format.attempts(job?["retry_count"]?.intValue))
        add("retry", job?["retry"].map { Format.cut($0.text) })
        for name in ["created_at", "enqueued_at", "failed_at", "retried_at", "replayed_at"] {
            add(name.replacingOccurrences(of: "_", with: " "), QueueSnapshot.timestamp(job?[name]).map(Format.time))
        }
        add("correlation key", job?["correlation_key"]?.stringValue.map { Format.cut($0) })
        return facts.map { ["name": $0.0, "value": $0.1] }
    }

    static func resultFacts(_ row: JobResultRecord) -> [[String: String]] {
        var facts: [(String, String)] = [("status", row.status), ("class", row.jobClass), ("queue", row.queue), ("attempts", String(row.attempts))]
        if let e = row.errorClass { facts.append(("error", "\(e): \(row.errorMessage ?? "")")) }
        facts.append(("started", Format.time(row.startedAt)))
        facts.append(("finished", Format.time(row.finishedAt)))
        if let r = row.result { facts.append(("result", r.count > 2000 ? String(r.prefix(2000)) + "…" : r)) }
        if let k = row.correlationKey { facts.append(("correlation key", k)) }
        return facts.map { ["name": $0.0, "value": $0.1] }
    }

    // MARK: Lookups

    func lookup(_ request: WebRequest, _ v: Visitor) async throws -> WebResponse {
        let q = (request.parameter("q") ?? request.parameter("jid") ?? request.parameter("upload") ?? request.parameter("post") ?? "")
            .trimmingCharacters(in: .whitespaces)
        var context: [String: Any] = ["q": q, "searched": !q.isEmpty]
        var notes: [String] = []
        var found = false
        if !q.isEmpty && q.count <= 200 {
            let keys = keys
            var jobs: [[String: Any]] = []
            let isJID = JobCancellation.isPlausibleJID(q)
            // Everywhere in Redis: taken by a process (running), queued, scheduled, retry, dead; and its progress.
            var sightings: [JobLocator.Sighting] = []
            var progress: [String: String] = [:]
            if isJID {
                (sightings, progress) = try await redis { connection -> ([JobLocator.Sighting], [String: String]) in
                    let locator = JobLocator(keys: keys, connection: connection)
                    return (try locator.locate(q), try locator.progress(q))
                }
            }
            for s in sightings {
                let set: JobSetName? = s.place == "scheduled" ? .scheduled : s.place == "retry" ? .retry : s.place == "dead" ? .dead : nil
                var facts = Self.jobFacts(s.job, set: set, score: s.score)
                if let process = s.process { facts.insert(["name": "process", "value": Format.cut(process)], at: 0) }
                if let ec = s.job?["error_class"]?.stringValue {
                    facts.append(["name": "error", "value": Format.cut("\(ec): \(s.job?["error_message"]?.stringValue ?? "")", 2000)])
                }
                facts.append(["name": "arguments", "value": Format.args(s.job, limit: 400)])
                var entry: [String: Any] = ["facts": facts]
                switch s.place {
                case "taken": entry["place"] = "a worker (running)"
                case "queued":
                    entry["place"] = "queue \(Format.cut(s.queue ?? ""))"
                    entry["href"] = "/queues/" + FormCoding.encode(s.queue ?? "") + "/job.json?" + FormCoding.query([("jid", q)])
                default:
                    let set = set ?? .dead
                    entry["place"] = set.title.lowercased()
                    entry["href"] = "/" + (set == .scheduled ? "scheduled" : set.rawValue) + "/job?" + FormCoding.query([("jid", q), ("score", String(s.score ?? 0))])
                }
                if s.place != "dead" { entry["cancel"] = ["jid": q] }
                jobs.append(entry)
            }
            if let p = Self.progressView(progress) {
                context["progress"] = p
                if let status = progress["status"] { context["progressStatus"] = Format.cut(status, 40) }
                found = true
            }
            if database != nil {
                do {
                    if let row = try await postgres({ try JobResultQueries.byJID(q, on: $0) }), let row {
                        jobs.append(["place": "conveyor.job_results", "facts": Self.resultFacts(row)])
                    }
                    if let upload = try await postgres({ try MediaUploadQueries.byID(q, on: $0) }), let upload {
                        context["upload"] = uploadContext(upload)
                        found = true
                    }
                    // Every job that carried this id as its correlation key (an upload's or a post's jobs).
                    let related = try await postgres({ try JobResultQueries.byCorrelationKey(q, limit: 10, on: $0) }) ?? []
                    for row in related where row.jid != q {
                        jobs.append(["place": "conveyor.job_results (correlation key \(q))", "facts": Self.resultFacts(row)])
                    }
                    if let summary = try await summary(q) {
                        // Whether the latest summary job was answered from the cache: its result says so.
                        let latest = related.first { $0.jobClass == "llm.summarize" && $0.status == "succeeded" }
                        let cached = latest?.result.flatMap { try? JSONValue(parsing: Array($0.utf8)) }?["cached"]?.boolValue
                        context["summary"] = [
                            "postID": summary.postID, "degraded": summary.degraded, "text": summary.summary,
                            "facts": [
                                ["name": "provider", "value": summary.provider], ["name": "model", "value": summary.model],
                                ["name": "degraded", "value": summary.degraded ? "yes (built-in extractive summariser)" : "no"],
                                ["name": "cached", "value": cached.map { $0 ? "yes (latest job answered from the cache)" : "no (latest job called the provider)" } ?? "-"],
                                ["name": "input cut", "value": summary.truncatedInput ? "yes" : "no"],
                                ["name": "tokens", "value": "\(summary.inputTokens.map(String.init) ?? "-") in, \(summary.outputTokens.map(String.init) ?? "-") out"],
                            ],
                        ] as [String: Any]
                        found = true
                    }
                } catch {
                    notes.append("PostgreSQL: \(error)")
                }
            } else {
                notes.append("DATABASE_URL is not set: results, uploads and summaries cannot be looked up.")
            }
            if !jobs.isEmpty {
                context["jobs"] = jobs
                found = true
            }
        }
        context["found"] = found
        context["notes"] = notes
        return page("Look up", "lookup", context, v, current: "/lookup", counts: try await navCounts())
    }

    func summary(_ postID: String) async throws -> SummaryResult? {
        guard let database else { return nil }
        do {
            return try await PostgresSummaryStore(database: database).summary(postID: postID)
        } catch let error as PostgresError where "\(error)".contains("does not exist") {
            return nil
        }
    }

    func uploadContext(_ u: MediaUploadRecord) -> [String: Any] {
        var facts: [[String: String]] = []
        func add(_ name: String, _ value: String?) { if let value, !value.isEmpty { facts.append(["name": name, "value": value]) } }
        add("kind", u.kind)
        add("detected type", u.detectedType)
        add("source", u.source)
        if let w = u.width, let h = u.height { add("size", "\(w)×\(h)") }
        add("duration", u.duration.map { String(format: "%.2f s", $0) })
        add("job", u.jid)
        add("created", Format.time(u.createdAt))
        add("updated", Format.time(u.updatedAt))
        // The media first, each as the browser shows it (picture, player), with its profile, size and bytes.
        var media: [[String: Any]] = []
        var others: [String] = []
        let posterKey = u.poster?.stringValue ?? u.poster?["key"]?.stringValue
        for key in u.mediaKeys {
            guard let type = Self.mediaType(key), mediaStore != nil else {
                others.append(key)
                continue
            }
            let variant = u.variants.first { $0["key"]?.stringValue == key }
            var detail: [String] = []
            if key == posterKey { detail.append(u.kind == "image" ? "clean copy" : "poster") }
            if let profile = variant?["profile"]?.stringValue { detail.append(profile) }
            if let w = variant?["width"]?.intValue, let h = variant?["height"]?.intValue { detail.append("\(w)×\(h)") }
            if let bytes = variant?["bytes"]?.intValue { detail.append(Format.bytes(bytes)) }
            var item: [String: Any] = [
                "src": "/media?" + FormCoding.query([("upload", u.uploadID), ("key", key)]), "caption": Format.cut(key),
                "detail": Format.cut(detail.joined(separator: " · ")),
            ]
            item[type.hasPrefix("image/") ? "image" : type.hasPrefix("video/") ? "video" : "audio"] = true
            media.append(item)
        }
        var context: [String: Any] = [
            "id": u.uploadID, "status": u.status, "failed": u.status != "ready", "facts": facts, "media": media, "others": others,
            "hasMedia": !media.isEmpty, "hasOthers": !others.isEmpty,
        ]
        if let e = u.errorClass { context["error"] = "\(e): \(u.errorMessage ?? "")" }
        if let p = u.probe, !p.isNull { context["probe"] = Format.pretty(p) }
        return context
    }

    /// The content type the media endpoint serves a key as: an image, or a video or audio rendition.
    static func mediaType(_ key: String) -> String? {
        if let image = imageType(key) { return image }
        switch (key as NSString).pathExtension.lowercased() {
        case "mp4", "m4v": return "video/mp4"
        case "webm": return "video/webm"
        case "m4a": return "audio/mp4"
        case "mp3": return "audio/mpeg"
        case "ogg", "opus": return "audio/ogg"
        default: return nil
        }
    }

    /// The largest file the media endpoint serves (it is read whole): pictures and web renditions, not originals.
    static let maximumMediaBytes = 64 << 20

    static func imageType(_ key: String) -> String? {
        switch (key as NSString).pathExtension.lowercased() {
        case "jpg", "jpeg": "image/jpeg"
        case "png": "image/png"
        case "webp": "image/webp"
        case "avif": "image/avif"
        case "gif": "image/gif"
        default: nil
        }
    }

    /// One variant or poster of an upload, only if the upload's row names that key (no other file can be read).
    func media(_ request: WebRequest) async throws -> WebResponse {
        guard let id = request.parameter("upload"), let key = request.parameter("key"), let type = Self.mediaType(key), let deployment = mediaStore else {
            throw WebFailure.notFound
        }
        guard let row = try await postgres({ try MediaUploadQueries.byID(id, on: $0) }), let row, row.mediaKeys.contains(key) else {
            throw WebFailure.notFound
        }
        // An upload in a bucket its job named: read from there, if this deployment still allows that bucket.
        var store = deployment
        if let location = row.store, location.hasPrefix("s3://"), location != deployment.location {
            guard let other = try? S3Location(parsing: location), other.prefix.isEmpty, let named = try? deployment.bucket(other.bucket) else {
                throw WebFailure.notFound
            }
            store = named
        }
        let bytes: [UInt8]
        do {
            bytes = try await store.staged([MediaInput(key, field: "variant", maxBytes: Self.maximumMediaBytes)], jid: "web-\(id)", deadline: .now + .seconds(30)) { root in
                let path = try root.source(key, field: "variant")
                guard let data = FileManager.default.contents(atPath: path) else { throw WebFailure.notFound }
                return [UInt8](data)
            }
        } catch let failure as JobFailure {
            // A key through a symlink out of the root, a missing or oversized file: the reason (with its paths) is
            // for the log; the page says only that there is no such image.
            logger.notice("dashboard media refused", metadata: ["upload": "\(id)", "key": "\(key)", "error": "\(failure)"])
            throw WebFailure.notFound
        }
        return WebResponse(headers: [("Content-Type", type), ("Cache-Control", "private, max-age=300")], body: bytes)
    }

    // MARK: Actions page

    func actionsPage(_ v: Visitor) async throws -> WebResponse {
        let runs = bulk.all.map { r -> [String: Any] in
            ["id": r.id, "who": r.who, "what": r.what, "started": Format.time(r.started), "done": r.done, "matched": r.matched, "state": r.state,
             "failed": r.failed]
        }
        // The shared history (every dashboard and the CLI); this process's own lines when Redis cannot be read.
        let keys = keys
        let shared = try? await redis { try ActionLog(keys: keys, connection: $0).recent(limit: 200) }
        let log: [[String: String]] = shared.map { entries in
            entries.map { ["at": Format.time($0.at), "who": Format.cut($0.who), "what": Format.cut($0.what, 500), "via": Format.cut($0.via, 20)] }
        } ?? bulk.log.map { ["at": Format.time($0.at), "who": $0.who, "what": $0.what, "via": "dashboard"] }
        let running = bulk.all.contains { $0.state == "running" }
        return page("Actions", "actions", ["runs": runs, "log": log], v, refresh: running, current: "/actions", counts: try await navCounts())
    }
}
