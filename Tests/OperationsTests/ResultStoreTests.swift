import ConveyorCore
import Foundation
import Operations
import Postgres
import Testing

@Suite(.enabled(if: TestEnv.databaseURL != nil, "needs DATABASE_URL"))
struct ResultStoreTests {
    init() throws {
        let c = try PostgresConnection(url: TestEnv.databaseURL!)
        _ = try Migrator(migrations: OperationsMigrations.all).migrate(c)
    }

    private func outcome(_ jid: String, status: JobStatus, args: JSONValue = ["upload_id": "u1"], finishedAt: Double = 1_763_780_002) -> JobOutcome {
        JobOutcome(
            jid: jid, jobClass: "image.thumbnail", queue: "media", status: status, attempts: status == .dead ? 3 : 1,
            result: status == .succeeded ? ["width": 320, "key": "thumbs/a.webp"] : nil,
            failure: status == .dead ? .permanent("SourceMissing", "uploads/a.jpg: no such object") : nil,
            enqueuedAt: 1_763_780_000.5, startedAt: 1_763_780_001.25, finishedAt: finishedAt,
            payload: (["class": "image.thumbnail", "args": [args], "queue": "media", "jid": .string(jid)] as JSONValue).objectValue!)
    }

    private func count(prefix: String) throws -> Int {
        let c = try PostgresConnection(url: TestEnv.databaseURL!)
        return Int(try c.query("SELECT count(*) FROM conveyor.job_results WHERE jid LIKE $1", [prefix + "%"]).scalar ?? "0") ?? 0
    }

