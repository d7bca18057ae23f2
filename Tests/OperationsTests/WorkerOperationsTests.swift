import ConveyorCore
import SidekiqQueue
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

@Suite(.enabled(if: TestEnv.hasServers, "needs REDIS_URL and DATABASE_URL"))
struct WorkerOperationsOutageTests {
    @Test func databaseDownAtStartIsMigratedAndWrittenWhenItComesBack() async throws {
        // A database of its own, reached through a proxy that is down when the worker starts.
        let admin = try PostgresConnection(url: TestEnv.databaseURL!)
        let name = "conveyor_t_\(getpid())_\(UInt32.random(in: 0...UInt32.max))"
        try admin.query("CREATE DATABASE \(name)")
        var base = URLComponents(string: TestEnv.databaseURL!)!
        let proxy = try TCPProxy(target: base.port ?? 5432)
        let port = proxy.port
        proxy.kill()
        base.port = port
        base.path = "/" + name
        let jid = TestEnv.unique("down")
        do {
            let ops = try WorkerOperations(
                redis: try RedisEndpoint(url: TestEnv.redisURL!), keys: QueueKeys(namespace: TestEnv.unique("wo")),
                metricsAddress: nil, environment: ["DATABASE_URL": base.string!])
            ops.results?.jobFinished(
                JobOutcome(jid: jid, jobClass: "noop", queue: "default", status: .dead, attempts: 3, result: nil,
                           failure: .permanent("Boom", "no"), enqueuedAt: nil, startedAt: 1, finishedAt: 2, payload: JSONObject()))
            #expect(ops.results?.drain(timeout: 0.5) == false)
            let restarted = try TCPProxy(target: proxy.target, port: port)
            #expect(ops.results?.drain(timeout: 20) == true)
            ops.shutdown(timeout: 1)
            restarted.kill()
        }
        var direct = URLComponents(string: TestEnv.databaseURL!)!
        direct.path = "/" + name
        do {
            let c = try PostgresConnection(url: direct.string!)
            #expect(try JobResultQueries.byJID(jid, on: c)?.errorClass == "Boom")
        }
        try admin.query("DROP DATABASE \(name) WITH (FORCE)")
    }
}
