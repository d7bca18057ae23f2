public import Postgres

/// Summaries by post id in `conveyor.summaries` (migration `summaries` v1, in `Composition.migrations`: applied by
/// `conveyor migrate` and at worker start).
public final class PostgresSummaryStore: SummaryStore {
    let database: PostgresThread

    public static let migrations: [Migration] = [
        Migration(component: "summaries", version: 1, name: "summaries by post", sql: """
            CREATE TABLE conveyor.summaries (
                post_id         text        PRIMARY KEY,
                summary         text        NOT NULL,
                provider        text        NOT NULL,
                model           text        NOT NULL,
                degraded        boolean     NOT NULL,
                truncated_input boolean     NOT NULL DEFAULT false,
                input_tokens    integer,
                output_tokens   integer,
                created_at      timestamptz NOT NULL DEFAULT now(),
                updated_at      timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX summaries_degraded ON conveyor.summaries (updated_at) WHERE degraded;
            """),
    ]

    public init(database: PostgresThread) {
        self.database = database
    }

    public func save(_ result: SummaryResult) async throws {
        // A degraded summary only fills a gap or replaces another degraded one.
        _ = try await database.run { connection in
            let parameters: [(any PostgresEncodable)?] = [
                result.postID, result.summary, result.provider, result.model, result.degraded, result.truncatedInput,
                result.inputTokens, result.outputTokens,
            ]
            return try connection.query("""
                INSERT INTO conveyor.summaries AS s
                    (post_id, summary, provider, model, degraded, truncated_input, input_tokens, output_tokens)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                ON CONFLICT (post_id) DO UPDATE SET
                    summary = EXCLUDED.summary, provider = EXCLUDED.provider, model = EXCLUDED.model,
                    degraded = EXCLUDED.degraded, truncated_input = EXCLUDED.truncated_input,
                    input_tokens = EXCLUDED.input_tokens, output_tokens = EXCLUDED.output_tokens, updated_at = now()
                WHERE s.degraded OR NOT EXCLUDED.degraded
                """, parameters).affectedRows
        }
    }

    public func summary(postID: String) async throws -> SummaryResult? {
        let rows = try await database.run { connection in
            try connection.query(
                "SELECT post_id, summary, provider, model, degraded, truncated_input, input_tokens, output_tokens FROM conveyor.summaries WHERE post_id = $1",
                [postID])
        }
        guard !rows.isEmpty else { return nil }
        let row = rows[0]
        return SummaryResult(
            postID: row["post_id"] ?? postID, summary: row["summary"] ?? "", provider: row["provider"] ?? "",
            model: row["model"] ?? "", cached: false, degraded: row.bool("degraded") ?? false,
            truncatedInput: row.bool("truncated_input") ?? false, inputTokens: row.int("input_tokens"), outputTokens: row.int("output_tokens"))
    }
}
