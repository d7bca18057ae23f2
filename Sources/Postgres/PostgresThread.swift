public import ConnectionThread

extension PostgresConnection: BlockingConnection {}

/// A dedicated thread that owns one PostgreSQL connection and runs blocking libpq calls on it, one at a time.
public typealias PostgresThread = ConnectionThread<PostgresConnection, PostgresError>

extension ConnectionThread where Connection == PostgresConnection, Failure == PostgresError {
    /// Opens `url` on first use (and again after the connection breaks).
    public convenience init(url: String, name: String) {
        self.init(name: name, stopped: PostgresError(kind: .connection, message: "\(name): stopped")) { () throws(PostgresError) in
            try PostgresConnection(url: url)
        }
    }
}
