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
            throw failure(result, conn: conn, sql: sql)
        }
    }

    /// The error a failed result carries. Reads its fields now: they are gone once the result is cleared.
    private func failure(_ result: OpaquePointer, conn: OpaquePointer, sql: String) -> PostgresError {
        let status = PQresultStatus(result)
        let sqlState = Self.field(result, "C")
        let primary = Self.field(result, "M")
        let detail = Self.field(result, "D")
        let broken = PQstatus(conn) != CONNECTION_OK
        let message = primary ?? Self.trimmed(PQresultErrorMessage(result))
        return PostgresError(
            kind: broken || sqlState == nil && status == PGRES_FATAL_ERROR && primary == nil ? .connection : .query,
            sqlState: sqlState, message: message.isEmpty ? "\(redactedURL): connection lost" : message,
            detail: detail, statement: sql)
    }

    /// Runs `COPY ... FROM STDIN` and sends `data` (in the COPY format the statement names) as its input, in one
    /// statement: all rows or none. Returns how many rows were copied.
    @discardableResult
    public func copyIn(_ sql: String, _ data: [UInt8]) throws(PostgresError) -> Int {
        guard let conn else { throw PostgresError(kind: .connection, message: "\(redactedURL): connection is closed") }
        guard let start = PQexec(conn, sql) else {
            throw PostgresError(kind: .connection, message: "\(redactedURL): \(Self.trimmed(PQerrorMessage(conn)))", statement: sql)
        }
        guard PQresultStatus(start) == PGRES_COPY_IN else {
            defer { PQclear(start) }
            throw failure(start, conn: conn, sql: sql)
        }
        PQclear(start)
        // A blocking connection: PQputCopyData returns 1 once the chunk is queued or sent, -1 on failure.
        let sent = data.withUnsafeBytes { bytes -> Bool in
            guard let base = bytes.baseAddress?.assumingMemoryBound(to: CChar.self) else { return true }
            var offset = 0
            while offset < bytes.count {
                let n = min(1 << 20, bytes.count - offset)
                if PQputCopyData(conn, base + offset, Int32(n)) != 1 { return false }
                offset += n
            }
            return true
        }
        let ended = PQputCopyEnd(conn, sent ? nil : "conveyor: sending COPY data failed") == 1
        var error: PostgresError?
        var copied = 0
        while let result = PQgetResult(conn) {
            if PQresultStatus(result) == PGRES_COMMAND_OK {
                copied = PQcmdTuples(result).map { Int(String(cString: $0)) ?? 0 } ?? 0
            } else if error == nil {
                error = failure(result, conn: conn, sql: sql)
            }
            PQclear(result)
        }
        if let error { throw error }
        if !sent || !ended {
            throw PostgresError(kind: .connection, message: "\(redactedURL): \(Self.trimmed(PQerrorMessage(conn)))", statement: sql)
        }
        return copied
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
