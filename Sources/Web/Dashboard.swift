public import ConveyorCore
import Foundation
public import Logging
import Mustache
import Operations
public import Postgres
public import Redis
public import ServiceLifecycle
public import SidekiqQueue
public import Storage
import Synchronization
import BullMQQueue

/// `conveyor web`: the operator dashboard. `respond(_:)` answers one request (the handler tests call it directly;
/// `WebServer` feeds it from Hummingbird). Every read is a bounded Redis or PostgreSQL query (sets paged with
/// `ZREVRANGE offset count`, never read whole for a page); every action is a POST that goes through Operations'
/// `JobSet`, `QueueContents`, `QueuePauses` and `ProcessSignals`, the code behind the CLI's commands.
public final class Dashboard: Sendable {
    public let configuration: WebConfiguration
    public let keys: QueueKeys
    let endpoint: RedisEndpoint
    let redisThreads: [RedisThread]
    let database: PostgresThread?
    let mediaStore: (any MediaStore)?
    /// The BullMQ queues shown (nil: none configured, no BullMQ page).
    let bullmq: BullMQPages?
    public let sampler: RateSampler
    let bulk: BulkRuns
    let workerMetrics: WorkerMetrics
    let library: MustacheLibrary
    let logger: Logger
    let version: String
    private let turn = Atomic<Int>(0)
    /// The port the server listens on (the configured one until `listening(on:)`: port 0 picks one).
    private let boundPort: Atomic<Int>
    let hosts: HostAllowList
    let formKey = FormTokenKey()
    let logins = LoginThrottle()
    /// Per-queue rates from PostgreSQL, read at most every 5 seconds: a five-minute rate needs no fresher value, and
    /// many open Queues pages then cost PostgreSQL one query per 5 s.
    let queueRates = Mutex<(at: Double, rates: [String: QueueRate])?>(nil)

    struct QueueRate: Sendable {
        var succeeded: Int
        var dead: Int
    }

    /// - Parameters:
    ///   - databaseURL: `DATABASE_URL`: job results, media uploads and summaries; nil hides those parts.
    ///   - mediaStore: where upload variants are read from for display; nil shows their keys only.
    public init(
        configuration: WebConfiguration, redis endpoint: RedisEndpoint, keys: QueueKeys, databaseURL: String?,
        mediaStore: (any MediaStore)?, bullmq: BullMQPages? = nil, version: String = "", logger: Logger = Logger(label: "conveyor.web")
    ) {
        self.bullmq = bullmq.flatMap { $0.queues.isEmpty ? nil : $0 }
        self.configuration = configuration
        self.keys = keys
        self.endpoint = endpoint
        self.boundPort = Atomic(configuration.port)
        self.hosts = HostAllowList(configuration: configuration)
        // A few connections, each on its own thread: page loads run side by side, and none ever blocks Swift's pool.
        self.redisThreads = (0..<4).map { RedisThread(endpoint, name: "conveyor-web-\($0)", commandTimeout: 10) }
        self.database = databaseURL.map { PostgresThread(url: $0, name: "conveyor-web-postgres") }
        self.mediaStore = mediaStore
        self.sampler = RateSampler(redis: RedisThread(endpoint, name: "conveyor-web-sampler", commandTimeout: 5), keys: keys)
        self.bulk = BulkRuns(logger: logger, history: (RedisThread(endpoint, name: "conveyor-web-actions", commandTimeout: 10), keys))
        self.workerMetrics = WorkerMetrics(urls: configuration.metricsURLs)
        var library = MustacheLibrary()
        for (name, text) in Templates.all {
            do { try library.register(text, named: name) } catch { preconditionFailure("dashboard template \(name): \(error)") }
        }
        self.library = library
        self.logger = logger
        self.version = version
    }

    /// Tells the dashboard the port it listens on, which `Host` headers must carry.
    public func listening(on port: Int) { boundPort.store(port, ordering: .relaxed) }

