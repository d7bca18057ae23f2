public import ConnectionThread

extension RedisConnection: BlockingConnection {}

/// A dedicated thread that owns one Redis connection and runs blocking hiredis calls on it, one at a time.
public typealias RedisThread = ConnectionThread<RedisConnection, RedisError>

extension ConnectionThread where Connection == RedisConnection, Failure == RedisError {
    /// Connects to `endpoint` on first use (and again after the connection breaks); every command waits at most
    /// `commandTimeout` seconds.
    public convenience init(_ endpoint: RedisEndpoint, name: String, commandTimeout: Double = 30) {
        self.init(name: name, stopped: .connection("\(name): stopped")) { () throws(RedisError) in
            try RedisConnection(endpoint, commandTimeout: commandTimeout)
        }
    }
}