    @Test func recordsTerminalOutcomesAndReadsThemByJIDAndCorrelationKey() throws {
        let p = TestEnv.unique("r")
        let key = TestEnv.unique("upload")
        let store = ResultStore(databaseURL: TestEnv.databaseURL!)
        defer { store.shutdown(timeout: 5) }
        store.jobFinished(outcome("\(p)-ok", status: .succeeded, args: ["upload_id": .string(key)]))
        store.jobFinished(outcome("\(p)-dead", status: .dead, args: ["correlation_id": .string(key), "upload_id": "other"]))
        store.jobFinished(outcome("\(p)-retry", status: .retrying))
        store.jobFinished(outcome("\(p)-requeued", status: .requeued))
        #expect(store.drain(timeout: 10))

        let c = try PostgresConnection(url: TestEnv.databaseURL!)
        let ok = try #require(try JobResultQueries.byJID("\(p)-ok", on: c))
        #expect(ok.status == "succeeded")
        // jsonb keeps values, not key order.
        let result = try JSONValue(parsing: try #require(ok.result))
        #expect(result["width"] == 320)
        #expect(result["key"] == "thumbs/a.webp")
        #expect(ok.correlationKey == key)
        #expect(ok.enqueuedAt == 1_763_780_000.5)
        #expect(ok.startedAt == 1_763_780_001.25)
        let dead = try #require(try JobResultQueries.byJID("\(p)-dead", on: c))
        #expect(dead.status == "dead")
        #expect(dead.attempts == 3)
        #expect(dead.errorClass == "SourceMissing")
        #expect(dead.errorMessage == "uploads/a.jpg: no such object")
        #expect(dead.result == nil)
        #expect(try JobResultQueries.byCorrelationKey(key, on: c).map(\.jid).sorted() == ["\(p)-dead", "\(p)-ok"])
        #expect(try JobResultQueries.byJID("\(p)-retry", on: c) == nil)
        #expect(try JobResultQueries.byJID("\(p)-requeued", on: c) == nil)
        #expect(store.currentStats.written == 2)
    }

    @Test func laterOutcomeReplacesEarlierAndNeverTheReverse() throws {
        let jid = TestEnv.unique("r")
        let store = ResultStore(databaseURL: TestEnv.databaseURL!)
        defer { store.shutdown(timeout: 5) }
        store.jobFinished(outcome(jid, status: .dead, finishedAt: 1_763_780_010))
        #expect(store.drain(timeout: 10))
        // Replayed from the dead set, then succeeded; a stale copy of the dead outcome arrives after it,
        // in the same batch as a duplicate.
        store.jobFinished(outcome(jid, status: .succeeded, finishedAt: 1_763_780_100))
        store.jobFinished(outcome(jid, status: .dead, finishedAt: 1_763_780_010))
        #expect(store.drain(timeout: 10))
        let c = try PostgresConnection(url: TestEnv.databaseURL!)
        #expect(try JobResultQueries.byJID(jid, on: c)?.status == "succeeded")
    }

    @Test func outcomesSurviveADatabaseOutage() async throws {
        let p = TestEnv.unique("outage")
        let pgPort = Int(URLComponents(string: TestEnv.databaseURL!)!.port ?? 5432)
        let proxy = try TCPProxy(target: pgPort)
        defer { proxy.kill() }
        var url = URLComponents(string: TestEnv.databaseURL!)!
        url.port = proxy.port
        var config = ResultStore.Configuration()
        config.batchSize = 20
        config.maximumBackoff = 0.2
        let store = ResultStore(databaseURL: url.string!, configuration: config)
        defer { store.shutdown(timeout: 5) }

        for i in 0..<50 { store.jobFinished(outcome("\(p)-a\(i)", status: .succeeded)) }
        #expect(store.drain(timeout: 10))
        #expect(try count(prefix: p) == 50)

        proxy.kill()
        for i in 0..<100 { store.jobFinished(outcome("\(p)-b\(i)", status: i % 10 == 0 ? .dead : .succeeded)) }
        // Wait (bounded) for the store to notice the outage.
        let noticed = Date(timeIntervalSinceNow: 10)
        while !store.currentStats.failing && Date() < noticed { try await Task.sleep(for: .milliseconds(20)) }
        let during = store.currentStats
        #expect(during.failing)
        #expect(during.writeErrors > 0)
        #expect(during.backlog == 100)
        #expect(during.dropped == 0)
        #expect(!store.drain(timeout: 0.3))

        try proxy.start()
        #expect(store.drain(timeout: 20))
        #expect(try count(prefix: p) == 150)
        let after = store.currentStats
        #expect(!after.failing)
        #expect(after.backlog == 0)
        #expect(after.written == 150)
    }

    @Test func awkwardTextRoundTripsThroughTheArrayParameters() throws {
        let jid = TestEnv.unique("r") + #"-"q"\{x},NULL"#
        let message = #"a "quoted" \ back\slash, {brace} NULL é 💥"#
        let store = ResultStore(databaseURL: TestEnv.databaseURL!)
        defer { store.shutdown(timeout: 5) }
        store.record(JobResultRecord(
            jid: jid, jobClass: "mail.send", queue: "mail", status: "dead", attempts: 2, result: nil, errorClass: "SMTPError",
            errorMessage: message, correlationKey: "NULL", enqueuedAt: nil, startedAt: 5, finishedAt: 6))
        store.record(JobResultRecord(
            jid: jid + "-ok", jobClass: "mail.send", queue: "mail", status: "succeeded", attempts: 1,
            result: #"{"text":"say \"hi\" \\ {}"}"#, errorClass: nil, errorMessage: nil, correlationKey: nil,
            enqueuedAt: 4.5, startedAt: 5, finishedAt: 6))
        #expect(store.drain(timeout: 10))
        let c = try PostgresConnection(url: TestEnv.databaseURL!)
        let dead = try #require(try JobResultQueries.byJID(jid, on: c))
        #expect(dead.errorMessage == message)
        #expect(dead.correlationKey == "NULL")
        #expect(dead.enqueuedAt == nil)
        let ok = try #require(try JobResultQueries.byJID(jid + "-ok", on: c))
        #expect(try JSONValue(parsing: ok.result ?? "")["text"] == #"say "hi" \ {}"#)
        #expect(ok.enqueuedAt == 4.5)
    }

    @Test func fullBufferDropsTheOldestAndCountsThem() throws {
        var config = ResultStore.Configuration()
        config.capacity = 10
        config.batchSize = 5
        let store = ResultStore(databaseURL: "postgres://conveyor@127.0.0.1:1/closed", configuration: config)
        defer { store.shutdown(timeout: 0) }
        for i in 0..<25 { store.jobFinished(outcome("full-\(i)", status: .succeeded)) }
        let stats = store.currentStats
        #expect(stats.backlog == 10)
        #expect(stats.dropped == 15)
        #expect(stats.written == 0)
    }

    @Test func correlationKeyPrefersCorrelationIDThenUploadThenPost() {
        func key(_ args: JSONValue, _ extra: [(String, JSONValue)] = []) -> String? {
            var payload: JSONObject = (["args": [args]] as JSONValue).objectValue!
            for (k, v) in extra { payload[k] = v }
            return JobResultRecord.correlationKey(of: payload)
        }
        #expect(key(["post_id": 7, "upload_id": "u9"]) == "u9")
        #expect(key(["post_id": 7]) == "7")
        #expect(key(["correlation_id": "c1", "upload_id": "u9"]) == "c1")
        #expect(key(["source": "x"]) == nil)
        #expect(key(["source": "x"], [("correlation_id", "env")]) == "env")
    }
}
