import ConveyorCore
import ConveyorTesting
import Curl
import Foundation
import Redis
import SidekiqQueue
import Storage
import Telemetry
import Testing

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// `otlp_receiver.py`: a collector's OTLP/HTTP endpoint on a free loopback port that keeps every span it decodes
/// (opentelemetry-proto). One per suite; it exits when its stdin closes.
final class OTLPReceiver: @unchecked Sendable {
    let server: ScriptServer

    init() throws {
        server = try ScriptServer(
            script: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("otlp_receiver.py"), portAfter: "listening ")
    }

    var endpoint: String { server.base }

    /// Every span received so far.
    func spans() throws -> [JSONValue] {
        try CurlEasy().perform(HTTPRequest(url: endpoint + "/spans")).bodyText.split(separator: "\n").map { try JSONValue(parsing: String($0)) }
    }

    /// The spans with `messaging.message.id` `jid`, and every span in their traces.
    func spans(ofJob jid: String) throws -> (process: JSONValue?, all: [JSONValue]) {
        let all = try spans()
        let process = all.first { $0["attributes"]?["messaging.message.id"]?.stringValue == jid }
        return (process, all)
    }

    /// `ok` (answer), `hang` (hold every export unanswered), `fail` (503).
    func mode(_ mode: String) throws {
        _ = try CurlEasy().perform(HTTPRequest(method: "POST", url: endpoint + "/mode?m=" + mode, body: []))
    }
}

/// A `conveyor worker` from the built binary, with tracing pointed at `receiver`, logging to a file.
final class TracedWorker: @unchecked Sendable {
    let process = Process()
    let logURL: URL
    let namespace = "otel-" + Job.newJID().prefix(10)
    let client: JobClient
    let metricsPort: Int

    init(receiver: OTLPReceiver, queues: String = "default", environment extra: [String: String] = [:]) throws {
        let environment = ProcessInfo.processInfo.environment
        guard let binary = environment["CONVEYOR_BIN"], let redisURL = environment["REDIS_URL"] else {
            throw TestFailure("CONVEYOR_BIN and REDIS_URL must be set: run the tests through scripts/test.sh")
        }
        metricsPort = try freeLoopbackPort()
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("conveyor-otel-worker-\(Job.newJID()).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["worker", "--redis-url", redisURL, "--namespace", namespace, "--queues", queues, "-c", "8", "--poll-interval", "100ms"]
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        process.environment = environment.merging([
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "conveyor-test",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test", "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=acme",
            "CONVEYOR_METRICS_ADDR": "127.0.0.1:\(metricsPort)", "CONVEYOR_LOG_LEVEL": "info",
        ].merging(extra) { _, new in new }) { _, new in new }
        try process.run()
        client = JobClient(redis: RedisThread(try RedisEndpoint(url: redisURL), name: "otel-test-client"), keys: QueueKeys(namespace: namespace))
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: logURL)
    }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    func stop() async throws -> Int32 {
        kill(process.processIdentifier, SIGTERM)
        let process = process
        try await BlockingPool.shared.run { process.waitUntilExit() }
        return process.terminationStatus
    }

    /// Pushes jobs (a `traceparent` at the top of each, when given, as the Sidekiq instrumentation writes it).
    func push(_ jobs: [(jobClass: String, arguments: JSONObject, traceparent: String?)], queue: String = "default") async throws -> [String] {
        let payloads = jobs.map { job -> JSONObject in
            var payload = Job.envelope(jobClass: job.jobClass, arguments: job.arguments, queue: queue)
            if let parent = job.traceparent { payload["traceparent"] = .string(parent) }
            return payload
        }
        try await client.push(payloads)
        return payloads.map { $0["jid"]!.stringValue! }
    }

