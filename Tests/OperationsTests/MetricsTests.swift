import ConveyorCore
import SidekiqQueue
import Foundation
import Operations
import Redis
import Testing

@Suite(.enabled(if: TestEnv.hasServers, "needs REDIS_URL and DATABASE_URL"))
struct MetricsTests {
    /// Runs a command and returns its exit code and stdout; `input` goes to its stdin.
    private func run(_ arguments: [String], input: [UInt8]? = nil) throws -> (code: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        if let input { inp.fileHandleForWriting.write(Data(input)) }
        try inp.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    private func get(_ port: Int, _ path: String) throws -> (status: Int, body: String) {
        let r = try run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "http://127.0.0.1:\(port)\(path)"])
        let lines = r.out.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    private func outcome(_ cls: String, _ status: JobStatus, duration: Double, jid: String? = nil) -> JobOutcome {
        JobOutcome(
            jid: jid ?? TestEnv.unique("j"), jobClass: cls, queue: "media", status: status, attempts: 1, result: nil,
            failure: nil, enqueuedAt: 1, startedAt: 10, finishedAt: 10 + duration, payload: JSONObject())
    }

    /// Fills a private namespace with two queues, set entries and one live process.
    private func seed(_ keys: QueueKeys) throws {
        let r = try TestEnv.redis()
        let now = Date().timeIntervalSince1970
        let old = #"{"class":"noop","args":[{}],"queue":"media","jid":"a1","enqueued_at":\#(now - 42)}"#
        let newer = #"{"class":"noop","args":[{}],"queue":"media","jid":"a2","enqueued_at":\#(Int((now - 1) * 1000))}"#
        _ = try r.pipeline([
            RedisCommand("SADD", keys.queues, "media", "mail"),
            RedisCommand("LPUSH", keys.queue("media"), old),
            RedisCommand("LPUSH", keys.queue("media"), newer),
            RedisCommand("ZADD", keys.dead, "1", "d1", "2", "d2", "3", "d3"),
            RedisCommand("ZADD", keys.retry, "1", "r1"),
            RedisCommand("SET", keys.processed, "17"),
            RedisCommand("SADD", keys.processes, "host:1:abc", "host:2:gone"),
            RedisCommand("HSET", keys.process("host:1:abc"), "info", #"{"hostname":"host","pid":1,"concurrency":10,"queues":["media"]}"#,
                         "busy", "4", "beat", "\(now)", "quiet", "false"),
        ])
    }

    @Test func snapshotReadsDepthLatencySetsAndLiveProcesses() throws {
        let keys = QueueKeys(namespace: TestEnv.unique("m"))
        try seed(keys)
        let s = try QueueSnapshot.read(try TestEnv.redis(), keys: keys)
        #expect(s.queues.map(\.name) == ["mail", "media"])
        let media = try #require(s.queues.first { $0.name == "media" })
        #expect(media.depth == 2)
        #expect(media.latency > 41 && media.latency < 60)
        #expect(s.queues.first { $0.name == "mail" }?.latency == 0)
        #expect(s.dead == 3)
        #expect(s.retries == 1)
        #expect(s.scheduled == 0)
        #expect(s.processed == 17)
        // host:2:gone has no hash (its heartbeat expired): not live.
        #expect(s.processes.map(\.identity) == ["host:1:abc"])
        #expect(s.busy == 4)
        #expect(s.processes.first?.concurrency == 10)
    }

