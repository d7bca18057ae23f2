public import Postgres
import ConveyorCore
import Foundation

/// The mail ledger's table (component `mail` in `conveyor migrate`).
public enum MailMigrations {
    public static let component = "mail"

    public static let all: [Migration] = [
        Migration(
            component: component, version: 1, name: "mail_ledger",
            sql: """
                CREATE TABLE IF NOT EXISTS conveyor.mail_ledger (
                    idempotency_key text        PRIMARY KEY,
                    message_id      text        NOT NULL,
                    jid             text        NOT NULL,
                    recipient       text        NOT NULL,
                    status          text        NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
                    attempts        integer     NOT NULL DEFAULT 1,
                    reply           text,
                    last_error      text,
                    claimed_at      timestamptz NOT NULL,
                    sent_at         timestamptz,
                    updated_at      timestamptz NOT NULL DEFAULT now()
                );
                CREATE INDEX IF NOT EXISTS mail_ledger_updated_at ON conveyor.mail_ledger (updated_at);
                """),
    ]

}

/// The idempotency ledger in PostgreSQL (`conveyor.mail_ledger`), shared by every worker process.
///
/// `claim` is one atomic upsert: it takes a new key, a key whose last attempt failed, a key held by the same jid
/// (a retry of the job after a crash), or a key whose claim is older than the lease; otherwise it reports the
/// row as sent or in flight. The table is created on first use if `conveyor migrate` has not run yet.
public final class PostgresMailLedger: MailLedger, Sendable {
    private let database: PostgresThread
    private let schema = SchemaOnce(MailMigrations.all)

    public init(database: PostgresThread) {
        self.database = database
    }

    public convenience init(url: String) {
        self.init(database: PostgresThread(url: url, name: "conveyor-mail-ledger"))
    }

    public func claim(key: String, messageID: String, jid: String, recipient: String, lease: Duration) async throws -> MailLedgerDecision {
        try await schema.ensure(on: database)
        let leaseSeconds = Int(lease.components.seconds)
        return try await database.run { connection -> MailLedgerDecision in
            let taken = try connection.query(
                """
                INSERT INTO conveyor.mail_ledger AS l (idempotency_key, message_id, jid, recipient, status, claimed_at)
                VALUES ($1, $2, $3, $4, 'sending', now())
                ON CONFLICT (idempotency_key) DO UPDATE
                   SET status = 'sending', jid = EXCLUDED.jid, recipient = EXCLUDED.recipient, attempts = l.attempts + 1,
                       claimed_at = now(), updated_at = now(), last_error = NULL
                 WHERE l.status = 'failed'
                    OR (l.status = 'sending' AND (l.jid = EXCLUDED.jid OR l.claimed_at < now() - make_interval(secs => $5)))
                RETURNING status
                """, [key, messageID, jid, recipient, leaseSeconds])
            if !taken.isEmpty { return .send }
            let rows = try connection.query(
                "SELECT status, jid, message_id, coalesce(reply, ''), extract(epoch FROM coalesce(sent_at, updated_at))::text FROM conveyor.mail_ledger WHERE idempotency_key = $1",
                [key])
            guard let row = rows.rows.first else { return .send }
            if row[0] == "sent" {
                return .alreadySent(messageID: row[2] ?? messageID, reply: row[3] ?? "", sentAt: Date(timeIntervalSince1970: Double(row[4] ?? "") ?? 0))
            }
            return .inFlight(heldBy: row[1] ?? "?")
        }
    }

    public func markSent(key: String, jid: String, reply: String) async throws {
        try await database.run { connection in
            _ = try connection.query(
                "UPDATE conveyor.mail_ledger SET status = 'sent', reply = $3, sent_at = now(), updated_at = now() WHERE idempotency_key = $1 AND jid = $2",
                [key, jid, reply])
        }
    }

    public func release(key: String, jid: String, reason: String) async throws {
        try await database.run { connection in
            _ = try connection.query(
                "UPDATE conveyor.mail_ledger SET status = 'failed', last_error = $3, updated_at = now() WHERE idempotency_key = $1 AND jid = $2 AND status = 'sending'",
                [key, jid, String(reason.prefix(2000))])
        }
    }
}
