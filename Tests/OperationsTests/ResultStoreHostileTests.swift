import ConveyorCore
import Foundation
@testable import Operations
import Postgres
import Testing

/// Outcomes of hostile jobs reach PostgreSQL whatever their envelope held: extreme timestamps, NUL in the
/// correlation key (an `upload_id`) or in the result, through both write paths; lookups with such keys answer
/// "nothing" instead of a PostgreSQL error.
@Suite(.enabled(if: TestEnv.databaseURL != nil, "needs DATABASE_URL"))
struct ResultStoreHostileTests {
    init() throws {
        _ = try Migrator(migrations: OperationsMigrations.all).migrate(try PostgresConnection(url: TestEnv.databaseURL!))
    }

    private func outcome(_ jid: String, enqueuedAt: Double?, startedAt: Double = 1_763_780_001, args: JSONValue, result: JSONValue?) -> JobOutcome {
        JobOutcome(
            jid: jid, jobClass: "media.ingest", queue: "media", status: .succeeded, attempts: 1, result: result, failure: nil,
            enqueuedAt: enqueuedAt, startedAt: startedAt, finishedAt: 1_763_780_002,
            payload: (["class": "media.ingest", "args": [args], "queue": "media", "jid": .string(jid)] as JSONValue).objectValue!)
    }

    @Test(arguments: ["copy", "upsert"])
    func extremeTimesAndNULsAreStoredNotRetried(path: String) throws {
        let p = TestEnv.unique("hostile-\(path)")
        var config = ResultStore.Configuration()
        config.writers = 1
        let store = ResultStore(databaseURL: TestEnv.databaseURL!, configuration: config)
        defer { store.shutdown(timeout: 5) }
        let times: [(String, Double?)] = [
            ("nanos", 1_796_603_000_123_456_789), ("huge", 1e308), ("negative-huge", -1e308), ("inf", .infinity),
            ("nan", .nan), ("year-10000", 253_402_300_800), ("fine", 1_763_780_000.5),
        ]
        var records: [JobResultRecord] = []
        for (name, t) in times {
            records.append(try #require(JobResultRecord(outcome("\(p)-\(name)", enqueuedAt: t, args: ["upload_id": .string("u-\(name)")], result: ["ok": true]))))
        }
        records.append(try #require(JobResultRecord(
            outcome("\(p)-start", enqueuedAt: nil, startedAt: .infinity, args: ["upload_id": "u-start"], result: nil))))
        let nulKey = "up\u{0}load-\(p)"
        records.append(try #require(JobResultRecord(
            outcome("\(p)-nul", enqueuedAt: 1, args: ["upload_id": .string(nulKey)], result: ["s": "a\u{0}b", "t": "c\\u0000d"]))))
        if path == "copy" {
            for r in records { store.record(r) }
            #expect(store.drain(timeout: 20))
            #expect(store.currentStats.refused == 0)
        } else {
            try ResultStore.upsert(records, on: try PostgresConnection(url: TestEnv.databaseURL!))
        }

        let c = try PostgresConnection(url: TestEnv.databaseURL!)
        for (name, t) in times {
            let row = try #require(try JobResultQueries.byJID("\(p)-\(name)", on: c), "\(name) was not stored")
            #expect(row.status == "succeeded")
            if name == "fine" { #expect(row.enqueuedAt == t) } else { #expect(row.enqueuedAt == nil, "\(name): \(String(describing: row.enqueuedAt))") }
        }
        #expect(try JobResultQueries.byJID("\(p)-start", on: c)?.startedAt == JobResultCopy.timestampRange.upperBound)
        let nul = try #require(try JobResultQueries.byJID("\(p)-nul", on: c))
        #expect(nul.correlationKey == "up\u{FFFD}load-\(p)")
        let result = try JSONValue(parsing: try #require(nul.result))
        #expect(result["s"] == "a\u{FFFD}b")
        #expect(result["t"] == "c\\u0000d", "an escaped backslash before u0000 is text, kept as it is")
        // Looking a NUL key up answers nothing (no PostgreSQL error), the stored form finds the row.
        #expect(try JobResultQueries.byCorrelationKey(nulKey, on: c).isEmpty)
        #expect(try JobResultQueries.byJID("a\u{0}b", on: c) == nil)
        #expect(try JobResultQueries.byCorrelationKey("up\u{FFFD}load-\(p)", limit: Int.max, on: c).count == 1)
        #expect(try JobResultQueries.byCorrelationKey("up\u{FFFD}load-\(p)", limit: Int.min, on: c).count == 1)
        _ = try JobResultQueries.finishedByQueue(lastSeconds: Int.max, on: c)
        _ = try JobResultQueries.finishedByQueue(lastSeconds: Int.min, on: c)
    }

    @Test func timestampFormattingNeverTraps() {
        for seconds in [Double.infinity, -.infinity, .nan, 1e308, -1e308, 1_796_603_000_123_456_789, .greatestFiniteMagnitude] {
            var out: [UInt8] = []
            JobResultCopy.timestamp(seconds, &out)
            #expect(out.count == 29 || out.count == 30, "\(seconds) -> \(String(decoding: out, as: UTF8.self))")
        }
    }
}
