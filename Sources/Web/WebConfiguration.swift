public import ConveyorCore
import Foundation

/// `conveyor web`'s settings, read once at start-up; a value that cannot be used refuses to start.
///
/// - `CONVEYOR_WEB_ADDR` (`--addr`): `host:port`, default `127.0.0.1:9292`. Any host but a loopback one requires
///   `CONVEYOR_WEB_PASSWORD`.
/// - `CONVEYOR_WEB_PASSWORD`: HTTP Basic password (any user name; the name is logged with each action). Use it
///   over TLS or behind a proxy that terminates TLS. Off loopback it must have at least 12 characters.
/// - `CONVEYOR_WEB_HOSTS`: extra `Host` names the dashboard answers (comma-separated `host[:port]`), for a proxy's
///   public name; any other name is refused (DNS rebinding).
/// - `CONVEYOR_WEB_READ_ONLY`: `on` hides every button and refuses every POST.
/// - `CONVEYOR_WEB_REFRESH_SECONDS`: how often the overview, queues and busy pages reload (default 5; 0 never).
/// - `CONVEYOR_WEB_METRICS_URLS`: worker `/metrics` URLs (comma-separated) read for the LLM breakers' states and
///   the result writers' backlog.
/// - `CONVEYOR_WEB_PAGE_SIZE`: jobs per page (default 25).
public struct WebConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var password: String?
    public var readOnly: Bool
    public var refreshSeconds: Int
    public var metricsURLs: [String]
    public var pageSize: Int
    public var allowedHosts: [AllowedHost]

    /// One `CONVEYOR_WEB_HOSTS` entry: a host name or IP (lowercased, IPv6 without brackets), and a port if given.
    public struct AllowedHost: Sendable, Equatable {
        public var host: String
        public var port: Int?

        public init(host: String, port: Int? = nil) {
            self.host = host.lowercased()
            self.port = port
        }
    }

    public static let defaultAddress = "127.0.0.1:9292"
    /// The shortest password accepted when the dashboard listens beyond loopback.
    public static let minimumPasswordLength = 12

    public init(
        host: String = "127.0.0.1", port: Int = 9292, password: String? = nil, readOnly: Bool = false, refreshSeconds: Int = 5,
        metricsURLs: [String] = [], pageSize: Int = 25, allowedHosts: [AllowedHost] = []
    ) throws(JobFailure) {
        self.host = host
        self.port = port
        self.password = password.flatMap { $0.isEmpty ? nil : $0 }
        self.readOnly = readOnly
        self.refreshSeconds = refreshSeconds
        self.metricsURLs = metricsURLs
        self.pageSize = pageSize
        self.allowedHosts = allowedHosts
        if !Self.isLoopback(host) {
            guard let password = self.password else {
                throw .permanent(
                    .invalidConfiguration,
                    "CONVEYOR_WEB_ADDR=\(host):\(port) is not a loopback address: set CONVEYOR_WEB_PASSWORD (and serve it over TLS or behind a proxy), or bind 127.0.0.1")
            }
            let length = password.count
            if length < Self.minimumPasswordLength || password.allSatisfy(\.isWhitespace) {
                throw .permanent(
                    .invalidConfiguration,
                    "CONVEYOR_WEB_PASSWORD has \(length) characters: off loopback (CONVEYOR_WEB_ADDR=\(host):\(port)) it needs at least \(Self.minimumPasswordLength), not all spaces")
            }
        }
    }

    /// From the environment; `address` (the `--addr` flag) wins over `CONVEYOR_WEB_ADDR`.
    public init(environment: [String: String], address: String? = nil, readOnly: Bool? = nil) throws(JobFailure) {
        let text = address ?? environment["CONVEYOR_WEB_ADDR"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultAddress
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw .permanent(.invalidConfiguration, "CONVEYOR_WEB_ADDR=\(text): expected host:port, like 127.0.0.1:9292")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty { host = "0.0.0.0" }
        if host == "localhost" { host = "127.0.0.1" }
        let urls = (environment["CONVEYOR_WEB_METRICS_URLS"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        for url in urls where !(url.hasPrefix("http://") || url.hasPrefix("https://")) {
            throw .permanent(.invalidConfiguration, "CONVEYOR_WEB_METRICS_URLS: \(url) is not an http(s) URL")
        }
        var allowed: [AllowedHost] = []
        for entry in (environment["CONVEYOR_WEB_HOSTS"] ?? "").split(separator: ",") {
            let text = entry.trimmingCharacters(in: .whitespaces).lowercased()
            if text.isEmpty { continue }
            guard let (name, port) = HostAllowList.split(text),
                name.utf8.allSatisfy({ (48...57).contains($0) || (97...122).contains($0) || $0 == 45 || $0 == 46 || $0 == 58 }), name.utf8.count <= 253
            else {
                throw .permanent(.invalidConfiguration, "CONVEYOR_WEB_HOSTS: \(text) is not host[:port] (like dashboard.example.com or 10.0.0.5:9292)")
            }
            allowed.append(AllowedHost(host: name, port: port))
        }
        let readOnlySetting = try EnvironmentSwitch.value("CONVEYOR_WEB_READ_ONLY", in: environment, default: false)
        try self.init(
            host: host, port: port, password: environment["CONVEYOR_WEB_PASSWORD"],
            readOnly: readOnly ?? readOnlySetting,
            refreshSeconds: try EnvironmentNumber.int("CONVEYOR_WEB_REFRESH_SECONDS", in: environment, default: 5, range: 0...3600),
            metricsURLs: urls,
            pageSize: try EnvironmentNumber.int("CONVEYOR_WEB_PAGE_SIZE", in: environment, default: 25, range: 1...500), allowedHosts: allowed)
    }

    /// From the one settings reader (`WebSettings`: flags, environment or file, already checked against their
    /// declarations); the address and password rules above still apply.
    public init(settings: SettingsReader) throws(JobFailure) {
        try self.init(environment: settings.values(of: WebSettings.all))
    }

    /// 127.0.0.0/8 and ::1: only this machine can connect.
    public static func isLoopback(_ host: String) -> Bool {
        host == "::1" || host.hasPrefix("127.")
    }
}

/// `conveyor web`'s settings.
public enum WebSettings {
    public static let webAddr = Setting("CONVEYOR_WEB_ADDR", flag: "--addr", default: "127.0.0.1:9292", 
            doc: "Same as `conveyor web --addr host:port` (port 0 picks a free one; the URL is printed on stdout). Any non-loopback host requires `CONVEYOR_WEB_PASSWORD`, or the dashboard refuses to start.", check: { text in
            do {
                _ = try WebConfiguration(environment: ["CONVEYOR_WEB_ADDR": text, "CONVEYOR_WEB_PASSWORD": String(repeating: "x", count: 12)])
                return nil
            } catch { return "expected host:port, like 127.0.0.1:9292" }
        })

    public static let webPassword = Setting("CONVEYOR_WEB_PASSWORD", secret: true, 
            doc: "HTTP Basic password for every request (any user name). Serve over TLS or behind a TLS proxy. Off loopback: at least 12 characters, or the dashboard refuses to start.")

    public static let webHosts = Setting("CONVEYOR_WEB_HOSTS", .list, 
            doc: "Extra `Host` names the dashboard answers (comma-separated `host[:port]`; without a port, any), e.g. a proxy's public name; any name not allowed gets 421 (DNS rebinding).")

    public static let webReadOnly = Setting("CONVEYOR_WEB_READ_ONLY", flag: "--read-only", .onOff, default: "off", 
            doc: "`on`: no buttons, every POST refused (same as `--read-only`).")

    public static let webRefreshSeconds = Setting("CONVEYOR_WEB_REFRESH_SECONDS", .int(0...3600), default: "5", 
            doc: "How often the overview, queues and busy pages reload themselves (0: never; max 3600).")

    public static let webMetricsUrls = Setting("CONVEYOR_WEB_METRICS_URLS", .list, note: "none (`make run`: its worker's)", 
            doc: "Comma-separated worker `/metrics` URLs, read (at most every 5 s, 2 s timeout each) for the LLM breakers' states and the in-memory result backlog.", check: { text in
            let bad = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !($0.hasPrefix("http://") || $0.hasPrefix("https://")) }
            return bad.first.map { "\($0) is not an http(s) URL" }
        })

    public static let webPageSize = Setting("CONVEYOR_WEB_PAGE_SIZE", .int(1...500), default: "25", 
            doc: "Jobs per page (1-500).")

    public static let all = [webAddr, webPassword, webHosts, webReadOnly, webRefreshSeconds, webMetricsUrls, webPageSize]

    public static let group = SettingGroup("Dashboard (`conveyor web`)", note: "The dashboard also reads the Redis, `DATABASE_URL` and media store settings.", all)
}
