/// Where Redis listens, parsed from a `REDIS_URL`: `redis://[user:password@]host[:port][/db]` or
/// `unix:///path/to/redis.sock[?db=N]`.
public struct RedisEndpoint: Sendable, CustomStringConvertible, Equatable {
    public enum Address: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unix(path: String)
    }

    public var address: Address
    public var username: String?
    public var password: String?
    public var database: Int

    public init(address: Address, username: String? = nil, password: String? = nil, database: Int = 0) {
        self.address = address
        self.username = username
        self.password = password
        self.database = database
    }

    public init(url: String) throws(RedisError) {
        if url.hasPrefix("unix://") {
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
            return
        }
        guard url.hasPrefix("redis://") else { throw .invalidURL("\(url) (expected redis:// or unix://)") }
        var rest = Substring(url.dropFirst("redis://".count))
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                let user = userinfo[..<colon]
                username = user.isEmpty ? nil : String(user)
                password = String(userinfo[userinfo.index(after: colon)...])
            } else if !userinfo.isEmpty {
                password = String(userinfo)
            }
        }
        var db = 0
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !path.isEmpty {
                guard let n = Int(path) else { throw .invalidURL("bad database number in \(url)") }
                db = n
            }
        }
        var host = String(rest)
        var port = 6379
        if rest.hasPrefix("[") {
            // [::1]:6379
            guard let close = rest.firstIndex(of: "]") else { throw .invalidURL(url) }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()) else { throw .invalidURL("bad port in \(url)") }
                port = p
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let p = Int(rest[rest.index(after: colon)...]) else { throw .invalidURL("bad port in \(url)") }
            port = p
        }
        if host.isEmpty { host = "127.0.0.1" }
        self.init(address: .tcp(host: host, port: port), username: username, password: password, database: db)
    }

    /// The endpoint without its password, safe to log.
    public var description: String {
        switch address {
        case .tcp(let host, let port): "redis://\(host):\(port)/\(database)"
        case .unix(let path): "unix://\(path)?db=\(database)"
        }
    }
}
