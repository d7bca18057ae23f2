import ConveyorCore
import SidekiqQueue
import Foundation
@testable import Operations
import Postgres
import Redis
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

    /// PostgreSQL reached through a proxy the test can take down and bring back.
    private func proxiedDatabase() throws -> (TCPProxy, String) {
        let proxy = try TCPProxy(target: Int(URLComponents(string: TestEnv.databaseURL!)!.port ?? 5432))
        var url = URLComponents(string: TestEnv.databaseURL!)!
        url.port = proxy.port
        return (proxy, url.string!)
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
        let (proxy, url) = try proxiedDatabase()
        defer { proxy.kill() }
        var config = ResultStore.Configuration()
        config.batchSize = 20
        config.maximumBackoff = 0.2
        let store = ResultStore(databaseURL: url, configuration: config)
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

    /// A worker's outcomes are in its Redis journal before the store sees them: when a long outage fills the
    /// buffer, the oldest leave memory but not Redis, and are read back from the journal and written once
    /// PostgreSQL is back; the journal ends empty.
    @Test func aFullBufferLosesNoJournaledOutcome() async throws {
        let p = TestEnv.unique("deferred")
        let (proxy, url) = try proxiedDatabase()
        defer { proxy.kill() }
        var config = ResultStore.Configuration()
        config.batchSize = 10
        config.capacity = 25
        config.maximumBackoff = 0.2
        let keys = QueueKeys(namespace: p)
        let redis = try TestEnv.redis()
        let store = ResultStore(
            databaseURL: url, configuration: config,
            journal: .init(redis: try RedisEndpoint(url: TestEnv.redisURL!), keys: keys, identity: "w1", recoveryInterval: 0.1))
        defer { store.shutdown(timeout: 5) }
        let metrics = ConveyorMetrics()
        metrics.observe(store)
        let journalKey = keys.outcomes("w1")
        proxy.kill()
        // Four batches of 20 outcomes, each written to the journal as the acknowledger writes it, then handed over.
        for batch in 0..<4 {
            var entries: [JobTransitions.Move.JournalEntry] = []
            var blob: [UInt8] = []
            for i in 0..<20 {
                guard let kept = store.journalValue(for: outcome("\(p)-\(batch)-\(i)", status: .succeeded)) else { continue }
                blob += kept.value
                entries.append(.init(field: "a\(batch)", value: kept.value, record: kept.record))
            }
            _ = try redis.command("HSET", journalKey, "a\(batch)", blob).check()
            store.journaled(key: journalKey, entries: entries)
        }
        let during = store.currentStats
        #expect(during.deferred >= 80 - 25, "the buffer let go of what did not fit: \(during)")
        #expect(during.dropped == 0, "nothing journaled is dropped")
        try proxy.start()
        let deadline = Date(timeIntervalSinceNow: 30)
        while (try count(prefix: p)) < 80 && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(try count(prefix: p) == 80)
        while (try redis.command("EXISTS", journalKey).int ?? 1) == 1 && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(try redis.command("EXISTS", journalKey).int == 0, "every stored batch left the journal")
        #expect(store.currentStats.recovered >= during.deferred)
        let text = String(decoding: metrics.render(), as: UTF8.self)
        #expect(text.contains("conveyor_result_writes_deferred_total \(during.deferred)"), "\(text)")
        #expect(text.contains("conveyor_result_writes_recovered_total \(store.currentStats.recovered)"))
        #expect(text.contains("conveyor_result_writes_dropped_total 0"))
    }

    @Test(arguments: ["copy", "upsert"])
    func awkwardTextRoundTrips(path: String) throws {
        // Tabs, newlines and backslashes matter to COPY; quotes, braces and NULL to array literals.
        let jid = TestEnv.unique("r") + #"-"q"\{x},NULL"# + "\t\n\r"
        let message = #"a "quoted" \ back\slash, {brace} NULL é 💥"# + "\ttab\nline\r\\N"
        let store = ResultStore(databaseURL: TestEnv.databaseURL!)
        defer { store.shutdown(timeout: 5) }
        // The upsert path is the one a jid that is already stored takes.
        let earlier = path == "upsert" ? 1.0 : nil
        for finishedAt in [earlier, 6.0].compactMap({ $0 }) {
            store.record(JobResultRecord(
                jid: jid, jobClass: "mail.send", queue: "mail", status: "dead", attempts: 2, result: nil, errorClass: "SMTPError",
                errorMessage: message, correlationKey: "NULL", enqueuedAt: nil, startedAt: 5, finishedAt: finishedAt))
            store.record(JobResultRecord(
                jid: jid + "-ok", jobClass: "mail.send", queue: "mail", status: "succeeded", attempts: 1,
                result: #"{"text":"say \"hi\" \\ {}\t\n"}"#, errorClass: nil, errorMessage: nil, correlationKey: nil,
                enqueuedAt: 4.5, startedAt: 5, finishedAt: finishedAt))
            #expect(store.drain(timeout: 10))
        }
        let c = try PostgresConnection(url: TestEnv.databaseURL!)
        let dead = try #require(try JobResultQueries.byJID(jid, on: c))
        #expect(dead.errorMessage == message)
        #expect(dead.correlationKey == "NULL")
        #expect(dead.enqueuedAt == nil)
        #expect(dead.finishedAt == 6)
        let ok = try #require(try JobResultQueries.byJID(jid + "-ok", on: c))
        #expect(try JSONValue(parsing: ok.result ?? "")["text"] == "say \"hi\" \\ {}\t\n")
        #expect(ok.enqueuedAt == 4.5)
        #expect(store.currentStats.written == (path == "upsert" ? 4 : 2))
    }

    @Test func timestampsMatchPostgreSQLsToTimestamp() throws {
        let c = try PostgresConnection(url: TestEnv.databaseURL!)
        // The epoch, before it, a leap day, microsecond rounding, a second boundary, far ahead.
        for seconds in [0, -1.5, 951_782_400.000001, 1_763_780_001.25, 1_763_780_001.9999996, 1_763_780_059.999_999, 4_102_444_799.5, 253_402_300_799] {
            var text: [UInt8] = []
            JobResultCopy.timestamp(seconds, &text)
            let same = try c.query("SELECT $1::timestamptz = to_timestamp($2::float8)", [String(decoding: text, as: UTF8.self), String(seconds)]).scalar
            #expect(same == "t", "\(seconds) -> \(String(decoding: text, as: UTF8.self))")
        }
    }

    @Test func aRowPostgreSQLRefusesCostsOnlyItself() throws {
        let p = TestEnv.unique("refused")
        var config = ResultStore.Configuration()
        config.writers = 1
        let store = ResultStore(databaseURL: TestEnv.databaseURL!, configuration: config)
        defer { store.shutdown(timeout: 5) }
        func row(_ suffix: String, status: String = "succeeded", result: String? = "{}", message: String? = nil) -> JobResultRecord {
            JobResultRecord(jid: "\(p)-\(suffix)", jobClass: "image.thumbnail", queue: "media", status: status, attempts: 1,
                            result: result, errorClass: nil, errorMessage: message, correlationKey: nil, enqueuedAt: nil,
                            startedAt: 5, finishedAt: 6)
        }
        for i in 0..<10 { store.record(row("ok-\(i)")) }
        // PostgreSQL text cannot hold NUL: it is stored as U+FFFD.
        store.record(row("nul", result: nil, message: "bad\u{0}name"))
        // jsonb refuses \u0000: the escape is written as \ufffd. Text that is not JSON: the outcome is stored
        // without its result.
        store.record(row("json-nul", result: #"{"s":"a\u0000b"}"#))
        store.record(row("not-json", result: "{not json"))
        // A status the table's CHECK refuses: not storable at all; refused, counted, logged.
        store.record(row("bad-status", status: "exploded"))
        for i in 10..<20 { store.record(row("ok-\(i)")) }
        #expect(store.drain(timeout: 20))

        #expect(try count(prefix: p) == 23)
        let c = try PostgresConnection(url: TestEnv.databaseURL!)
        #expect(try JobResultQueries.byJID("\(p)-nul", on: c)?.errorMessage == "bad\u{FFFD}name")
        let jsonNUL = try #require(try JobResultQueries.byJID("\(p)-json-nul", on: c))
        #expect(jsonNUL.status == "succeeded")
        #expect(try JSONValue(parsing: try #require(jsonNUL.result))["s"] == "a\u{FFFD}b")
        #expect(try JobResultQueries.byJID("\(p)-not-json", on: c)?.result == nil)
        #expect(try JobResultQueries.byJID("\(p)-bad-status", on: c) == nil)
        #expect(try JobResultQueries.byJID("\(p)-ok-19", on: c)?.result == "{}")
        let stats = store.currentStats
        #expect(stats.refused == 1)
        #expect(stats.written == 23)
        #expect(stats.backlog == 0)
        #expect(!stats.failing)
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

/// The journal keeps each outcome as its COPY line; recovery reads it back.
struct JournalLineTests {
    @Test func aCopyLineReadsBackAsTheSameRecord() throws {
        let full = JobResultRecord(
            jid: "j1", jobClass: "image.thumbnail", queue: "media", status: "dead", attempts: 3, result: #"{"a":"tab\there\\n"}"#,
            errorClass: "Boom", errorMessage: "line one\nline two\r\\ back", correlationKey: "u-1", enqueuedAt: 1_764_620_000.25,
            startedAt: 1_764_620_001.5, finishedAt: 1_764_620_002.123456)
        #expect(JobResultRecord(copyLine: full.copyLine) == full)
        let sparse = JobResultRecord(
            jid: "j2", jobClass: "noop", queue: "default", status: "succeeded", attempts: 1, result: nil, errorClass: nil,
            errorMessage: nil, correlationKey: nil, enqueuedAt: nil, startedAt: 0.000001, finishedAt: 86_400)
        #expect(JobResultRecord(copyLine: sparse.copyLine) == sparse)
        // A literal "\N" text is not NULL.
        var backslashN = sparse
        backslashN.errorMessage = #"\N"#
        #expect(JobResultRecord(copyLine: backslashN.copyLine)?.errorMessage == #"\N"#)
        #expect(JobResultRecord(copyLine: Array("not\ta\tline".utf8)) == nil)
    }
}
