internal import CLibpq
import Foundation

/// One blocking libpq connection. Use it from one thread at a time (see `PostgresThread`): every call blocks.
public final class PostgresConnection {
    private var conn: OpaquePointer?
    /// The URL with its password removed, safe to log.
    public let redactedURL: String
    private let url: String

    /// Connects with `PQconnectdb`; `url` is a `postgres://` or `postgresql://` URI (or a `key=value` string).
    public init(url: String, connectTimeout: Int = 5) throws(PostgresError) {
        self.url = url
        self.redactedURL = Self.redact(url)
        try open(connectTimeout: connectTimeout)
    }

    deinit {
        if let conn { PQfinish(conn) }
    }

    private func open(connectTimeout: Int) throws(PostgresError) {
        if let conn { PQfinish(conn) }
        conn = nil
        var conninfo = url
        if !url.contains("connect_timeout") {
            if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
                conninfo += (url.contains("?") ? "&" : "?") + "connect_timeout=\(connectTimeout)"
            } else {
                conninfo += " connect_timeout=\(connectTimeout)"
            }
        }
        guard let c = PQconnectdb(conninfo) else {
            throw PostgresError(kind: .connection, message: "\(redactedURL): out of memory")
        }
        if PQstatus(c) != CONNECTION_OK {
            let message = Self.trimmed(PQerrorMessage(c))
            PQfinish(c)
            throw PostgresError(kind: .connection, message: "\(redactedURL): \(message)")
        }
        // Server notices (e.g. "schema already exists, skipping") would go to stderr otherwise.
        PQsetNoticeProcessor(c, { _, _ in }, nil)
        conn = c
    }

    /// Whether the connection is unusable and must be reopened (`reconnect()`).
    public var isBroken: Bool {
        guard let conn else { return true }
        return PQstatus(conn) != CONNECTION_OK
    }

    /// Drops the connection and opens a fresh one.
    public func reconnect() throws(PostgresError) {
        try open(connectTimeout: 5)
    }

    /// Runs one parameterized statement (`$1`, `$2`, ... in text format) and copies its rows.
    @discardableResult
    public func query(_ sql: String, _ parameters: [(any PostgresEncodable)?] = []) throws(PostgresError) -> PostgresRows {
        guard let conn else { throw PostgresError(kind: .connection, message: "\(redactedURL): connection is closed") }
        let texts: [String?] = parameters.map { $0?.postgresText }
        let result: OpaquePointer? = Self.withCStrings(texts) { values in
            PQexecParams(conn, sql, Int32(texts.count), nil, values, nil, nil, 0)
        }
        guard let result else {
            throw PostgresError(kind: .connection, message: "\(redactedURL): \(Self.trimmed(PQerrorMessage(conn)))", statement: sql)
        }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        switch status {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return Self.copy(result)
        default:
            // Read the error fields now, from this result: they are gone once it is cleared.
            let sqlState = Self.field(result, "C")
            let primary = Self.field(result, "M")
            let detail = Self.field(result, "D")
            let broken = PQstatus(conn) != CONNECTION_OK
            let message = primary ?? Self.trimmed(PQresultErrorMessage(result))
            throw PostgresError(
                kind: broken || sqlState == nil && status == PGRES_FATAL_ERROR && primary == nil ? .connection : .query,
                sqlState: sqlState, message: message.isEmpty ? "\(redactedURL): connection lost" : message,
                detail: detail, statement: sql)
        }
    }

    /// Runs several statements separated by semicolons, without parameters (migrations).
    public func execute(script sql: String) throws(PostgresError) {
        guard let conn else { throw PostgresError(kind: .connection, message: "\(redactedURL): connection is closed") }
        guard let result = PQexec(conn, sql) else {
            throw PostgresError(kind: .connection, message: "\(redactedURL): \(Self.trimmed(PQerrorMessage(conn)))")
        }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        if status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && status != PGRES_EMPTY_QUERY {
            let sqlState = Self.field(result, "C")
            throw PostgresError(
                kind: PQstatus(conn) != CONNECTION_OK ? .connection : .query, sqlState: sqlState,
                message: Self.field(result, "M") ?? Self.trimmed(PQresultErrorMessage(result)),
                detail: Self.field(result, "D"), statement: sql)
        }
    }

    /// Runs `body` inside BEGIN/COMMIT; any error rolls back and is rethrown.
    @discardableResult
    public func transaction<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try query("BEGIN")
        do {
            let value = try body(self)
            try query("COMMIT")
            return value
        } catch {
            if !isBroken { _ = try? query("ROLLBACK") }
            throw error
        }
    }

    private static func withCStrings<R>(_ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0) } ?? nil }
        defer { for p in pointers { free(p) } }
        return pointers.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: max(buffer.count, 1)) {
                body(strings.isEmpty ? nil : UnsafePointer($0))
            }
        }
    }

    private static func copy(_ result: OpaquePointer) -> PostgresRows {
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        var columns: [String] = []
        columns.reserveCapacity(columnCount)
        for c in 0..<columnCount { columns.append(PQfname(result, Int32(c)).map { String(cString: $0) } ?? "?column?") }
        var rows: [[String?]] = []
        rows.reserveCapacity(rowCount)
        for r in 0..<rowCount {
            var row: [String?] = []
            row.reserveCapacity(columnCount)
            for c in 0..<columnCount {
                if PQgetisnull(result, Int32(r), Int32(c)) == 1 {
                    row.append(nil)
                } else {
                    let length = Int(PQgetlength(result, Int32(r), Int32(c)))
                    let value = PQgetvalue(result, Int32(r), Int32(c))!
                    row.append(String(decoding: UnsafeRawBufferPointer(start: value, count: length), as: UTF8.self))
                }
            }
            rows.append(row)
        }
        let affected = PQcmdTuples(result).map { Int(String(cString: $0)) ?? 0 } ?? 0
        return PostgresRows(columns: columns, rows: rows, affectedRows: affected)
    }

    private static func field(_ result: OpaquePointer, _ code: Character) -> String? {
        guard let value = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
        return String(cString: value)
    }

    private static func trimmed(_ message: UnsafePointer<CChar>?) -> String {
        guard let message else { return "" }
        return String(cString: message).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `postgres://user:secret@host/db` -> `postgres://user@host/db`.
    static func redact(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].lastIndex(of: "@") else {
            return url.replacingOccurrences(of: #"password=\S+"#, with: "password=***", options: .regularExpression)
        }
        let userinfo = url[scheme.upperBound..<at]
        guard let colon = userinfo.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + String(url[at...])
    }
}

@available(*, unavailable)
extension PostgresConnection: Sendable {}

/// Whether a server answers at all, without credentials (`PQping`): for readiness checks.
public func postgresIsReachable(url: String) -> Bool {
    var conninfo = url
    if (url.hasPrefix("postgres://") || url.hasPrefix("postgresql://")) && !url.contains("connect_timeout") {
        conninfo += (url.contains("?") ? "&" : "?") + "connect_timeout=2"
    }
    return PQping(conninfo) == PQPING_OK
}
