import ConveyorCore
import Foundation
import Operations
import Postgres
import Redis
import Testing

@Suite(.enabled(if: TestEnv.hasServers, "needs REDIS_URL and DATABASE_URL"))
struct WorkerOperationsTests {
    @Test func startsEverythingRecordsOutcomesAndDrainsOnShutdown() throws {
        let keys = QueueKeys(namespace: TestEnv.unique("wo"))
        let ops = try WorkerOperations(
            redis: try RedisEndpoint(url: TestEnv.redisURL!), keys: keys, metricsAddress: "127.0.0.1:0",
            environment: ["DATABASE_URL": TestEnv.databaseURL!, "CONVEYOR_RESULTS_FLUSH_MS": "1000"])
        let port = try #require(ops.server?.port)
        #expect(port > 0)
        #expect(ops.observers.count == 2)
        let jid = TestEnv.unique("wo")
        for observer in ops.observers {
            observer.jobStarted(jid: jid, jobClass: "noop", queue: "default")
            observer.jobFinished(
                JobOutcome(jid: jid, jobClass: "noop", queue: "default", status: .succeeded, attempts: 1, result: ["ok": true],
                           failure: nil, enqueuedAt: 1, startedAt: 2, finishedAt: 3, payload: JSONObject()))
        }
        // The flush interval is long: shutdown must still write the buffered outcome before returning.
        ops.shutdown(timeout: 10)
        let c = try PostgresConnection(url: TestEnv.databaseURL!)
        #expect(try JobResultQueries.byJID(jid, on: c)?.status == "succeeded")
        let text = String(decoding: ops.metrics.render(), as: UTF8.self)
        #expect(text.contains(#"conveyor_jobs_total{class="noop",outcome="succeeded",queue="default"} 1"#))
        #expect(text.contains("conveyor_result_writes_total 1"))
    }

    @Test func withoutADatabaseOnlyMetricsObserve() throws {
        let ops = try WorkerOperations(
            redis: try RedisEndpoint(url: TestEnv.redisURL!), keys: QueueKeys(namespace: TestEnv.unique("wo")),
            metricsAddress: nil, environment: [:])
        defer { ops.shutdown(timeout: 1) }
        #expect(ops.results == nil)
        #expect(ops.server == nil)
        #expect(ops.observers.count == 1)
    }
}