    /// The CSRF token forms carry for the visitor with this `conveyor_csrf` cookie and user name (`-` without a
    /// password).
    public func formToken(cookie: String, user: String) -> String { formKey.token(nonce: cookie, user: user) }

    /// Services to run beside the HTTP server: the per-minute sampler.
    public var services: [any Service] { [sampler] }

    public func close() {
        for r in redisThreads { r.stop() }
        bulk.close()
        database?.stop()
    }

    func redis<T: Sendable>(_ body: @escaping @Sendable (RedisConnection) throws -> T) async throws -> T {
        let i = turn.wrappingAdd(1, ordering: .relaxed).oldValue
        return try await redisThreads[abs(i % redisThreads.count)].run(body)
    }

    func postgres<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T? {
        guard let database else { return nil }
        return try await database.run(body)
    }

    // MARK: One request

    /// Who is asking and the CSRF token their forms carry.
    struct Visitor {
        var who: String
        /// The `conveyor_csrf` cookie's nonce.
        var nonce: String
        /// What forms carry: the HMAC of the nonce and user.
        var csrf: String
        var newToken: Bool
        var flash: String?
        var secure: Bool
    }

    public func respond(_ request: WebRequest) async -> WebResponse {
        // Before anything else, whatever the route: a name this dashboard does not answer to (DNS rebinding).
        guard hosts.allows(request.headers["host"], port: boundPort.load(ordering: .relaxed)) else {
            return finish(.text("misdirected request: this dashboard does not answer to that Host (add it to CONVEYOR_WEB_HOSTS)\n", status: 421), nil)
        }
        var user = "-"
        if let password = configuration.password {
            let now = Date().timeIntervalSince1970
            if let wait = logins.wait(request.remote, now: now) {
                let seconds = Int(min(max(wait, 1), LoginThrottle.maxDelay).rounded(.up))
                var r = WebResponse.text("too many wrong passwords from this address: try again in \(seconds) s\n", status: 429)
                r.headers.append(("Retry-After", String(seconds)))
                return finish(r, nil)
            }
            guard let name = WebSecurity.authenticate(request, password: password) else {
                if request.headers["authorization"] != nil {
                    let failures = logins.failed(request.remote, now: now)
                    logger.notice("dashboard login failed", metadata: ["address": "\(request.remote)", "failures_this_minute": "\(failures)"])
                }
                var r = WebResponse.text("authentication required\n", status: 401)
                r.headers.append(("WWW-Authenticate", "Basic realm=\"Conveyor\", charset=\"UTF-8\""))
                return finish(r, nil)
            }
            logins.succeeded(request.remote)
            user = name
        }
        let cookies = request.cookies
        let existing = cookies[WebSecurity.csrfCookie].flatMap { WebSecurity.isToken($0) ? $0 : nil }
        let nonce = existing ?? WebSecurity.newToken()
        let visitor = Visitor(
            who: "\(user)@\(request.remote)", nonce: nonce, csrf: formKey.token(nonce: nonce, user: user), newToken: existing == nil,
            flash: cookies["conveyor_flash"].map { FormCoding.decode($0, plusIsSpace: false) },
            secure: request.headers["x-forwarded-proto"] == "https")
        var response: WebResponse
        do {
            response = try await route(request, visitor, user: user)
        } catch let error as WebFailure {
            response = page("Error", "message", ["heading": error.heading, "text": error.message], visitor, status: error.status)
        } catch let error as RedisError where error.isConnectionError {
            response = page("Redis unreachable", "message", ["heading": "Redis unreachable", "text": "\(error)"], visitor, status: 503)
        } catch let error as JobSetError {
            response = page("Error", "message", ["heading": "Cannot do that", "text": "\(error)"], visitor, status: 400)
        } catch {
            // The details (paths, SQL) go to the log only.
            logger.error("dashboard request failed", metadata: ["path": "/\(request.segments.joined(separator: "/"))", "error": "\(error)"])
            response = page("Error", "message", ["heading": "Something failed", "text": "The request failed; the dashboard's log has the details."], visitor, status: 500)
        }
        return finish(response, visitor)
    }

