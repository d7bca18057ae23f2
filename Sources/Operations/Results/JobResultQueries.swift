public import ConveyorCore
public import Postgres

/// Reads `conveyor.job_results`: what an API does to learn a job's outcome (the same SQL is in docs/operations.md).
public enum JobResultQueries {
    static let columns = """
        jid, job_class, queue, status, attempts, result::text AS result, error_class, error_message, correlation_key,
        extract(epoch FROM enqueued_at)::float8 AS enqueued_at, extract(epoch FROM started_at)::float8 AS started_at,
        extract(epoch FROM finished_at)::float8 AS finished_at
        """

    /// Longest key looked up: no stored jid or correlation key is longer (`JobResultRecord` cuts them).
    public static let maximumKeyBytes = 65_536

    /// Whether `key` can be a stored jid or correlation key: PostgreSQL text holds no NUL (the store writes none),
    /// and none is longer than `maximumKeyBytes`. A key that cannot be stored matches nothing, without a query.
    static func isStorable(_ key: String) -> Bool {
        key.utf8.count <= maximumKeyBytes && !key.utf8.contains(0)
    }

    /// The outcome of one job, or nil if it has not finished (or its row is still buffered).
    public static func byJID(_ jid: String, on connection: PostgresConnection) throws -> JobResultRecord? {
        guard isStorable(jid) else { return nil }
        return try connection.query("SELECT \(columns) FROM conveyor.job_results WHERE jid = $1", [jid]).rows.first
            .map { record(PostgresRow(columns: columnNames, values: $0)) }
    }

    /// Every finished job that carried this correlation key, newest first; `limit` is kept within 1...10,000.
    public static func byCorrelationKey(_ key: String, limit: Int = 100, on connection: PostgresConnection) throws -> [JobResultRecord] {
        guard isStorable(key) else { return [] }
        return try connection.query(
            "SELECT \(columns) FROM conveyor.job_results WHERE correlation_key = $1 ORDER BY finished_at DESC LIMIT $2",
            [key, min(10_000, max(1, limit))]
        ).rows.map { record(PostgresRow(columns: columnNames, values: $0)) }
    }

    /// Jobs finished per queue in the last `seconds` (kept within 1 s...10 years: succeeded, dead), for the
    /// dashboard's per-queue rate: a range read on the `finished_at` BRIN index.
    public static func finishedByQueue(lastSeconds seconds: Int, on connection: PostgresConnection) throws -> [String: (succeeded: Int, dead: Int)] {
        let rows = try connection.query(
            """
            SELECT queue, count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'dead')
              FROM conveyor.job_results WHERE finished_at > now() - make_interval(secs => $1) GROUP BY queue
            """, [min(Int(OperatorInput.maximumDuration), max(1, seconds))]).rows
        var out: [String: (succeeded: Int, dead: Int)] = [:]
        for r in rows { out[r[0] ?? ""] = (Int(r[1] ?? "") ?? 0, Int(r[2] ?? "") ?? 0) }
        return out
    }

    private static let columnNames = [
        "jid", "job_class", "queue", "status", "attempts", "result", "error_class", "error_message", "correlation_key",
        "enqueued_at", "started_at", "finished_at",
    ]

    private static func record(_ row: PostgresRow) -> JobResultRecord {
        JobResultRecord(
            jid: row["jid"] ?? "", jobClass: row["job_class"] ?? "", queue: row["queue"] ?? "", status: row["status"] ?? "",
            attempts: row.int("attempts") ?? 0, result: row["result"], errorClass: row["error_class"],
            errorMessage: row["error_message"], correlationKey: row["correlation_key"], enqueuedAt: row.double("enqueued_at"),
            startedAt: row.double("started_at") ?? 0, finishedAt: row.double("finished_at") ?? 0)
    }
}
