import ConveyorCore
import Foundation
import Operations
import Redis
import SidekiqQueue
import Testing

/// The worker's HTTP endpoint against hostile traffic, through the real binary and real sockets: producers that
/// invent a class or queue per job cannot grow /metrics, and idle or slow clients cannot starve /healthz.
@Suite(.enabled(if: TestEnv.hasServers && TestEnv.binary != nil, "needs REDIS_URL, DATABASE_URL and CONVEYOR_BIN"), .serialized)
struct MetricsEndpointHostileTests {
    /// Series (sample lines) and bytes of one scrape.
    private func scrape(_ port: Int) throws -> (series: [Substring], bytes: Int, text: String) {
        let r = try RawHTTP.get(port: port, path: "/metrics", timeout: 10)
        #expect(r.status == 200)
        let text = String(decoding: r.body, as: UTF8.self)
        return (text.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }, r.body.count, text)
    }

    private func value(_ text: String, _ prefix: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(prefix + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    @Test func aThousandUnknownClassesAndQueuesLeaveMetricsBounded() throws {
        let namespace = TestEnv.unique("mbound")
        let keys = QueueKeys(namespace: namespace)
        let worker = try WorkerProcess(namespace: namespace, environment: ["CONVEYOR_METRICS_POLL_SECONDS": "0.5"])
        defer { worker.stop() }
        try worker.waitUntilServing()
        let before = try scrape(worker.port)

        // 1,000 jobs on a served queue, each with a class of its own and a queue field of its own; and 1,000 more
        // queues, each holding one job, that the poller reads depths from.
        let r = try TestEnv.redis()
        var commands: [RedisCommand] = []
        for i in 0..<1000 {
            let job = #"{"class":"hostile.class.\#(i)","args":[{}],"queue":"hostile-field-\#(i)","jid":"\#(String(format: "%024x", i + 1))","created_at":1763779000,"enqueued_at":1763779000}"#
            commands.append(RedisCommand("LPUSH", keys.queue("default"), job))
            let name = String(format: "hq-%04d", i)
            commands.append(RedisCommand("SADD", keys.queues, name))
            commands.append(RedisCommand("LPUSH", keys.queue(name), #"{"class":"noop","args":[{}],"queue":"\#(name)","jid":"q\#(i)","enqueued_at":1763779000}"#))
        }
        commands.append(RedisCommand("SADD", keys.queues, "default"))
        for reply in try r.pipeline(commands) { try reply.check() }

        // Every unknown class ends dead (permanent failure), counted under class="unknown".
        let deadline = Date().addingTimeInterval(120)
        var last: (series: [Substring], bytes: Int, text: String) = before
        while Date() < deadline {
            last = try scrape(worker.port)
            let dead = last.series.filter { $0.hasPrefix("conveyor_jobs_total{") && $0.contains(#"class="unknown""#) && $0.contains(#"outcome="dead""#) }
                .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
            if dead >= 1000 && last.text.contains(#"conveyor_queue_depth{queue="other"}"#) { break }
            usleep(200_000)
        }
        #expect(try r.command("ZCARD", keys.dead).check().int == 1000, "\(worker.log.suffix(2000))")
        let unknownDead = last.series.filter { $0.hasPrefix("conveyor_jobs_total{") && $0.contains(#"class="unknown""#) && $0.contains(#"outcome="dead""#) }
        #expect(unknownDead.compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +) == 1000, "\(unknownDead)")
        #expect(!last.text.contains("hostile.class."), "an invented class got a series")
        #expect(!last.text.contains("hostile-field-"), "an invented queue field got a series")
        #expect(!last.text.contains(#"queue="hq-"#), "an unserved queue got a series")
        #expect((value(last.text, #"conveyor_queue_depth{queue="other"}"#) ?? 0) >= 100, "the unserved queues' depth is summed")
        // Bounded: the unknown jobs added a handful of series (one class, a few queue and outcome values), not
        // thousands; before this fix 5,000 classes added 115,600 series and 8 MB.
        #expect(last.series.count - before.series.count < 80, "\(before.series.count) -> \(last.series.count) series")
        #expect(last.bytes < 128 * 1024, "\(last.bytes) bytes per scrape")
        let check = try TestEnv.command(["promtool", "check", "metrics"], input: Array(last.text.utf8))
        #expect(check.code == 0, "promtool: \(check.out) \(check.err)")
    }

    @Test func healthzAnswersPromptlyWhileTwentyIdleConnectionsAreOpen() throws {
        let worker = try WorkerProcess(namespace: TestEnv.unique("hz"))
        defer { worker.stop() }
        try worker.waitUntilServing()
        // Twenty clients connect and send nothing; three more send a request line a byte at a time.
        var idle: [Int32] = []
        defer { for fd in idle { close(fd) } }
        for _ in 0..<20 { idle.append(try RawHTTP.connect(port: worker.port)) }
        for _ in 0..<3 {
            let fd = try RawHTTP.connect(port: worker.port)
            RawHTTP.send(fd, Array("GET /hea".utf8))
            idle.append(fd)
        }
        for _ in 0..<5 {
            let started = Date()
            let health = try RawHTTP.get(port: worker.port, path: "/healthz", timeout: 1)
            #expect(health.status == 200 && health.body == Array("ok\n".utf8))
            #expect(Date().timeIntervalSince(started) < 0.5, "healthz took \(Date().timeIntervalSince(started)) s")
        }
        let ready = try RawHTTP.get(port: worker.port, path: "/readyz", timeout: 5)
        #expect(ready.status == 200)
        // The idle ones are let go after the request deadline (408 or a plain close), not held for ever.
        let deadline = Date().addingTimeInterval(MetricsServer.requestDeadline + 5)
        for fd in idle {
            let answer = RawHTTP.readAll(fd, timeout: max(0.1, deadline.timeIntervalSinceNow))
            #expect(answer != nil, "an idle connection was still open after the request deadline")
            if let answer, !answer.isEmpty { #expect(RawHTTP.parse(answer).status == 408) }
        }
    }

    @Test func oversizedHeadersAndConnectionFloodsAreBounded() throws {
        let worker = try WorkerProcess(namespace: TestEnv.unique("hz"))
        defer { worker.stop() }
        try worker.waitUntilServing()
        // Headers past the limit: 431, at once.
        let big = try RawHTTP.connect(port: worker.port)
        RawHTTP.send(big, Array(("GET /healthz HTTP/1.1\r\nX-Pad: " + String(repeating: "a", count: 20_000)).utf8))
        let answer = try #require(RawHTTP.readAll(big, timeout: 5))
        close(big)
        #expect(RawHTTP.parse(answer).status == 431)

        // More idle connections than the bound: each new one closes the oldest idle one, so a probe still answers
        // at once, and the server never holds more than the bound.
        var flood: [Int32] = []
        defer { for fd in flood { close(fd) } }
        for _ in 0..<(MetricsServer.maximumConnections + 40) { flood.append(try RawHTTP.connect(port: worker.port)) }
        // The oldest idle sockets were closed by the server (end of input without an answer), before their deadline.
        // Read first: once they are closed the server has taken the whole flood in (a probe sent while the kernel's
        // accept queue is still full waits for TCP's one-second SYN retry, which says nothing about the server).
        let early = flood.prefix(20).filter { RawHTTP.readAll($0, timeout: 2) == [] }
        #expect(early.count == 20, "\(early.count) of the 20 oldest were closed")
        for _ in 0..<5 {
            let started = Date()
            #expect((try? RawHTTP.get(port: worker.port, path: "/healthz", timeout: 1))?.status == 200)
            #expect(Date().timeIntervalSince(started) < 0.5, "healthz took \(Date().timeIntervalSince(started)) s")
        }
        #expect(worker.isRunning)
    }
}