    /// One series' value on this worker's `/metrics`: the family `name` with every one of `labels` (`class="noop"`).
    func metric(_ name: String, _ labels: [String] = []) throws -> Double? {
        let text = try CurlEasy().perform(HTTPRequest(url: "http://127.0.0.1:\(metricsPort)/metrics")).bodyText
        let line = text.split(separator: "\n").first { line in
            (line.hasPrefix(name + " ") || line.hasPrefix(name + "{")) && labels.allSatisfy { line.contains($0) }
        }
        return line.flatMap { $0.split(separator: " ").last.flatMap { Double($0) } }
    }
}

/// A W3C `traceparent` of a producer's span: random trace and span ids, sampled.
func producerContext() -> (traceparent: String, trace: String, span: String) {
    func hex(_ n: Int) -> String { (0..<n).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined() }
    let trace = hex(16), span = hex(8)
    return ("00-\(trace)-\(span)-01", trace, span)
}

let environment = ProcessInfo.processInfo.environment

@Suite(.serialized, .enabled(if: environment["CONVEYOR_BIN"] != nil && environment["REDIS_URL"] != nil, "needs the built binary and Redis"))
struct OTLPExportTests {
    static let receiver = Result { try OTLPReceiver() }

    /// A Sidekiq-format job with a producer's `traceparent`: its `process <queue>` span is a child of the producer's
    /// span in the same trace, with the messaging attributes; a failed job's span carries its error class; a job
    /// without one starts a trace of its own. The spans reach a real OTLP/HTTP receiver as protobuf.
    @Test func aJobsSpanJoinsItsProducersTrace() async throws {
        let receiver = try Self.receiver.get()
        let worker = try TracedWorker(receiver: receiver)
        let producer = producerContext(), other = producerContext()
        let jids = try await worker.push([
            ("noop", [:], producer.traceparent), ("sleep", ["ms": "soon"], other.traceparent), ("noop", [:], nil),
        ])
        try await waitUntil("three process spans", timeout: .seconds(30)) { try jids.allSatisfy { try receiver.spans(ofJob: $0).process != nil } }
        let ok = try #require(try receiver.spans(ofJob: jids[0]).process)
        #expect(ok["name"]?.stringValue == "process default")
        #expect(ok["kind"]?.intValue == 5, "SPAN_KIND_CONSUMER")
        #expect(ok["trace_id"]?.stringValue == producer.trace)
        #expect(ok["parent_span_id"]?.stringValue == producer.span)
        let attributes = try #require(ok["attributes"])
        #expect(attributes["messaging.system"] == "sidekiq")
        #expect(attributes["messaging.destination.name"] == "default")
        #expect(attributes["messaging.operation.type"] == "process")
        #expect(attributes["conveyor.job.class"] == "noop")
        #expect(attributes["conveyor.job.attempt"]?.intValue == 1)
        #expect(attributes["conveyor.job.outcome"] == "succeeded")
        #expect(attributes["conveyor.job.queue_wait_ms"]?.intValue != nil)
        #expect(ok["events"]?.arrayValue?.compactMap { $0["name"]?.stringValue }.contains("enqueued") == true)
        #expect(ok["status"]?["code"]?.intValue == 0, "unset")
        #expect(ok["resource"]?["service.name"] == "conveyor-test")
        #expect(ok["resource"]?["deployment.environment"] == "test")
        #expect(ok["headers"]?["x-tenant"] == "acme", "OTEL_EXPORTER_OTLP_HEADERS are sent")

        let failed = try #require(try receiver.spans(ofJob: jids[1]).process)
        #expect(failed["trace_id"]?.stringValue == other.trace)
        #expect(failed["status"]?["code"]?.intValue == 2, "STATUS_CODE_ERROR")
        #expect(failed["attributes"]?["error.type"] == "InvalidArguments")
        #expect(failed["attributes"]?["conveyor.job.outcome"] == "dead")

        let own = try #require(try receiver.spans(ofJob: jids[2]).process)
        #expect(own["parent_span_id"]?.stringValue == "" && ![producer.trace, other.trace].contains(own["trace_id"]?.stringValue ?? ""))
        // The job's log lines carry the ids.
        #expect(worker.log.contains("trace_id=\(producer.trace)"))
        // The batched outcome writes (with DATABASE_URL): spans of their own, the rows counted.
        if environment["DATABASE_URL"] != nil {
            try await waitUntil("an outcome write's span", timeout: .seconds(30)) {
                try receiver.spans().contains { $0["name"]?.stringValue == "COPY conveyor.job_results" }
            }
            let writes = try receiver.spans().filter { $0["name"]?.stringValue == "COPY conveyor.job_results" }
            #expect(writes.allSatisfy { $0["parent_span_id"]?.stringValue == "" && $0["attributes"]?["db.system.name"] == "postgresql" })
            #expect(writes.compactMap { $0["attributes"]?["conveyor.results.rows"]?.intValue }.reduce(0, +) >= 3)
        }
        #expect(try await worker.stop() == 0)
    }

