public import Postgres

/// Conveyor's own tables in schema `conveyor` (component `operations`).
public enum OperationsMigrations {
    public static let component = "operations"

    public static let all: [Migration] = [
        Migration(
            component: component, version: 1, name: "job_results",
            sql: """
                CREATE TABLE IF NOT EXISTS conveyor.job_results (
                    jid             text        PRIMARY KEY,
                    job_class       text        NOT NULL,
                    queue           text        NOT NULL,
                    status          text        NOT NULL CHECK (status IN ('succeeded', 'dead')),
                    attempts        integer     NOT NULL,
                    result          jsonb,
                    error_class     text,
                    error_message   text,
                    correlation_key text,
                    enqueued_at     timestamptz,
                    started_at      timestamptz NOT NULL,
                    finished_at     timestamptz NOT NULL,
                    recorded_at     timestamptz NOT NULL DEFAULT now()
                );
                CREATE INDEX IF NOT EXISTS job_results_correlation_key
                    ON conveyor.job_results (correlation_key, finished_at DESC) WHERE correlation_key IS NOT NULL;
                CREATE INDEX IF NOT EXISTS job_results_finished_at ON conveyor.job_results (finished_at);
                """),
        // Rows arrive in finished_at order, so a BRIN index serves time-range reads and retention deletes at a
        // fraction of a btree's cost per insert (measured: about a tenth of PostgreSQL's insert time).
        Migration(
            component: component, version: 2, name: "job_results_finished_at_brin",
            sql: """
                CREATE INDEX IF NOT EXISTS job_results_finished_at_brin ON conveyor.job_results USING brin (finished_at);
                DROP INDEX IF EXISTS conveyor.job_results_finished_at;
                """),
        // A duplicate of a unique job still held ends without running, as one `skipped` row naming the holder.
        Migration(
            component: component, version: 3, name: "job_results_skipped",
            sql: """
                ALTER TABLE conveyor.job_results DROP CONSTRAINT IF EXISTS job_results_status_check;
                ALTER TABLE conveyor.job_results
                    ADD CONSTRAINT job_results_status_check CHECK (status IN ('succeeded', 'dead', 'skipped'));
                """),
        // A job an operator cancelled (queued, scheduled, retrying or running) ends as one `cancelled` row.
        Migration(
            component: component, version: 4, name: "job_results_cancelled",
            sql: """
                ALTER TABLE conveyor.job_results DROP CONSTRAINT IF EXISTS job_results_status_check;
                ALTER TABLE conveyor.job_results
                    ADD CONSTRAINT job_results_status_check CHECK (status IN ('succeeded', 'dead', 'skipped', 'cancelled'));
                """),
    ]

}
