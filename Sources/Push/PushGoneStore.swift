public import Postgres
import Foundation

/// The push family's table (component `push` in `conveyor migrate`).
public enum PushMigrations {
    public static let component = "push"

    public static let all: [Migration] = [
        Migration(
            component: component, version: 1, name: "push_gone",
            sql: """
                CREATE TABLE IF NOT EXISTS conveyor.push_gone (
                    jid             text        PRIMARY KEY,
                    subscription_id text,
                    endpoint        text        NOT NULL,
                    status          integer     NOT NULL,
                    gone_at         timestamptz NOT NULL DEFAULT now()
                );
                CREATE INDEX IF NOT EXISTS push_gone_gone_at ON conveyor.push_gone (gone_at);
                CREATE INDEX IF NOT EXISTS push_gone_subscription_id ON conveyor.push_gone (subscription_id);
                """),
    ]
}

/// Where gone subscriptions (404/410) are recorded for the API to delete its rows.
public protocol PushGoneStore: Sendable {
    func recordGone(jid: String, subscriptionID: String?, endpoint: String, status: Int) async throws
}

/// `conveyor.push_gone` in PostgreSQL; one row per job (a retried job records once). The table is created on
/// first use if `conveyor migrate` has not run yet.
public final class PostgresPushGoneStore: PushGoneStore {
    private let database: PostgresThread
    private let schema = SchemaOnce(PushMigrations.all)

    public init(database: PostgresThread) {
        self.database = database
    }

    public convenience init(url: String) {
        self.init(database: PostgresThread(url: url, name: "conveyor-push-gone"))
    }

    public func recordGone(jid: String, subscriptionID: String?, endpoint: String, status: Int) async throws {
        try await schema.ensure(on: database)
        try await database.run { connection in
            _ = try connection.query(
                """
                INSERT INTO conveyor.push_gone (jid, subscription_id, endpoint, status) VALUES ($1, $2, $3, $4)
                ON CONFLICT (jid) DO NOTHING
                """, [jid, subscriptionID, endpoint, status])
        }
    }
}
