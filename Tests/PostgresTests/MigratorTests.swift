import Foundation
import Postgres
import Testing

@Suite(.enabled(if: TestDatabase.url != nil, "needs DATABASE_URL"))
struct MigratorTests {
    /// A component name per test so parallel tests and earlier runs do not see each other's rows.
    private func migrations(_ component: String, table: String) -> [Migration] {
        [
            Migration(component: component, version: 1, name: "create", sql: "CREATE TABLE conveyor.\(table) (id int)"),
            Migration(component: component, version: 2, name: "add column", sql: "ALTER TABLE conveyor.\(table) ADD COLUMN note text"),
        ]
    }

    @Test func appliesOnceInOrderAndIsIdempotent() throws {
        let component = TestDatabase.uniqueName("test")
        let table = TestDatabase.uniqueName("m")
        let c = try TestDatabase.connect()
        let first = try Migrator(migrations: migrations(component, table: table).reversed()).migrate(c)
        #expect(first.applied.map(\.version) == [1, 2])
        let second = try Migrator(migrations: migrations(component, table: table)).migrate(c)
        #expect(second.applied.isEmpty)
        try c.query("INSERT INTO conveyor.\(table) (id, note) VALUES (1, 'x')")
        let applied = try Migrator.appliedVersions(c).filter { $0.component == component }
        #expect(applied.map(\.version) == [1, 2])
        try c.query("DROP TABLE conveyor.\(table)")
    }

    @Test func failedMigrationLeavesNoTraceAndNamesItself() throws {
        let component = TestDatabase.uniqueName("test")
        let table = TestDatabase.uniqueName("m")
        let c = try TestDatabase.connect()
        let list = [
            Migration(component: component, version: 1, name: "ok", sql: "CREATE TABLE conveyor.\(table) (id int)"),
            Migration(component: component, version: 2, name: "broken",
                      sql: "ALTER TABLE conveyor.\(table) ADD COLUMN a int; ALTER TABLE conveyor.no_such_table_here ADD COLUMN b int"),
        ]
        do {
            _ = try Migrator(migrations: list).migrate(c)
            Issue.record("broken migration applied")
        } catch let error as PostgresError {
            #expect(error.message.contains("broken"))
            #expect(error.sqlState == "42P01")
        }
        let applied = try Migrator.appliedVersions(c).filter { $0.component == component }
        #expect(applied.map(\.version) == [1])
        // Version 2's first statement was rolled back with it.
        let columns = try c.query(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'conveyor' AND table_name = $1", [table])
        #expect(columns.scalar == "1")
        try c.query("DROP TABLE conveyor.\(table)")
    }

    @Test func concurrentMigratorsApplyEachMigrationOnce() async throws {
        let component = TestDatabase.uniqueName("test")
        let table = TestDatabase.uniqueName("m")
        // A slow first migration widens the window in which the others would race without the lock.
        let list = [
            Migration(component: component, version: 1, name: "slow create",
                      sql: "SELECT pg_sleep(0.2); CREATE TABLE conveyor.\(table) (id int)"),
            Migration(component: component, version: 2, name: "insert", sql: "INSERT INTO conveyor.\(table) VALUES (1)"),
        ]
        let url = TestDatabase.url!
        let counts = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<4 {
                let thread = PostgresThread(url: url, name: "migrate-\(i)")
                group.addTask {
                    defer { thread.stop() }
                    return try await thread.run { c in try Migrator(migrations: list).migrate(c).applied.count }
                }
            }
            var all: [Int] = []
            for try await n in group { all.append(n) }
            return all
        }
        #expect(counts.reduce(0, +) == 2)
        let c = try TestDatabase.connect()
        #expect(try c.query("SELECT count(*) FROM conveyor.\(table)").scalar == "1")
        try c.query("DROP TABLE conveyor.\(table)")
    }

    @Test func catalogKeepsFirstOfDuplicateVersions() {
        let catalog = MigrationCatalog()
        catalog.add(component: "mail", [(1, "ledger", "SELECT 1"), (2, "index", "SELECT 2")])
        catalog.add(component: "mail", [(1, "other", "SELECT 3")])
        catalog.add(component: "summaries", [(1, "summaries", "SELECT 4")])
        #expect(catalog.all.count == 3)
        #expect(catalog.all.first { $0.component == "mail" && $0.version == 1 }?.name == "ledger")
    }
}
