import Foundation

/// One versioned schema change. Versions are per component (`operations`, `mail`, `summaries`), so each
/// family numbers its own migrations from 1 without coordinating with the others.
public struct Migration: Sendable, Equatable {
    public var component: String
    public var version: Int
    public var name: String
    /// One or more SQL statements, run in one transaction. Write them against schema `conveyor`
    /// (`CREATE TABLE conveyor.mail_ledger ...`).
    public var sql: String

    public init(component: String, version: Int, name: String, sql: String) {
        self.component = component
        self.version = version
        self.name = name
        self.sql = sql
    }
}

/// A job family (or any part) that owns tables in schema `conveyor`: the composition root gathers every
/// declaration for `conveyor migrate` and the worker's start-up migration, without building the family.
public protocol DeclaresMigrations {
    static var migrations: [Migration] { get }
}

/// A set of migrations without duplicate (component, version) pairs, for callers that gather them from several
/// places. The executable lists every family's migrations statically (`Composition.migrations`).
public final class MigrationCatalog: @unchecked Sendable {
    private let lock = NSLock()
    private var migrations: [Migration] = []

    public init(_ migrations: [Migration] = []) { self.migrations = migrations }

    /// Adds a component's migrations; adding the same (component, version) twice keeps the first.
    public func add(_ more: [Migration]) {
        lock.lock()
        defer { lock.unlock() }
        for m in more where !migrations.contains(where: { $0.component == m.component && $0.version == m.version }) {
            migrations.append(m)
        }
    }

    /// Adds `(version, name, sql)` triples for one component.
    public func add(component: String, _ list: [(version: Int, name: String, sql: String)]) {
        add(list.map { Migration(component: component, version: $0.version, name: $0.name, sql: $0.sql) })
    }

    public var all: [Migration] {
        lock.lock()
        defer { lock.unlock() }
        return migrations
    }
}

/// What `Migrator.migrate` did.
public struct MigrationReport: Sendable, Equatable {
    public var applied: [Migration]
    public var alreadyApplied: Int
}

/// Applies migrations to schema `conveyor`, each once, in (component, version) order.
///
/// Safe from several processes at once: the whole run holds a session-level `pg_advisory_lock`, so a second
/// process waits, then finds everything applied. Each migration runs in its own transaction with its row in
/// `conveyor.schema_migrations`, so a failure leaves the earlier ones applied and this one not at all.
public struct Migrator: Sendable {
    /// The advisory lock key: "conveyor" as a 64-bit number, shared by every Conveyor process.
    public static let lockKey: Int64 = 0x636F_6E76_6579_6F72

    public var migrations: [Migration]

    public init(migrations: [Migration]) {
        self.migrations = migrations.sorted { ($0.component, $0.version) < ($1.component, $1.version) }
    }

    public func migrate(_ connection: PostgresConnection) throws -> MigrationReport {
        try validate()
        try connection.query("SELECT pg_advisory_lock($1)", [Self.lockKey])
        defer { _ = try? connection.query("SELECT pg_advisory_unlock($1)", [Self.lockKey]) }
        try connection.execute(script: """
            CREATE SCHEMA IF NOT EXISTS conveyor;
            CREATE TABLE IF NOT EXISTS conveyor.schema_migrations (
                component  text        NOT NULL,
                version    integer     NOT NULL,
                name       text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (component, version)
            );
            """)
        let rows = try connection.query("SELECT component, version FROM conveyor.schema_migrations")
        var done = Set<String>()
        for row in rows.rows { done.insert("\(row[0] ?? "")#\(row[1] ?? "")") }
        var applied: [Migration] = []
        for m in migrations where !done.contains("\(m.component)#\(m.version)") {
            do {
                try connection.transaction { c in
                    try c.execute(script: m.sql)
                    try c.query(
                        "INSERT INTO conveyor.schema_migrations (component, version, name) VALUES ($1, $2, $3)",
                        [m.component, m.version, m.name])
                }
            } catch let error as PostgresError {
                var e = error
                e.message = "migration \(m.component) \(m.version) (\(m.name)) failed: \(e.message)"
                throw e
            }
            applied.append(m)
        }
        return MigrationReport(applied: applied, alreadyApplied: migrations.count - applied.count)
    }

    /// Rows of `conveyor.schema_migrations`, or an empty list before the first migration.
    public static func appliedVersions(_ connection: PostgresConnection) throws -> [(component: String, version: Int, name: String)] {
        let exists = try connection.query("SELECT to_regclass('conveyor.schema_migrations') IS NOT NULL").scalar
        guard exists == "t" else { return [] }
        return try connection.query("SELECT component, version, name FROM conveyor.schema_migrations ORDER BY 1, 2").rows
            .map { ($0[0] ?? "", Int($0[1] ?? "") ?? 0, $0[2] ?? "") }
    }

    private func validate() throws(PostgresError) {
        var seen = Set<String>()
        for m in migrations {
            guard m.version > 0, !m.component.isEmpty else {
                throw PostgresError(kind: .invalidInput, message: "migration \(m.component) \(m.version): versions start at 1")
            }
            guard seen.insert("\(m.component)#\(m.version)").inserted else {
                throw PostgresError(kind: .invalidInput, message: "migration \(m.component) \(m.version) is listed twice")
            }
        }
    }
}

/// A store's own migrations, applied once per process before its first statement: a worker may start before
/// anyone ran `conveyor migrate`, and its tables must exist when the first job writes.
public final class SchemaOnce: @unchecked Sendable {
    private let migrator: Migrator
    private let lock = NSLock()
    private var done = false

    public init(_ migrations: [Migration]) {
        migrator = Migrator(migrations: migrations)
    }

    /// Migrates on the store's connection thread the first time; later calls return at once.
    public func ensure(on database: PostgresThread) async throws {
        if lock.withLock({ done }) { return }
        let migrator = migrator
        _ = try await database.run { connection in try migrator.migrate(connection) }
        lock.withLock { done = true }
    }
}