    /// A retried job's next run links to the run before it: the failed run leaves its span's `traceparent` in the
    /// payload it stores in the retry set, and the next run's span carries a link to it, in the producer's trace.
    @Test func aRetrysSpanLinksToThePreviousAttempt() async throws {
        let receiver = try Self.receiver.get()
        let worker = try TracedWorker(receiver: receiver)
        let producer = producerContext()
        // Its own 1 ms timeout stops the first run (JobTimeout, retried); the retry then runs to its end.
        var payload = Job.envelope(jobClass: "sleep", arguments: ["ms": 200], queue: "default")
        payload["traceparent"] = .string(producer.traceparent)
        payload["timeout"] = 0.001
        try await worker.client.push([payload])
        let jid = payload["jid"]!.stringValue!
        try await waitUntil("the first run's span", timeout: .seconds(30)) { try receiver.spans(ofJob: jid).process != nil }
        let first = try #require(try receiver.spans(ofJob: jid).process)
        #expect(first["attributes"]?["conveyor.job.outcome"] == "retrying" && first["attributes"]?["error.type"] == "JobTimeout")
        let redis = worker.client.redis
        let key = worker.client.keys.retry
        let stored = try await redis.run { connection in try connection.command("ZRANGE", key, "0", "-1").array?.first?.text ?? "" }
        var retried = try JSONValue(parsing: stored).objectValue!
        #expect(retried["conveyor_previous_traceparent"]?.stringValue == "00-\(producer.trace)-\(first["span_id"]!.stringValue!)-01")
        // Run the retry now, without its own timeout.
        retried["timeout"] = nil
        let replacement = retried.bytes
        _ = try await redis.run { connection in
            _ = try connection.command("ZREM", key, stored)
            return try connection.command("ZADD", key, "1", replacement)
        }
        try await waitUntil("the second run's span", timeout: .seconds(30)) {
            try receiver.spans().contains { $0["attributes"]?["messaging.message.id"]?.stringValue == jid && $0["attributes"]?["conveyor.job.attempt"]?.intValue == 2 }
        }
        let second = try #require(try receiver.spans().first { $0["attributes"]?["messaging.message.id"]?.stringValue == jid && $0["attributes"]?["conveyor.job.attempt"]?.intValue == 2 })
        #expect(second["attributes"]?["conveyor.job.outcome"] == "succeeded")
        #expect(second["trace_id"]?.stringValue == producer.trace && second["parent_span_id"]?.stringValue == producer.span)
        let link = try #require(second["links"]?.arrayValue?.first)
        #expect(link["span_id"] == first["span_id"] && link["attributes"]?["conveyor.link"] == "previous_attempt")
        #expect(try await worker.stop() == 0)
    }

