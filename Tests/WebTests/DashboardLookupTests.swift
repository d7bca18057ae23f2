import ConveyorCore
import Foundation
import Operations
import Postgres
import Redis
import SidekiqQueue
import Summaries
import Testing
import Media
import Web

@Suite(.enabled(if: TestEnv.hasServers, "needs REDIS_URL and DATABASE_URL"))
struct DashboardLookupTests {
    static func migrate() throws -> PostgresConnection {
        let db = try PostgresConnection(url: TestEnv.databaseURL!)
        _ = try db.query("CREATE SCHEMA IF NOT EXISTS conveyor")
        _ = try Migrator(migrations: OperationsMigrations.all + MediaMigrations.all + PostgresSummaryStore.migrations).migrate(db)
        return db
    }

    @Test func aJobIsFoundByJidWithItsResultRow() async throws {
        let s = try Session()
        let db = try Self.migrate()
        let jid = String(TestEnv.unique("j").suffix(24))
        _ = try db.query(
            """
            INSERT INTO conveyor.job_results (jid, job_class, queue, status, attempts, result, started_at, finished_at)
            VALUES ($1, 'image.thumbnail', 'media', 'succeeded', 2, '{"variants":[{"key":"a<b>.webp"}]}', now(), now())
            """, [jid])
        let page = await s.get("/lookup?q=\(jid)").text
        #expect(page.contains("conveyor.job_results") && page.contains("succeeded") && page.contains("image.thumbnail"))
        #expect(page.contains("a&lt;b&gt;.webp"))
        #expect(await s.get("/lookup?q=nothing-\(jid)").text.contains("Nothing found"))
    }

    @Test func anUploadShowsItsVariantsAsImagesServedOnlyIfTheRowNamesThem() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("media")).path
        try FileManager.default.createDirectory(atPath: root + "/uploads", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        // A real 1x1 PNG.
        let png = Data(base64Encoded: "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")!
        try png.write(to: URL(fileURLWithPath: root + "/uploads/u1.320.png"))
        try Data("secret".utf8).write(to: URL(fileURLWithPath: root + "/uploads/other.png"))
        let s = try Session(mediaRoot: root)
        let db = try Self.migrate()
        let id = TestEnv.unique("upload")
        _ = try db.query(
            """
            INSERT INTO conveyor.media_uploads (upload_id, status, kind, detected_type, source, width, height, variants, jid)
            VALUES ($1, 'ready', 'image', 'png', 'uploads/u1.png', 1, 1, '[{"key":"uploads/u1.320.png","width":320}]', 'cccccccccccccccccccccccc')
            """, [id])
        let page = await s.get("/lookup?q=\(id)").text
        #expect(page.contains("<img src=\"/media?upload=\(FormCoding.encode(id))&amp;key=uploads%2Fu1.320.png\""))
        #expect(page.contains("ready"))
        let image = await s.get("/media?upload=\(FormCoding.encode(id))&key=uploads%2Fu1.320.png")
        #expect(image.status == 200 && image.header("Content-Type") == "image/png" && Data(image.body) == png)
        #expect(await s.get("/media?upload=\(FormCoding.encode(id))&key=uploads%2Fother.png").status == 404)
        #expect(await s.get("/media?upload=\(FormCoding.encode(id))&key=..%2F..%2Fetc%2Fpasswd").status == 404)

        // A row whose job named a bucket is read from that bucket only: this local root has none, and serves nothing
        // of its own under that row's keys.
        let elsewhere = TestEnv.unique("upload")
        _ = try db.query(
            """
            INSERT INTO conveyor.media_uploads (upload_id, status, kind, detected_type, source, width, height, variants, jid, details)
            VALUES ($1, 'ready', 'image', 'png', 'uploads/u1.png', 1, 1, '[{"key":"uploads/u1.320.png","width":320}]', 'dddddddddddddddddddddddd',
                    '{"store": "s3://tenant-bucket"}')
            """, [elsewhere])
        #expect(await s.get("/media?upload=\(FormCoding.encode(elsewhere))&key=uploads%2Fu1.320.png").status == 404)
    }

    @Test func aPostsSummaryShowsProviderAndWhetherItWasDegraded() async throws {
        let s = try Session()
        let db = try Self.migrate()
        let post = TestEnv.unique("post")
        _ = try db.query(
            "INSERT INTO conveyor.summaries (post_id, summary, provider, model, degraded) VALUES ($1, 'A <short> summary.', 'extractive', 'builtin', true)",
            [post])
        _ = try db.query(
            """
            INSERT INTO conveyor.job_results (jid, job_class, queue, status, attempts, result, correlation_key, started_at, finished_at)
            VALUES ($1, 'llm.summarize', 'llm', 'succeeded', 1, '{"cached":true,"degraded":true}', $2, now(), now())
            """, [String(TestEnv.unique("s").suffix(24)), post])
        let page = await s.get("/lookup?q=\(post)").text
        #expect(page.contains("extractive") && page.contains("degraded") && page.contains("A &lt;short&gt; summary."))
        #expect(page.contains("yes (latest job answered from the cache)"))
        #expect(page.contains("correlation key \(post)"))
    }
}

@Suite(.enabled(if: TestEnv.hasServers, "needs REDIS_URL and DATABASE_URL"))
struct DashboardWorkerMetricsTests {
    /// The overview reads breakers and the result backlog from workers' real `/metrics` endpoints.
    @Test func breakersAndBacklogComeFromTheWorkersMetricsEndpoints() async throws {
        let metrics = ConveyorMetrics()
        metrics.addExporter {
            """
            # HELP conveyor_llm_breaker_state 1 for each provider breaker's current state.
            # TYPE conveyor_llm_breaker_state gauge
            conveyor_llm_breaker_state{provider="openai",state="closed"} 0
            conveyor_llm_breaker_state{provider="openai",state="open"} 1
            conveyor_llm_breaker_state{provider="anthropic",state="closed"} 1
            conveyor_llm_breaker_state{provider="anthropic",state="open"} 0
            # TYPE conveyor_llm_breaker_open_seconds gauge
            conveyor_llm_breaker_open_seconds{provider="openai"} 420
            conveyor_llm_breaker_open_seconds{provider="anthropic"} 0

            """
        }
        let server = try MetricsServer(address: "127.0.0.1:0", metrics: metrics) { (true, "ok") }
        defer { server.stop() }
        let keys = QueueKeys(namespace: TestEnv.unique("web"))
        let configuration = try WebConfiguration(metricsURLs: ["http://127.0.0.1:\(server.port)/metrics", "http://127.0.0.1:1/metrics"])
        let dashboard = Dashboard(configuration: configuration, redis: try TestEnv.endpoint(), keys: keys, databaseURL: nil, mediaStore: nil)
        defer { dashboard.close() }
        let page = await dashboard.respond(WebRequest(method: "GET", path: "/", headers: ["Host": "127.0.0.1:9292"])).text
        #expect(page.contains("<td>openai</td><td><span class=\"tag bad\">open</span></td><td class=\"num\">7 min</td>"))
        #expect(page.contains("<td>anthropic</td><td><span class=\"tag\">closed</span></td>"))
        #expect(page.contains("Buffered in worker memory: 0"))
        #expect(page.contains("Unreachable: http://127.0.0.1:1/metrics"))
    }
}
