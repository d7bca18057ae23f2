import ConveyorCore
import Foundation
import Postgres
import Redis
import SidekiqQueue
import Storage
import Testing
import Web

/// The test servers from the environment (scripts/test.sh) and per-test names.
enum TestEnv {
    static var databaseURL: String? { ProcessInfo.processInfo.environment["DATABASE_URL"] }
    static var redisURL: String? { ProcessInfo.processInfo.environment["REDIS_URL"] }
    static var hasServers: Bool { databaseURL != nil && redisURL != nil }

    static func unique(_ base: String) -> String { "\(base)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }
    static func endpoint() throws -> RedisEndpoint { try RedisEndpoint(url: redisURL!) }
    static func redis() throws -> RedisConnection { try RedisConnection(endpoint()) }
}

/// A dashboard on its own namespace, and a client that keeps cookies the way a browser does.
final class Session {
    let keys: QueueKeys
    let dashboard: Dashboard
    let redis: RedisConnection
    var cookies: [String: String] = [:]
    var user: (String, String)?

    init(
        readOnly: Bool = false, password: String? = nil, mediaRoot: String? = nil, pageSize: Int = 25
    ) throws {
        keys = QueueKeys(namespace: TestEnv.unique("web"))
        let configuration = try WebConfiguration(password: password, readOnly: readOnly, pageSize: pageSize)
        let store: (any MediaStore)? = try mediaRoot.map { LocalMediaStore(root: try MediaRoot($0)) }
        dashboard = Dashboard(
            configuration: configuration, redis: try TestEnv.endpoint(), keys: keys, databaseURL: TestEnv.databaseURL, mediaStore: store)
        redis = try TestEnv.redis()
    }

    deinit { dashboard.close() }

    private func headers(_ extra: [String: String]) -> [String: String] {
        var h = extra
        if !cookies.isEmpty { h["Cookie"] = cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ") }
        if let (u, p) = user { h["Authorization"] = "Basic " + Data("\(u):\(p)".utf8).base64EncodedString() }
        h["Host"] = "127.0.0.1:9292"
        return h
    }

    private func keep(_ r: WebResponse) {
        for (name, value) in r.headers where name == "Set-Cookie" {
            let pair = value.split(separator: ";")[0].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            if value.contains("Max-Age=0") { cookies[pair[0]] = nil } else { cookies[pair[0]] = pair.count > 1 ? pair[1] : "" }
        }
    }

    @discardableResult
    func get(_ path: String, _ extra: [String: String] = [:]) async -> WebResponse {
        let parts = path.split(separator: "?", maxSplits: 1).map(String.init)
        let r = await dashboard.respond(WebRequest(method: "GET", path: parts[0], query: parts.count > 1 ? parts[1] : "", headers: headers(extra), remote: "127.0.0.1"))
        keep(r)
        return r
    }

    /// A form POST carrying the CSRF token (unless `csrf` says otherwise), as the pages' forms do.
    @discardableResult
    func post(_ path: String, _ fields: [(String, String)], csrf: String? = nil, _ extra: [String: String] = [:]) async -> WebResponse {
        if cookies[WebTestsCookie.csrf] == nil { await get("/") }
        let token = csrf ?? dashboard.formToken(cookie: cookies[WebTestsCookie.csrf] ?? "", user: user.map { $0.0.isEmpty ? "-" : $0.0 } ?? "-")
        let body = FormCoding.query([("csrf", token)]) + "&" + fields.map { FormCoding.encode($0.0) + "=" + FormCoding.encode($0.1) }.joined(separator: "&")
        // What a browser sends with a form from the dashboard's own page.
        var sent = ["Origin": "http://127.0.0.1:9292", "Content-Type": "application/x-www-form-urlencoded"]
        sent.merge(extra) { _, new in new }
        let r = await dashboard.respond(WebRequest(method: "POST", path: path, form: body, headers: headers(sent), remote: "127.0.0.1"))
        keep(r)
        return r
    }

    /// Adds a job to a sorted set the way the worker does (score: when it died or runs).
    @discardableResult
    func addToSet(_ key: String, jid: String, jobClass: String = "noop", queue: String = "default", args: String = "[]",
                  error: String? = "RuntimeError: boom", score: Double = Date().timeIntervalSince1970) throws -> String {
        var fields = "\"class\":\(JSONValue.string(jobClass).text),\"args\":\(args),\"queue\":\(JSONValue.string(queue).text),\"jid\":\"\(jid)\",\"retry\":3,\"created_at\":\(score - 10)"
        if let error {
            let parts = error.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            fields += ",\"error_class\":\(JSONValue.string(parts[0]).text),\"error_message\":\(JSONValue.string(parts.count > 1 ? parts[1] : "").text),\"failed_at\":\(score),\"retry_count\":2"
        }
        let member = "{\(fields)}"
        _ = try redis.command("ZADD", key, score, member).check()
        return member
    }

    /// Polls `condition` every 20 ms for at most `seconds`.
    func eventually(_ seconds: Double = 10, _ condition: () throws -> Bool) throws -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if try condition() { return true }
            usleep(20_000)
        }
        return try condition()
    }
}

enum WebTestsCookie {
    static let csrf = "conveyor_csrf"
}