    /// `OTEL_TRACES_SAMPLER=traceidratio` at 0.5: exactly the jobs whose jid the sampler picks are traced (the
    /// exporter does not sample a second time), and a traced job's children are all there.
    @Test func theSamplerPicksJobsByJidOnce() async throws {
        let receiver = try Self.receiver.get()
        let worker = try TracedWorker(receiver: receiver, environment: ["OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"])
        let jids = try await worker.push((0..<200).map { _ in ("noop", [:], nil) })
        let sampler = JobSampler(name: "traceidratio", ratio: 0.5)
        let expected = Set(jids.filter { sampler.samples(jid: $0, producer: nil) })
        #expect((60...140).contains(expected.count))
        try await waitUntil("the sampled jobs' spans", timeout: .seconds(30)) {
            Set(try receiver.spans().compactMap { $0["attributes"]?["messaging.message.id"]?.stringValue }).isSuperset(of: expected)
        }
        // Every job ran; after the last one's span, no other of them shows up.
        try await waitUntil("200 jobs done", timeout: .seconds(30)) {
            (try worker.metric("conveyor_jobs_total", [#"class="noop""#, #"outcome="succeeded""#]) ?? 0) >= 200
        }
        #expect(try await worker.stop() == 0)
        let traced = Set(try receiver.spans().compactMap { $0["attributes"]?["messaging.message.id"]?.stringValue }).intersection(jids)
        #expect(traced == expected)
    }

    /// `CONVEYOR_TRACE_PROPAGATION=link`: the run starts a trace of its own, linked to the producer's span.
    @Test func linkModeStartsATraceLinkedToTheProducer() async throws {
        let receiver = try Self.receiver.get()
        let worker = try TracedWorker(receiver: receiver, environment: ["CONVEYOR_TRACE_PROPAGATION": "link"])
        let producer = producerContext()
        let jid = try await worker.push([("noop", [:], producer.traceparent)])[0]
        try await waitUntil("the process span", timeout: .seconds(30)) { try receiver.spans(ofJob: jid).process != nil }
        let span = try #require(try receiver.spans(ofJob: jid).process)
        #expect(span["trace_id"]?.stringValue != producer.trace)
        #expect(span["parent_span_id"]?.stringValue == "")
        let link = try #require(span["links"]?.arrayValue?.first)
        #expect(link["trace_id"]?.stringValue == producer.trace && link["span_id"]?.stringValue == producer.span)
        #expect(try await worker.stop() == 0)
    }

    /// A hostile `traceparent` (wrong shape, huge, not a string) never stops a job: it runs in a trace of its own.
    @Test func hostileTraceparentsRunInTracesOfTheirOwn() async throws {
        let receiver = try Self.receiver.get()
        let worker = try TracedWorker(receiver: receiver)
        var payloads: [JSONObject] = []
        for value: JSONValue in [.string("00-zz-yy-01"), .string(String(repeating: "f", count: 100_000)), 1e308, .array([]), .string("00-\(String(repeating: "0", count: 32))-\(String(repeating: "0", count: 16))-01")] {
            var payload = Job.envelope(jobClass: "noop", arguments: [:], queue: "default")
            payload["traceparent"] = value
            payloads.append(payload)
        }
        try await worker.client.push(payloads)
        let jids = payloads.map { $0["jid"]!.stringValue! }
        try await waitUntil("every hostile job's span", timeout: .seconds(30)) { try jids.allSatisfy { try receiver.spans(ofJob: $0).process != nil } }
        for jid in jids {
            let span = try #require(try receiver.spans(ofJob: jid).process)
            #expect(span["attributes"]?["conveyor.job.outcome"] == "succeeded")
            #expect(span["parent_span_id"]?.stringValue == "")
        }
        #expect(try await worker.stop() == 0)
    }

    /// A media job from a bucket: its span's children are the S3 reads and writes and the sandboxed helper's work,
    /// all in the producer's trace.
    @Test(.enabled(if: environment["CONVEYOR_TEST_S3_ENDPOINT"] != nil && environment["DATABASE_URL"] != nil, "needs the S3 server of scripts/services.sh"))
    func aMediaJobsSpanHasChildrenForS3AndTheHelper() async throws {
        let receiver = try Self.receiver.get()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("otel-media-\(Job.newJID())").path
        try FileManager.default.createDirectory(atPath: directory + "/scratch", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let convert = Process()
        convert.executableURL = URL(fileURLWithPath: "/usr/bin/convert")
        convert.arguments = ["-size", "320x240", "plasma:", directory + "/in.jpg"]
        try convert.run()
        try await BlockingPool.shared.run { convert.waitUntilExit() }
        let s3 = S3Client(S3Configuration(
            endpoint: environment["CONVEYOR_TEST_S3_ENDPOINT"]!, accessKeyID: environment["CONVEYOR_TEST_S3_ACCESS_KEY"] ?? "",
            secretAccessKey: environment["CONVEYOR_TEST_S3_SECRET_KEY"] ?? "", pathStyle: true))
        let bucket = "otel-" + Job.newJID().prefix(12)
        try await s3.createBucket(bucket, deadline: .now + .seconds(10))
        try await s3.put(bucket: bucket, key: "uploads/in.jpg", from: directory + "/in.jpg", contentType: "image/jpeg", cacheControl: nil, deadline: .now + .seconds(20))
        let worker = try TracedWorker(receiver: receiver, queues: "media", environment: [
            "CONVEYOR_MEDIA_STORE": "s3://\(bucket)", "AWS_ENDPOINT_URL_S3": environment["CONVEYOR_TEST_S3_ENDPOINT"]!, "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": environment["CONVEYOR_TEST_S3_ACCESS_KEY"] ?? "", "AWS_SECRET_ACCESS_KEY": environment["CONVEYOR_TEST_S3_SECRET_KEY"] ?? "",
            "CONVEYOR_SCRATCH_DIR": directory + "/scratch", "CONVEYOR_HELPERS": "1", "CONVEYOR_VIDEO_HELPERS": "1",
        ])
        let producer = producerContext()
        let jid = try await worker.push([("media.ingest", ["upload_id": .string("otel-" + Job.newJID()), "source": "uploads/in.jpg"], producer.traceparent)], queue: "media")[0]
        try await waitUntil("the ingest's span", timeout: .seconds(60)) { try receiver.spans(ofJob: jid).process != nil }
        // Children end before their parent: they were exported in the same or an earlier batch.
        let (process, all) = try receiver.spans(ofJob: jid)
        let job = try #require(process)
        #expect(job["attributes"]?["conveyor.job.outcome"] == "succeeded", "\(worker.log.suffix(2000))")
        let inTrace = all.filter { $0["trace_id"]?.stringValue == producer.trace }
        func children(named prefix: String) -> [JSONValue] { inTrace.filter { $0["name"]?.stringValue?.hasPrefix(prefix) == true } }
        let get = try #require(children(named: "S3.GetObject").first)
        #expect(get["parent_span_id"] == job["span_id"])
        #expect(get["kind"]?.intValue == 3, "SPAN_KIND_CLIENT")
        #expect(get["attributes"]?["aws.s3.bucket"] == .string(bucket) && get["attributes"]?["aws.s3.key"] == "uploads/in.jpg")
        #expect(!children(named: "S3.PutObject").isEmpty, "the variants were written")
        let helper = try #require(children(named: "helper ").first)
        #expect(helper["attributes"]?["conveyor.helper.sandboxed"]?.boolValue == true)
        // Every child hangs off the job's span or one of its children.
        let ids = Set(inTrace.compactMap { $0["span_id"]?.stringValue })
        for span in inTrace where span["span_id"] != job["span_id"] {
            #expect(ids.contains(span["parent_span_id"]?.stringValue ?? ""), "\(span["name"] ?? .null) has no parent in the trace")
        }
        #expect(try await worker.stop() == 0)
    }

    /// `conveyor enqueue` run inside a trace (OpenTelemetry's `TRACEPARENT` environment carrier) writes it into the
    /// job, so the job's span joins that trace; a malformed one is left out with a warning.
    @Test func conveyorEnqueueInsideATraceCarriesIt() async throws {
        let receiver = try Self.receiver.get()
        let worker = try TracedWorker(receiver: receiver)
        func enqueue(_ traceparent: String) async throws -> (jid: String, stderr: String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: environment["CONVEYOR_BIN"]!)
            process.arguments = ["enqueue", "noop", "--redis-url", environment["REDIS_URL"]!, "--namespace", worker.namespace]
            process.environment = environment.merging(["TRACEPARENT": traceparent, "TRACESTATE": "vendor=1"]) { _, new in new }
            let out = Pipe(), err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try process.run()
            let jid = try await BlockingPool.shared.run { String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
            let stderr = try await BlockingPool.shared.run { String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
            try await BlockingPool.shared.run { process.waitUntilExit() }
            #expect(process.terminationStatus == 0)
            return (jid.trimmingCharacters(in: .whitespacesAndNewlines), stderr)
        }
        let producer = producerContext()
        let traced = try await enqueue(producer.traceparent)
        #expect(traced.stderr.isEmpty)
        let bad = try await enqueue("00-\(String(repeating: "0", count: 32))-\(producer.span)-01")
        #expect(bad.stderr.contains("TRACEPARENT is not a W3C traceparent"))
        try await waitUntil("both spans", timeout: .seconds(30)) {
            try receiver.spans(ofJob: traced.jid).process != nil && receiver.spans(ofJob: bad.jid).process != nil
        }
        let span = try #require(try receiver.spans(ofJob: traced.jid).process)
        #expect(span["trace_id"]?.stringValue == producer.trace && span["parent_span_id"]?.stringValue == producer.span)
        #expect(try receiver.spans(ofJob: bad.jid).process?["parent_span_id"]?.stringValue == "")
        #expect(try await worker.stop() == 0)
    }

    /// A BullMQ job whose producer used BullMQ's `telemetry` option carries the context in `opts.tm`; the job's span
    /// joins that trace with `messaging.system` `bullmq`. The producer is BullMQ's own Python `Queue`.
    @Test func aBullMQJobsSpanJoinsItsProducersTrace() async throws {
        let receiver = try Self.receiver.get()
        let queue = "otel" + Job.newJID().prefix(8)
        let worker = try TracedWorker(receiver: receiver, environment: ["CONVEYOR_BULLMQ_QUEUES": queue])
        let producer = producerContext()
        let add = Process()
        add.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        add.arguments = ["python3", "-c", """
            import asyncio, json, sys
            from bullmq import Queue
            async def main():
                q = Queue(sys.argv[1], {"connection": sys.argv[2]})
                job = await q.add("noop", {}, {"tm": json.dumps({"traceparent": sys.argv[3]})})
                print(job.id)
                await q.close()
            asyncio.run(main())
            """, queue, environment["REDIS_URL"]!, producer.traceparent]
        let out = Pipe()
        add.standardOutput = out
        try add.run()
        let id = try await BlockingPool.shared.run { String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try await BlockingPool.shared.run { add.waitUntilExit() }
        #expect(add.terminationStatus == 0)
        let jid = "bull:\(queue):\(id)"
        try await waitUntil("the BullMQ job's span", timeout: .seconds(30)) { try receiver.spans(ofJob: jid).process != nil }
        let span = try #require(try receiver.spans(ofJob: jid).process)
        #expect(span["trace_id"]?.stringValue == producer.trace && span["parent_span_id"]?.stringValue == producer.span)
        #expect(span["attributes"]?["messaging.system"] == "bullmq")
        #expect(span["name"]?.stringValue == "process \(queue)")
        #expect(span["attributes"]?["conveyor.job.outcome"] == "succeeded")
        #expect(try await worker.stop() == 0)
    }

    /// The worker refuses what the tracing settings cannot take before anything starts: exit 64 naming the variable.
    @Test func theWorkerRefusesOutOfRangeTracingSettings() async throws {
        let cases = [
            ("OTEL_TRACES_SAMPLER_ARG", "inf"), ("OTEL_TRACES_SAMPLER_ARG", "1e308"), ("OTEL_BSP_MAX_QUEUE_SIZE", "9223372036854775807"),
            ("OTEL_BSP_SCHEDULE_DELAY", "-1"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"),
            ("OTEL_PROPAGATORS", "b3"), ("CONVEYOR_TRACE_PROPAGATION", "sideways"),
        ]
        for (name, value) in cases {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: environment["CONVEYOR_BIN"]!)
            process.arguments = ["worker", "--redis-url", environment["REDIS_URL"]!]
            process.environment = environment.merging(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"]) { _, new in new }.merging([name: value]) { _, new in new }
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            let text = try await BlockingPool.shared.run { String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
            try await BlockingPool.shared.run { process.waitUntilExit() }
            #expect(process.terminationStatus == 64, "\(name)=\(value): \(text)")
            #expect(text.contains(name), "\(name)=\(value): \(text)")
        }
    }

    /// A collector that stops answering: jobs go on at the speed they had, finished spans past the bounded queue
    /// are dropped, and the drop is counted on `/metrics`.
    @Test func aCollectorThatHangsCostsNoJobLatencyAndCountsTheDrops() async throws {
        let receiver = try Self.receiver.get()
        // A batch's export is given up after 1 s (its spans then count as dropped too); the queue holds 50.
        let worker = try TracedWorker(
            receiver: receiver,
            environment: ["OTEL_BSP_MAX_QUEUE_SIZE": "50", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "10", "OTEL_BSP_EXPORT_TIMEOUT": "1000"])
        try await waitUntil("the worker's /metrics", timeout: .seconds(20)) { (try? worker.metric("conveyor_trace_spans_dropped_total")) != nil }
        #expect(try worker.metric("conveyor_trace_spans_dropped_total") == 0)
        try receiver.mode("hang")
        defer { try? receiver.mode("ok") }
        let jids = try await worker.push((0..<2_000).map { _ in ("noop", [:], producerContext().traceparent) })
        // Every job finishes while no export is answered: the worker's processed counter reaches them all.
        try await waitUntil("2,000 jobs done with the collector hanging", timeout: .seconds(60)) {
            (try worker.metric("conveyor_jobs_total", [#"class="noop""#, #"outcome="succeeded""#]) ?? 0) >= 2_000
        }
        // Counted as the processor reports them (after each given-up export): every span but the few a hung export
        // still holds.
        try await waitUntil("the drops counted", timeout: .seconds(60)) {
            (try worker.metric("conveyor_trace_spans_dropped_total") ?? 0) >= Double(jids.count - 60)
        }
        #expect(try receiver.spans().filter { jids.contains($0["attributes"]?["messaging.message.id"]?.stringValue ?? "") }.isEmpty)
        // Handler time stayed a noop's: the span's end never waits for the exporter.
        let durations = worker.log.split(separator: "\n").filter { $0.contains("job.class=noop") && $0.contains("job succeeded") }
            .compactMap { line in line.split(separator: " ").first { $0.hasPrefix("duration_ms=") }.flatMap { Int($0.dropFirst(12)) } }
        #expect(durations.count == 2_000)
        #expect(durations.filter { $0 > 100 }.count < 20, "a noop took over 100 ms \(durations.filter { $0 > 100 }.count) times")
        try receiver.mode("ok")
        #expect(try await worker.stop() == 0)
        #expect(worker.log.contains("tracing: Spans were dropped"), "the drop is logged (at most once a minute)")
    }
}
