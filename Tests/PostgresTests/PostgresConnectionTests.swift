import Foundation
import Postgres
import Testing

@Suite(.enabled(if: TestDatabase.url != nil, "needs DATABASE_URL"))
struct PostgresConnectionTests {
    @Test func parameterizedQueryRoundTripsValuesAndNulls() throws {
        let c = try TestDatabase.connect()
        let rows = try c.query(
            "SELECT $1::text AS s, $2::int AS i, $3::float8 AS d, $4::bool AS b, $5::text AS n, $6::text AS q",
            ["héllo", 42, 1.5, true, nil, "it's \"quoted\"; DROP TABLE x"])
        #expect(rows.columns == ["s", "i", "d", "b", "n", "q"])
        #expect(rows[0]["s"] == "héllo")
        #expect(rows[0].int("i") == 42)
        #expect(rows[0].double("d") == 1.5)
        #expect(rows[0].bool("b") == true)
        #expect(rows[0]["n"] == nil)
        #expect(rows[0]["q"] == "it's \"quoted\"; DROP TABLE x")
    }

    @Test func serverErrorCarriesSQLStateAndMessage() throws {
        let c = try TestDatabase.connect()
        let table = TestDatabase.uniqueName("t")
        try c.query("CREATE TEMP TABLE \(table) (id int PRIMARY KEY)")
        try c.query("INSERT INTO \(table) VALUES ($1)", [1])
        do {
            try c.query("INSERT INTO \(table) VALUES ($1)", [1])
            Issue.record("duplicate key was accepted")
        } catch {
            #expect(error.sqlState == "23505")
            #expect(error.kind == .query)
            #expect(error.message.contains("duplicate key"))
            #expect(!error.isConnectionError)
        }
        // The connection stays usable after a statement error.
        #expect(try c.query("SELECT count(*) FROM \(table)").scalar == "1")
    }

    @Test func transactionRollsBackOnError() throws {
        let c = try TestDatabase.connect()
        let table = TestDatabase.uniqueName("t")
        try c.query("CREATE TEMP TABLE \(table) (id int)")
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try c.transaction { tx in
                try tx.query("INSERT INTO \(table) VALUES (1)")
                throw Boom()
            }
        }
        #expect(try c.query("SELECT count(*) FROM \(table)").scalar == "0")
        try c.transaction { tx in try tx.query("INSERT INTO \(table) VALUES (2)") }
        #expect(try c.query("SELECT count(*) FROM \(table)").scalar == "1")
    }

    @Test func affectedRowsAndTimestamps() throws {
        let c = try TestDatabase.connect()
        let rows = try c.query("SELECT extract(epoch FROM $1::timestamptz)::float8 AS e", [PostgresTimestamp(1_763_780_000.125)])
        #expect(abs((rows[0].double("e") ?? 0) - 1_763_780_000.125) < 0.000_01)
        let table = TestDatabase.uniqueName("t")
        try c.query("CREATE TEMP TABLE \(table) (id int)")
        let inserted = try c.query("INSERT INTO \(table) SELECT generate_series(1, 5)")
        #expect(inserted.affectedRows == 5)
    }

    @Test func unreachableServerIsAConnectionErrorWithoutPassword() throws {
        do {
            _ = try PostgresConnection(url: "postgres://someone:s3cret@127.0.0.1:1/nothing", connectTimeout: 2)
            Issue.record("connected to port 1")
        } catch {
            #expect(error.kind == .connection)
            #expect(error.isConnectionError)
            #expect(!error.description.contains("s3cret"))
        }
        #expect(!postgresIsReachable(url: "postgres://127.0.0.1:1/nothing"))
        #expect(postgresIsReachable(url: TestDatabase.url!))
    }

    @Test func brokenConnectionIsReplacedByThePostgresThread() async throws {
        let thread = PostgresThread(url: TestDatabase.url!, name: "test-pg")
        defer { thread.stop() }
        let pid = try await thread.run { c in try c.query("SELECT pg_backend_pid()").scalar! }
        // Kill our own backend from another connection: the next call must fail, the one after must reconnect.
        let admin = try TestDatabase.connect()
        #expect(try admin.query("SELECT pg_terminate_backend($1::int)", [pid]).scalar == "t")
        await #expect(throws: PostgresError.self) {
            try await thread.run { c in try c.query("SELECT 1").scalar }
        }
        let again = try await thread.run { c in try c.query("SELECT pg_backend_pid()").scalar! }
        #expect(again != pid)
    }
}
