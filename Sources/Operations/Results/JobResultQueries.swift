public import Postgres

/// Reads `conveyor.job_results`: what an API does to learn a job's outcome (the same SQL is in docs/operations.md).
public enum JobResultQueries {
    static let columns = """
        jid, job_class, queue, status, attempts, result::text AS result, error_class, error_message, correlation_key,
        extract(epoch FROM enqueued_at)::float8 AS enqueued_at, extract(epoch FROM started_at)::float8 AS started_at,
        extract(epoch FROM finished_at)::float8 AS finished_at
        """

    /// The outcome of one job, or nil if it has not finished (or its row is still buffered).
    public static func byJID(_ jid: String, on connection: PostgresConnection) throws -> JobResultRecord? {
        try connection.query("SELECT \(columns) FROM conveyor.job_results WHERE jid = $1", [jid]).rows.first
            .map { record(PostgresRow(columns: columnNames, values: $0)) }
    }

    /// Every finished job that carried this correlation key, newest first.
    public static func byCorrelationKey(_ key: String, limit: Int = 100, on connection: PostgresConnection) throws -> [JobResultRecord] {
        try connection.query(
            "SELECT \(columns) FROM conveyor.job_results WHERE correlation_key = $1 ORDER BY finished_at DESC LIMIT $2",
            [key, limit]
        ).rows.map { record(PostgresRow(columns: columnNames, values: $0)) }
    }

    /// Jobs finished per queue in the last `seconds` (succeeded, dead), for the dashboard's per-queue rate: a
    /// range read on the `finished_at` BRIN index.
    public static func finishedByQueue(lastSeconds seconds: Int, on connection: PostgresConnection) throws -> [String: (succeeded: Int, dead: Int)] {
        let rows = try connection.query(
            """
            SELECT queue, count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'dead')
              FROM conveyor.job_results WHERE finished_at > now() - make_interval(secs => $1) GROUP BY queue
            """, [seconds]).rows
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