    private func finish(_ response: WebResponse, _ visitor: Visitor?) -> WebResponse {
        var r = response
        for (name, value) in WebSecurity.headers where r.header(name) == nil { r.headers.append((name, value)) }
        if let visitor {
            let secure = visitor.secure ? "; Secure" : ""
            if visitor.newToken {
                r.headers.append(("Set-Cookie", "\(WebSecurity.csrfCookie)=\(visitor.nonce); Path=/; HttpOnly; SameSite=Strict\(secure)"))
            }
            if visitor.flash != nil, r.status != 303 {
                r.headers.append(("Set-Cookie", "conveyor_flash=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict\(secure)"))
            }
        }
        return r
    }

    private func route(_ request: WebRequest, _ v: Visitor, user: String) async throws -> WebResponse {
        let s = request.segments
        if request.method == "POST" {
            if configuration.readOnly { throw WebFailure(status: 403, heading: "Read-only", message: "This dashboard is read-only (CONVEYOR_WEB_READ_ONLY).") }
            if let refusal = WebSecurity.refusal(request, key: formKey, user: user) { throw refusal }
            switch (s.first, s.count) {
            case ("queues", 3): return try await queueAction(s[1], s[2], request, v)
            case ("busy", 2): return try await processAction(s[1], request, v)
            case ("schedules", 3): return try await scheduleAction(s[1], s[2], v)
            case ("bullmq", 3): return try await bullmqAction(s[1], s[2], request, v)
            case ("jobs", 2) where s[1] == "cancel": return try await cancelAction(request, v)
            case (let set?, 2) where JobSetName(page: set) != nil: return try await setAction(JobSetName(page: set)!, s[1], request, v)
            default: throw WebFailure.notFound
            }
        }
        guard request.method == "GET" || request.method == "HEAD" else {
            throw WebFailure(status: 405, heading: "Method not allowed", message: request.method)
        }
        switch (s.first, s.count) {
        case (nil, _): return try await overview(v)
        case ("queues", 1): return try await queues(v)
        case ("queues", 2): return try await queue(s[1], request, v)
        case ("busy", 1): return try await busy(v)
        case ("schedules", 1): return try await schedules(v)
        case ("limits", 1): return try await limitsPage(v)
        case ("bullmq", 1): return try await bullmqQueues(v)
        case ("bullmq", 2): return try await bullmqQueue(s[1], request, v)
        case (let set?, 1) where JobSetName(page: set) != nil: return try await setPage(JobSetName(page: set)!, request, v)
        case (let set?, 2) where JobSetName(page: set) != nil && s[1] == "job": return try await jobPage(JobSetName(page: set)!, request, v)
        case (let set?, 2) where JobSetName(page: set) != nil && s[1] == "job.json": return try await jobJSON(set: JobSetName(page: set)!, queue: nil, request)
        case ("queues", 3) where s[2] == "job.json": return try await jobJSON(set: nil, queue: s[1], request)
        case ("lookup", 1): return try await lookup(request, v)
        case ("media", 1): return try await media(request)
        case ("actions", 1): return try await actionsPage(v)
        case ("assets", 2) where s[1] == "app.css":
            return WebResponse(headers: [("Content-Type", "text/css; charset=utf-8"), ("Cache-Control", "max-age=300")], body: Array(Assets.css.utf8))
        case ("assets", 2) where s[1] == "app.js":
            return WebResponse(headers: [("Content-Type", "text/javascript; charset=utf-8"), ("Cache-Control", "max-age=300")], body: Array(Assets.js.utf8))
        case ("healthz", 1): return .text("ok\n", status: 200)
        default: throw WebFailure.notFound
        }
    }

    // MARK: Rendering

