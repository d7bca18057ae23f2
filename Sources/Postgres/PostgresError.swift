/// What went wrong talking to PostgreSQL, captured where it happened.
public struct PostgresError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Connecting failed or the connection broke; it must be replaced.
        case connection
        /// The server rejected a statement (`sqlState` tells why).
        case query
        /// A `DATABASE_URL` or a value that cannot be used.
        case invalidInput
    }

    public var kind: Kind
    /// The five-character SQLSTATE (`23505` unique violation, `40001` serialization failure), when the server sent one.
    public var sqlState: String?
    /// The server's primary message, or libpq's connection error.
    public var message: String
    public var detail: String?
    /// The statement that failed, for context (never its parameters: they may hold secrets).
    public var statement: String?

    public init(kind: Kind, sqlState: String? = nil, message: String, detail: String? = nil, statement: String? = nil) {
        self.kind = kind
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.statement = statement
    }

    public var description: String {
        var text: String
        switch kind {
        case .connection: text = "postgres connection: \(message)"
        case .query: text = "postgres: \(message)"
        case .invalidInput: text = "postgres: \(message)"
        }
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let detail, !detail.isEmpty { text += "; \(detail)" }
        if let statement { text += " in: \(statement.prefix(120))" }
        return text
    }

    /// The connection is gone (or the server is shutting down / starting): retry on a new connection.
    public var isConnectionError: Bool {
        if kind == .connection { return true }
        // Class 08 connection exceptions, 57P01-57P03 admin/crash shutdown, cannot connect now.
        guard let sqlState else { return false }
        return sqlState.hasPrefix("08") || sqlState == "57P01" || sqlState == "57P02" || sqlState == "57P03"
    }

    /// The statement's data was refused (class 22 data exception: bad text, invalid JSON, a value out of range;
    /// class 23 integrity violation), so sending the same rows again fails the same way. Not a duplicate key
    /// (`isUniqueViolation`), which an upsert resolves.
    public var isDataError: Bool {
        guard kind == .query, let sqlState, !isUniqueViolation else { return false }
        return sqlState.hasPrefix("22") || sqlState.hasPrefix("23")
    }

    /// 23505 unique_violation.
    public var isUniqueViolation: Bool { sqlState == "23505" }
}
