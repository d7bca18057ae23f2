/// A Redis reply, copied out of hiredis' reply tree into Swift values.
public enum RedisReply: Sendable, Equatable {
    case string([UInt8])
    case status(String)
    case integer(Int)
    case array([RedisReply])
    case null
    case error(String)

    /// The bulk or status string as UTF-8 text, if it is one.
    public var text: String? {
        switch self {
        case .string(let bytes): String(decoding: bytes, as: UTF8.self)
        case .status(let s): s
        default: nil
        }
    }

    public var bytes: [UInt8]? {
        if case .string(let b) = self { return b }
        return nil
    }

    public var int: Int? {
        switch self {
        case .integer(let i): i
        case .string(let b): Int(String(decoding: b, as: UTF8.self))
        default: nil
        }
    }

    public var array: [RedisReply]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var isNull: Bool { self == .null }

    /// Throws the server's error reply as `RedisError.server`.
    @discardableResult
    public func check() throws(RedisError) -> RedisReply {
        if case .error(let message) = self { throw RedisError.server(message) }
        return self
    }
}

/// What went wrong talking to Redis.
public enum RedisError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The connection failed or broke; the connection must be discarded.
    case connection(String)
    /// The server answered with an error reply (`-ERR ...`).
    case server(String)
    /// A `REDIS_URL` that cannot be used.
    case invalidURL(String)

    public var description: String {
        switch self {
        case .connection(let m): "redis connection: \(m)"
        case .server(let m): "redis: \(m)"
        case .invalidURL(let m): "invalid redis url: \(m)"
        }
    }

    /// The text of the error, without the kind.
    var message: String {
        switch self {
        case .connection(let m), .server(let m), .invalidURL(let m): m
        }
    }

    /// The connection broke; the caller may retry on a new connection.
    public var isConnectionError: Bool {
        if case .connection = self { return true }
        return false
    }

    /// The connection broke, or the server cannot serve this command for now (loading its data after a restart,
    /// a replica during failover, a script running too long): the same command may succeed later.
    public var isTransient: Bool {
        switch self {
        case .connection: return true
        case .server(let message):
            return Self.transientPrefixes.contains { message.hasPrefix($0) }
        case .invalidURL: return false
        }
    }

    private static let transientPrefixes = ["LOADING", "READONLY", "MASTERDOWN", "BUSY", "TRYAGAIN", "CLUSTERDOWN"]
}
