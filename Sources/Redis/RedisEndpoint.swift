import Foundation

/// Where Redis listens, parsed from a `REDIS_URL`:
/// - `redis://[user:password@]host[:port][/db]`, `rediss://...` for TLS;
/// - `redis+sentinel://[user:password@]host[:port],host[:port]/master[/db]` (sentinels, default port 26379),
///   `rediss+sentinel://...` for TLS to the sentinels and the data nodes;
/// - `redis+cluster://[user:password@]host[:port],host[:port]` (seed nodes of a Redis Cluster, default port 6379),
///   `rediss+cluster://...` for TLS;
/// - `unix:///path/to/redis.sock[?db=N]`.
///
/// The user name and password are percent-decoded (`p%40ss` is `p@ss`) and used for `AUTH` on the data nodes.
public struct RedisEndpoint: Sendable, CustomStringConvertible, Equatable {
    public enum Address: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unix(path: String)
        /// The master that the sentinels at `nodes` know as `master`, found again on every connect.
        case sentinel(nodes: [Node], master: String)
        /// A Redis Cluster that the seed `nodes` describe (`CLUSTER SLOTS`); commands go to the master of their key's slot.
        case cluster(nodes: [Node])
    }

    /// A host and port, of a sentinel or a data node.
    public struct Node: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    public var address: Address
    public var username: String?
    public var password: String?
    public var database: Int
    /// TLS settings; `nil` speaks plain TCP.
    public var tls: RedisTLS?
    /// What the sentinels themselves ask for (`requirepass` / an ACL user in sentinel.conf), when it differs from
    /// the data nodes' credentials in the URL. `nil`: sentinels are asked without `AUTH`.
    public var sentinelUsername: String?
    public var sentinelPassword: String?

    public init(address: Address, username: String? = nil, password: String? = nil, database: Int = 0, tls: RedisTLS? = nil) {
        self.address = address
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
    }

    /// Parses `url`; `rediss://` trusts the system's certificate authorities.
    public init(url: String) throws(RedisError) {
        if url.hasPrefix("unix://") {
            try self.init(unixURL: url)
            return
        }
        let schemes: [(prefix: String, tls: Bool, sentinel: Bool, cluster: Bool)] = [
            ("redis://", false, false, false), ("rediss://", true, false, false), ("redis+sentinel://", false, true, false),
            ("rediss+sentinel://", true, true, false), ("redis+cluster://", false, false, true), ("rediss+cluster://", true, false, true),
        ]
        guard let scheme = schemes.first(where: { url.hasPrefix($0.prefix) }) else {
            throw .invalidURL(
                "\(Self.redacted(url)) (expected redis://, rediss://, redis+sentinel://, rediss+sentinel://, redis+cluster://, rediss+cluster:// or unix://)")
        }
        var rest = Substring(url.dropFirst(scheme.prefix.count))
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                let user = try Self.decoded(userinfo[..<colon], what: "user name", in: url)
                username = user.isEmpty ? nil : user
                password = try Self.decoded(userinfo[userinfo.index(after: colon)...], what: "password", in: url)
            } else if !userinfo.isEmpty {
                password = try Self.decoded(userinfo, what: "password", in: url)
            }
        }
        let safe = Self.redacted(url)
        var path: [Substring] = []
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...].split(separator: "/", omittingEmptySubsequences: false)
            rest = rest[..<slash]
            if path.last?.isEmpty == true { path.removeLast() }
        }
        let tls = scheme.tls ? RedisTLS() : nil
        if scheme.sentinel {
            guard let master = path.first, !master.isEmpty else { throw .invalidURL("no master name in \(safe) (…/mymaster[/db])") }
            guard path.count <= 2 else { throw .invalidURL("\(safe): expected …/master[/db]") }
            let db = try path.count == 2 ? Self.database(path[1], in: safe) : 0
            let nodes = try rest.split(separator: ",").map { spec throws(RedisError) in try Self.node(spec, defaultPort: 26379, in: safe) }
            guard !nodes.isEmpty else { throw .invalidURL("no sentinel in \(safe)") }
            self.init(address: .sentinel(nodes: nodes, master: String(master)), username: username, password: password, database: db, tls: tls)
            return
        }
        if scheme.cluster {
            // A cluster has database 0 only.
            guard path.isEmpty || path == ["0"] else { throw .invalidURL("\(safe): a Redis Cluster has only database 0") }
            let nodes = try rest.split(separator: ",").map { spec throws(RedisError) in try Self.node(spec, defaultPort: 6379, in: safe) }
            guard !nodes.isEmpty else { throw .invalidURL("no cluster node in \(safe)") }
            self.init(address: .cluster(nodes: nodes), username: username, password: password, database: 0, tls: tls)
            return
        }
        guard path.count <= 1 else { throw .invalidURL("\(safe): expected …/db") }
        let db = try path.first.map { p throws(RedisError) in try Self.database(p, in: safe) } ?? 0
        let node = try Self.node(rest, defaultPort: 6379, in: safe)
        self.init(address: .tcp(host: node.host, port: node.port), username: username, password: password, database: db, tls: tls)
    }

    /// Parses `url` and applies the settings in `environment`: TLS (`CONVEYOR_REDIS_CA_FILE`,
    /// `CONVEYOR_REDIS_CERT_FILE` + `CONVEYOR_REDIS_KEY_FILE`, `CONVEYOR_REDIS_TLS_INSECURE` for tests only) and the
    /// sentinels' own credentials (`CONVEYOR_REDIS_SENTINEL_USERNAME`, `CONVEYOR_REDIS_SENTINEL_PASSWORD`).
    /// A setting the URL cannot use (TLS without `rediss`, sentinel credentials without sentinels) is refused
    /// rather than ignored.
    public init(url: String, environment: [String: String]) throws(RedisError) {
        try self.init(url: url)
        func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        sentinelUsername = value("CONVEYOR_REDIS_SENTINEL_USERNAME")
        sentinelPassword = value("CONVEYOR_REDIS_SENTINEL_PASSWORD")
        if sentinelUsername != nil || sentinelPassword != nil {
            guard case .sentinel = address else {
                throw .invalidURL("CONVEYOR_REDIS_SENTINEL_USERNAME or _PASSWORD is set but \(description) names no sentinels")
            }
            guard sentinelPassword != nil else {
                throw .invalidURL("CONVEYOR_REDIS_SENTINEL_USERNAME needs CONVEYOR_REDIS_SENTINEL_PASSWORD")
            }
        }
        let ca = value("CONVEYOR_REDIS_CA_FILE")
        let cert = value("CONVEYOR_REDIS_CERT_FILE")
        let key = value("CONVEYOR_REDIS_KEY_FILE")
        let insecure: Bool
        switch value("CONVEYOR_REDIS_TLS_INSECURE")?.lowercased() {
        case nil, "0", "false", "no", "off": insecure = false
        case "1", "true", "yes", "on": insecure = true
        case let other?: throw .invalidURL("CONVEYOR_REDIS_TLS_INSECURE=\(other) is neither on nor off")
        }
        guard ca != nil || cert != nil || key != nil || insecure else { return }
        guard tls != nil else {
            throw .invalidURL("CONVEYOR_REDIS_CA_FILE, _CERT_FILE, _KEY_FILE or _TLS_INSECURE is set but \(description) does not use TLS: use rediss://")
        }
        if (cert == nil) != (key == nil) {
            throw .invalidURL("CONVEYOR_REDIS_CERT_FILE and CONVEYOR_REDIS_KEY_FILE go together (mutual TLS needs both)")
        }
        for (name, path) in [("CONVEYOR_REDIS_CA_FILE", ca), ("CONVEYOR_REDIS_CERT_FILE", cert), ("CONVEYOR_REDIS_KEY_FILE", key)] {
            if let path, !FileManager.default.isReadableFile(atPath: path) { throw .invalidURL("\(name)=\(path) is not a readable file") }
        }
        tls = RedisTLS(caFile: ca, certFile: cert, keyFile: key, insecure: insecure)
    }

    private init(unixURL url: String) throws(RedisError) {
        var rest = Substring(url.dropFirst("unix://".count))
        var db = 0
        if let q = rest.firstIndex(of: "?") {
            let query = rest[rest.index(after: q)...]
            rest = rest[..<q]
            for pair in query.split(separator: "&") where pair.hasPrefix("db=") {
                guard let n = Int(pair.dropFirst(3)) else { throw .invalidURL("bad db in \(url)") }
                db = n
            }
        }
        guard !rest.isEmpty else { throw .invalidURL("no socket path in \(url)") }
        self.init(address: .unix(path: String(rest)), database: db)
    }

    /// The endpoint without its user name and password, safe to log.
    public var description: String {
        let s = tls == nil ? "" : "s"
        switch address {
        case .tcp(let host, let port): return "redis\(s)://\(Node(host: host, port: port))/\(database)"
        case .unix(let path): return "unix://\(path)?db=\(database)"
        case .sentinel(let nodes, let master):
            return "redis\(s)+sentinel://\(nodes.map(\.description).joined(separator: ","))/\(master)/\(database)"
        case .cluster(let nodes): return "redis\(s)+cluster://\(nodes.map(\.description).joined(separator: ","))"
        }
    }

    /// `host[:port]` or `[v6]:port`; an empty host is loopback.
    private static func node(_ spec: Substring, defaultPort: Int, in url: String) throws(RedisError) -> Node {
        var host = String(spec)
        var port = defaultPort
        if spec.hasPrefix("[") {
            guard let close = spec.firstIndex(of: "]") else { throw .invalidURL("unclosed [ in \(url)") }
            host = String(spec[spec.index(after: spec.startIndex)..<close])
            let after = spec[spec.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()) else { throw .invalidURL("bad port in \(url)") }
                port = p
            } else if !after.isEmpty {
                throw .invalidURL("bad address \(spec) in \(url)")
            }
        } else if let colon = spec.lastIndex(of: ":") {
            host = String(spec[..<colon])
            guard let p = Int(spec[spec.index(after: colon)...]) else { throw .invalidURL("bad port in \(url)") }
            port = p
        }
        guard (1...65535).contains(port) else { throw .invalidURL("port \(port) out of range in \(url)") }
        return Node(host: host.isEmpty ? "127.0.0.1" : host, port: port)
    }

    private static func database(_ text: Substring, in url: String) throws(RedisError) -> Int {
        guard let n = Int(text), n >= 0 else { throw .invalidURL("bad database number in \(url)") }
        return n
    }

    private static func decoded(_ text: Substring, what: String, in url: String) throws(RedisError) -> String {
        guard let plain = String(text).removingPercentEncoding else { throw .invalidURL("bad percent-encoding in the \(what) of \(redacted(url))") }
        return plain
    }

    /// `url` with its userinfo replaced, for error messages.
    private static func redacted(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://"), let at = url.lastIndex(of: "@"), at > schemeEnd.upperBound else { return url }
        return url[..<schemeEnd.upperBound] + "***@" + url[url.index(after: at)...]
    }
}