    @Test func endpointServesValidPrometheusTextAndHealth() throws {
        let keys = QueueKeys(namespace: TestEnv.unique("m"))
        try seed(keys)
        let metrics = ConveyorMetrics()
        metrics.jobStarted(jid: "x", jobClass: "image.thumbnail", queue: "media")
        metrics.jobFinished(outcome("image.thumbnail", .succeeded, duration: 0.2))
        metrics.jobFinished(outcome("image.thumbnail", .retrying, duration: 0.1))
        metrics.jobFinished(outcome("mail.send", .dead, duration: 3))
        metrics.jobsReaped(count: 3, requeued: 2, dead: 1)
        metrics.update(from: try QueueSnapshot.read(try TestEnv.redis(), keys: keys))
        let store = ResultStore(databaseURL: TestEnv.databaseURL!)
        defer { store.shutdown(timeout: 1) }
        metrics.observe(store)

        let server = try MetricsServer(address: "127.0.0.1:0", metrics: metrics) {
            Readiness.check(redis: try! RedisEndpoint(url: TestEnv.redisURL!), databaseURL: TestEnv.databaseURL)
        }
        defer { server.stop() }
        let page = try get(server.port, "/metrics")
        #expect(page.status == 200)
        for needle in [
            #"conveyor_jobs_total{class="image.thumbnail",outcome="succeeded",queue="media"} 1"#,
            #"conveyor_jobs_total{class="mail.send",outcome="dead",queue="media"} 1"#,
            #"conveyor_job_retries_total{class="image.thumbnail"} 1"#,
            #"conveyor_job_duration_seconds_bucket{class="mail.send",le="5.0"} 1"#,
            #"conveyor_queue_depth{queue="media"} 2"#,
            "conveyor_dead_jobs 3",
            "conveyor_retry_jobs 1",
            "conveyor_processes 1",
            "conveyor_jobs_reaped_total 3",
            "conveyor_poison_pills_total 1",
            "conveyor_result_write_backlog 0",
            #"conveyor_jobs_in_flight{class="image.thumbnail"} 0"#,
        ] {
            #expect(page.body.contains(needle), "missing \(needle)")
        }
        let check = try run(["promtool", "check", "metrics"], input: Array(page.body.utf8))
        #expect(check.code == 0, "promtool: \(check.out) \(check.err)")

        let health = try get(server.port, "/healthz")
        #expect(health.status == 200)
        #expect(health.body == "ok\n")
        let ready = try get(server.port, "/readyz")
        #expect(ready.status == 200)
        #expect(ready.body.contains("postgres ok"))
        #expect(try get(server.port, "/nope").status == 404)
    }

    @Test func exportersAreAppendedToEveryScrape() throws {
        let metrics = ConveyorMetrics()
        let scrapes = Counter()
        metrics.addExporter {
            let n = scrapes.next()
            return "# HELP family_scrapes_total Scrapes seen by the family.\n# TYPE family_scrapes_total counter\nfamily_scrapes_total \(n)\n"
        }
        let first = String(decoding: metrics.render(), as: UTF8.self)
        let second = String(decoding: metrics.render(), as: UTF8.self)
        #expect(first.contains("conveyor_up 1"))
        #expect(first.hasSuffix("family_scrapes_total 1\n"))
        #expect(second.hasSuffix("family_scrapes_total 2\n"))
        let check = try run(["promtool", "check", "metrics"], input: Array(second.utf8))
        #expect(check.code == 0, "promtool: \(check.out) \(check.err)")
    }

    @Test func transcodeProgressCountsOnlyWhatIsNew() throws {
        let metrics = ConveyorMetrics()
        metrics.transcodeProgress(jid: "t1", frames: 30, seconds: 1.0)
        metrics.transcodeProgress(jid: "t1", frames: 90, seconds: 3.0)
        metrics.transcodeProgress(jid: "t1", frames: 90, seconds: 3.0)  // the same state reported again
        metrics.transcodeProgress(jid: "t2", frames: 10, seconds: 0.5)
        var text = String(decoding: metrics.render(), as: UTF8.self)
        #expect(text.contains("conveyor_video_transcoded_frames_total 100\n"))
        #expect(text.contains("conveyor_video_transcoded_seconds_total 3.5\n"))
        // A finished job is forgotten: a new job with the same jid (a retry) counts from zero again.
        metrics.jobFinished(outcome("video.transcode", .retrying, duration: 1, jid: "t1"))
        metrics.transcodeProgress(jid: "t1", frames: 15, seconds: 0.5)
        text = String(decoding: metrics.render(), as: UTF8.self)
        #expect(text.contains("conveyor_video_transcoded_frames_total 115\n"))
        let check = try run(["promtool", "check", "metrics"], input: Array(text.utf8))
        #expect(check.code == 0, "promtool: \(check.out) \(check.err)")
    }

    private final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func next() -> Int { lock.withLock { value += 1; return value } }
    }

    @Test func readinessFailsWhenADependencyIsDown() throws {
        let down = Readiness.check(redis: try RedisEndpoint(url: TestEnv.redisURL!), databaseURL: "postgres://127.0.0.1:1/x")
        #expect(!down.ready)
        #expect(down.detail.contains("postgres: not accepting connections"))
        let redisDown = Readiness.check(redis: try RedisEndpoint(url: "redis://127.0.0.1:1"), databaseURL: nil)
        #expect(!redisDown.ready)
    }

    @Test func badMetricsAddressIsRejectedWithAHint() {
        #expect(throws: MetricsServerError.self) {
            _ = try MetricsServer(address: "nonsense", metrics: ConveyorMetrics()) { (true, "") }
        }
    }
}