    func page(_ title: String, _ template: String, _ context: [String: Any], _ v: Visitor, status: Int = 200, refresh: Bool = false, current: String? = nil, counts: NavCounts? = nil) -> WebResponse {
        var context = context
        context["csrf"] = v.csrf
        context["actions"] = !configuration.readOnly
        let content = library.render(context, withTemplate: template) ?? ""
        var links: [(String, String, Int?)] = [
            ("/", "Overview", nil), ("/queues", "Queues", nil), ("/busy", "Busy", counts?.busy), ("/scheduled", "Scheduled", counts?.scheduled),
            ("/retry", "Retries", counts?.retry), ("/dead", "Dead", counts?.dead), ("/schedules", "Schedules", nil), ("/limits", "Limits", nil), ("/lookup", "Look up", nil), ("/actions", "Actions", nil),
        ]
        if bullmq != nil { links.insert(("/bullmq", "BullMQ", nil), at: 2) }
        let nav: [[String: Any]] = links.map { href, label, count in
            var item: [String: Any] = ["href": href, "label": label, "current": href == current]
            if let count, count > 0 { item["count"] = Format.count(count) }
            return item
        }
        var layout: [String: Any] = [
            "title": title, "content": content, "nav": nav, "readOnly": configuration.readOnly, "version": version,
            "redis": endpoint.description, "readAt": Format.time(Date().timeIntervalSince1970),
        ]
        if refresh && configuration.refreshSeconds > 0 { layout["refresh"] = configuration.refreshSeconds }
        if let flash = v.flash, !flash.isEmpty { layout["flash"] = flash }
        return .html(library.render(layout, withTemplate: "layout") ?? "", status: status)
    }

    /// A 303 back to `location` with a one-time message.
    func redirect(_ location: String, flash: String, _ v: Visitor) -> WebResponse {
        var r = WebResponse.redirect(location)
        let secure = v.secure ? "; Secure" : ""
        r.headers.append(("Set-Cookie", "conveyor_flash=\(FormCoding.encode(String(flash.prefix(300)))); Path=/; Max-Age=60; HttpOnly; SameSite=Strict\(secure)"))
        return r
    }

    /// Most processes whose busy count the badge adds up.
    static let maximumBusyProcesses = 500

    struct NavCounts: Sendable {
        var scheduled: Int
        var retry: Int
        var dead: Int
        var busy: Int
    }

    func navCounts() async throws -> NavCounts {
        let keys = keys
        return try await redis { connection in
            let r = try connection.pipeline([
                RedisCommand("ZCARD", keys.schedule), RedisCommand("ZCARD", keys.retry), RedisCommand("ZCARD", keys.dead),
                RedisCommand("SRANDMEMBER", keys.processes, Self.maximumBusyProcesses),
            ])
            // Busy: the sum of the live processes' `busy` fields (Sidekiq's), for the badge on every page.
            let identities = (try r[3].check().array ?? []).compactMap(\.text)
            var busy = 0
            if !identities.isEmpty {
                for reply in try connection.pipeline(identities.map { RedisCommand("HGET", keys.process($0), "busy") }) {
                    busy = Saturating.add(busy, max(0, Int(reply.text ?? "") ?? 0))
                }
            }
            return NavCounts(scheduled: r[0].int ?? 0, retry: r[1].int ?? 0, dead: r[2].int ?? 0, busy: busy)
        }
    }
}

/// A request the dashboard answers with an error page.
struct WebFailure: Error {
    var status: Int
    var heading: String
    var message: String

    static let notFound = WebFailure(status: 404, heading: "Not found", message: "No such page.")
}

extension JobSetName {
    /// The dashboard's path for each set: `/dead`, `/retry`, `/scheduled`.
    init?(page: String) {
        switch page {
        case "dead": self = .dead
        case "retry": self = .retry
        case "scheduled": self = .scheduled
        default: return nil
        }
    }

    var title: String {
        switch self {
        case .dead: "Dead"
        case .retry: "Retries"
        case .scheduled: "Scheduled"
        }
    }

    /// What replaying means here.
    var retryLabel: String { self == .dead ? "Retry" : "Run now" }
}

/// How numbers and times are shown.
enum Format {
    /// The last second of year 9999: times beyond (or before 1970, or not finite) are shown as their raw value.
    static let latestTime = 253_402_300_799.0

