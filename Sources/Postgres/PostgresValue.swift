import Foundation

/// A value sent as one text-format parameter of a parameterized statement (`$1`, `$2`, ...).
public protocol PostgresEncodable {
    var postgresText: String { get }
}

extension String: PostgresEncodable { public var postgresText: String { self } }
extension Substring: PostgresEncodable { public var postgresText: String { String(self) } }
extension Int: PostgresEncodable { public var postgresText: String { String(self) } }
extension Int64: PostgresEncodable { public var postgresText: String { String(self) } }
extension Int32: PostgresEncodable { public var postgresText: String { String(self) } }
extension Bool: PostgresEncodable { public var postgresText: String { self ? "t" : "f" } }
extension Double: PostgresEncodable {
    public var postgresText: String {
        if isNaN { return "NaN" }
        if isInfinite { return self > 0 ? "Infinity" : "-Infinity" }
        return "\(self)"
    }
}

/// Unix seconds sent as `timestamptz`: pass `PostgresTimestamp(unixSeconds)` and cast with `to_timestamp($n)`,
/// or use this value whose text is ISO 8601 in UTC.
public struct PostgresTimestamp: PostgresEncodable, Sendable, Equatable {
    public var unixSeconds: Double
    public init(_ unixSeconds: Double) { self.unixSeconds = unixSeconds }
    public var postgresText: String {
        let whole = floor(unixSeconds)
        var t = time_t(whole)
        var parts = tm()
        gmtime_r(&t, &parts)
        let micros = Int(((unixSeconds - whole) * 1_000_000).rounded())
        return String(
            format: "%04d-%02d-%02d %02d:%02d:%02d.%06d+00", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
            Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), min(micros, 999_999))
    }
}

/// Rows of one result, copied out of libpq's `PGresult` as text (or nil for SQL NULL).
public struct PostgresRows: Sendable, Equatable {
    public var columns: [String]
    public var rows: [[String?]]
    /// Rows affected by an INSERT/UPDATE/DELETE (`PQcmdTuples`), 0 otherwise.
    public var affectedRows: Int

    public init(columns: [String], rows: [[String?]], affectedRows: Int) {
        self.columns = columns
        self.rows = rows
        self.affectedRows = affectedRows
    }

    public var count: Int { rows.count }
    public var isEmpty: Bool { rows.isEmpty }

    public func index(of column: String) -> Int? { columns.firstIndex(of: column) }

    /// One row as a column-name-addressable value.
    public subscript(row: Int) -> PostgresRow { PostgresRow(columns: columns, values: rows[row]) }

    /// The first column of the first row, as text.
    public var scalar: String? { rows.first?.first ?? nil }
}

public struct PostgresRow: Sendable, Equatable {
    public var columns: [String]
    public var values: [String?]

    public subscript(_ column: String) -> String? {
        guard let i = columns.firstIndex(of: column) else { return nil }
        return values[i]
    }

    public func int(_ column: String) -> Int? { self[column].flatMap { Int($0) } }
    public func double(_ column: String) -> Double? { self[column].flatMap { Double($0) } }
    public func bool(_ column: String) -> Bool? { self[column].map { $0 == "t" || $0 == "true" } }
}