    static func time(_ t: Double?) -> String {
        guard let t, t > 0 else { return "-" }
        guard t.isFinite, t <= latestTime, let whole = Int(exactly: t.rounded(.down)) else { return "score \(t)" }
        var seconds = time_t(whole)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02d %02d:%02d:%02dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min,
            parts.tm_sec)
    }

    static func ago(_ t: Double?, now: Double = Date().timeIntervalSince1970) -> String {
        guard let t, t > 0 else { return "-" }
        guard t.isFinite, t <= latestTime else { return "score \(t)" }
        let d = now - t
        if d < 0 { return "in " + duration(-d) }
        return duration(d) + " ago"
    }

    static func duration(_ d: Double) -> String {
        guard d.isFinite else { return "\(d) s" }
        if d < 1 { return String(format: "%.0f ms", d * 1000) }
        if d < 60 { return String(format: "%.1f s", d) }
        if d < 3600 { return String(format: "%.0f min", d / 60) }
        if d < 86_400 { return String(format: "%.1f h", d / 3600) }
        return String(format: "%.1f d", d / 86_400)
    }

    /// A byte count as people read it: 812 B, 45.2 KB, 3.1 MB.
    static func bytes(_ n: Int) -> String {
        if n < 1024 { return "\(max(0, n)) B" }
        if n < 1 << 20 { return String(format: "%.1f KB", Double(n) / 1024) }
        if n < 1 << 30 { return String(format: "%.1f MB", Double(n) / 1_048_576) }
        return String(format: "%.1f GB", Double(n) / 1_073_741_824)
    }

    static func count(_ n: Int) -> String {
        if n < 10_000 { return String(n) }
        if n < 1_000_000 { return String(format: "%.1fk", Double(n) / 1000) }
        return String(format: "%.1fM", Double(n) / 1_000_000)
    }

    /// `n + 1` for an attempt number from a job's `retry_count`, saturating instead of trapping.
    static func attempts(_ retryCount: Int?) -> String? {
        guard let n = retryCount else { return nil }
        let (sum, overflow) = n.addingReportingOverflow(1)
        return overflow ? String(n) : String(sum)
    }

    /// At most `limit` characters of `text`, with `…` when cut: no field from a job makes a page unbounded.
    static func cut(_ text: String?, _ limit: Int = 200) -> String {
        guard let text else { return "" }
        guard text.utf8.count > limit else { return text }
        return String(text.prefix(limit)) + "…"
    }

    /// `text` on one line (line breaks and tabs as spaces), cut to `limit` characters: set pages show one line per job.
    static func line(_ text: String, _ limit: Int) -> String {
        cut(String(text.prefix(limit + 1).map { $0.isNewline || $0 == "\t" ? " " : $0 }), limit)
    }

    /// A job's arguments on one line, cut to `limit` characters (escaped by the template).
    static func args(_ job: JSONObject?, limit: Int = 160) -> String {
        guard let args = job?["args"] else { return "" }
        return cut(args.text, limit)
    }

    /// Pretty-printed JSON, or (over `limit` bytes) the compact text cut to `limit`: a 10 MB payload is neither
    /// re-serialised nor sent whole.
    static func pretty(_ value: JSONValue?, limit: Int = 4096) -> String {
        guard let value else { return "" }
        let text = value.text
        guard text.utf8.count <= limit else { return cut(text, limit) }
        guard let data = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]),
            let out = try? JSONSerialization.data(withJSONObject: data, options: [.prettyPrinted, .sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
        else { return text }
        return String(decoding: out, as: UTF8.self)
    }

    /// A page number from the URL: 1 up to a million (beyond, nothing is on any page anyway).
    static func pageNumber(_ text: String?) -> Int { min(1_000_000, max(1, text.flatMap { Int($0) } ?? 1)) }

    /// An offset from the URL: 0 up to a billion.
    static func offset(_ text: String?) -> Int { min(1_000_000_000, max(0, text.flatMap { Int($0) } ?? 0)) }
}
