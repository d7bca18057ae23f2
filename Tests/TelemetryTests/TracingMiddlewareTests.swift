import ConveyorCore
import ConveyorTesting
import InMemoryTracing
import Logging
import Synchronization
import Testing
import Tracing

@testable import Telemetry

/// The process's tracer for these tests: swift-distributed-tracing's in-memory one, bootstrapped once (as the worker
/// bootstraps swift-otel's), so `Traced.span` in handlers reaches it.
enum TestTracer {
    static let shared: InMemoryTracer = {
        let tracer = InMemoryTracer()
        InstrumentationSystem.bootstrap(tracer)
        return tracer
    }()

    static func ids(_ context: ServiceContext) -> (trace: String, span: String)? {
        context.inMemorySpanContext.map { ($0.traceID, $0.spanID) }
    }
}

/// A handler that does traced work (two child spans), then fails when told to, and returns the trace ids its
/// logger carried.
struct TracedWorkHandler: JobHandler {
    func perform(_ job: JobContext) async throws -> JSONValue {
        try await Traced.span("S3.GetObject", attributes: ["aws.s3.key": "in/a.jpg"]) { _ in }
        let failure: JobFailure? = job.arguments["fail"]?.boolValue == true ? .permanent(.invalidArguments, "told to fail") : nil
        try await Traced.span("helper image.thumbnail", kind: .internal) { _ async throws(JobFailure) in
            if let failure { throw failure }
        }
        guard case .string(let trace)? = job.logger[metadataKey: "trace_id"], case .string(let span)? = job.logger[metadataKey: "span_id"]
        else { return .null }
        return ["trace_id": .string(trace), "span_id": .string(span)]
    }
}

@Suite(.serialized) struct TracingMiddlewareTests {
    /// Runs `payloads` through a worker on the memory backend with the tracing middleware; returns the outcomes and
    /// the spans finished meanwhile.
    func run(_ payloads: [JSONObject], propagation: TracingJobMiddleware.Propagation = .child) async throws
        -> (OutcomeRecorder, [FinishedInMemorySpan])
    {
        let tracer = TestTracer.shared
        tracer.clearAll()
        var registry = JobRegistry()
        registry.register(JobClass("traced.work", queue: "default", retry: RetryPolicy(maxAttempts: 1), timeout: .seconds(10), handler: TracedWorkHandler()))
        let configuration = WorkerConfiguration(queues: try QueueSelection(parsing: "default"), pollInterval: .milliseconds(20))
        let backend = MemoryBackend(identity: configuration.identity)
        let outcomes = OutcomeRecorder()
        let middleware = TracingJobMiddleware(tracer: tracer, propagation: propagation, ids: TestTracer.ids)
        let worker = Worker(backend: backend, registry: registry, configuration: configuration, observers: [outcomes], middleware: [middleware])
        for payload in payloads { backend.push(payload) }
        let running = Task { try await worker.run() }
        try await waitUntil("every job finished") { outcomes.count == payloads.count }
        worker.shutdown()
        try await running.value
        #expect(middleware.openSpans == 0, "every span started was ended")
        return (outcomes, tracer.finishedSpans)
    }

    @Test func aJobRunsInItsProcessSpanAndItsWorkInChildren() async throws {
        var payload = Job.envelope(jobClass: "traced.work", arguments: [:], queue: "default", now: JobTime.now() - 2)
        payload["created_at"] = JSONValue(JobTime.now() - 3)
        let jid = payload["jid"]!.stringValue!
        let (outcomes, spans) = try await run([payload])
        let process = try #require(spans.first { $0.operationName == "process default" })
        #expect(process.kind == .consumer)
        #expect(process.attributes["messaging.system"]?.toSpanAttribute() == "sidekiq")
        #expect(process.attributes["messaging.message.id"]?.toSpanAttribute() == .string(jid))
        #expect(process.attributes["messaging.destination.name"]?.toSpanAttribute() == "default")
        #expect(process.attributes["conveyor.job.class"]?.toSpanAttribute() == "traced.work")
        #expect(process.attributes["conveyor.job.attempt"]?.toSpanAttribute() == 1)
        #expect(process.attributes["conveyor.job.outcome"]?.toSpanAttribute() == "succeeded")
        // Waited about two seconds: the events at the producer's times, and the wait as a number.
        #expect(process.events.map(\.name) == ["created", "enqueued"])
        guard case .int64(let wait)? = process.attributes["conveyor.job.queue_wait_ms"]?.toSpanAttribute() else {
            Issue.record("no queue wait")
            return
        }
        #expect((1_900...10_000).contains(wait))
        #expect(process.status == nil)
        // The handler's work: children of the job's span, in its trace.
        for name in ["S3.GetObject", "helper image.thumbnail"] {
            let child = try #require(spans.first { $0.operationName == name })
            #expect(child.traceID == process.traceID && child.parentSpanID == process.spanID, "\(name)")
        }
        // The job's log lines carry the span's ids.
        #expect(outcomes[jid]?.result == ["trace_id": .string(process.traceID), "span_id": .string(process.spanID)])
    }

    @Test func aFailedJobsSpanCarriesItsErrorClass() async throws {
        let payload = Job.envelope(jobClass: "traced.work", arguments: ["fail": true], queue: "default")
        let (outcomes, spans) = try await run([payload])
        #expect(outcomes[payload["jid"]!.stringValue!]?.status == .dead)
        let process = try #require(spans.first { $0.operationName == "process default" })
        #expect(process.status?.code == .error)
        #expect(process.attributes["error.type"]?.toSpanAttribute() == "InvalidArguments")
        #expect(process.attributes["conveyor.job.outcome"]?.toSpanAttribute() == "dead")
        let helper = try #require(spans.first { $0.operationName == "helper image.thumbnail" })
        #expect(helper.status?.code == .error && helper.attributes["error.type"]?.toSpanAttribute() == "InvalidArguments")
    }

    /// A job of an unknown class never runs, but its run still gets a span with the outcome.
    @Test func aJobThatCannotStartStillEndsItsSpan() async throws {
        let payload = Job.envelope(jobClass: "no.such.class", arguments: [:], queue: "default")
        let (_, spans) = try await run([payload])
        let process = try #require(spans.first { $0.operationName == "process default" })
        #expect(process.attributes["error.type"]?.toSpanAttribute() == "UnknownJobClass")
    }

    /// Outside a job (no span in the task), `Traced.span` starts nothing: no root spans for work of no job.
    @Test func workOutsideAJobMakesNoSpan() async throws {
        let tracer = TestTracer.shared
        tracer.clearAll()
        let value = try await Traced.span("S3.GetObject") { _ async throws(JobFailure) in 42 }
        #expect(value == 42)
        #expect(tracer.finishedSpans.isEmpty && tracer.activeSpans.isEmpty)
    }

    /// What a producer's job carries is read at the border: only short printable strings count.
    @Test func hostileTraceFieldsAreIgnored() throws {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        #expect(JobTraceContext(payload: ["traceparent": .string(good)])?.carrier == ["traceparent": good])
        #expect(JobTraceContext(payload: ["traceparent": .string(good), "tracestate": "congo=t61rcWkgMzE"])?.tracestate == "congo=t61rcWkgMzE")
        let hostile: [JSONValue] = [
            42, 1e308, .null, true, .array([.string(good)]), .object(["traceparent": .string(good)]), "",
            .string(String(repeating: "0", count: 10_000)), .string(good + "\u{0}"), .string("00-é-00"), .string("\n" + good),
        ]
        for value in hostile { #expect(JobTraceContext(payload: ["traceparent": value]) == nil, "\(value)") }
        // A tracestate too long (or not a string) is dropped; the traceparent still counts.
        #expect(JobTraceContext(payload: ["traceparent": .string(good), "tracestate": .string(String(repeating: "a", count: 600))])?.tracestate == nil)
        #expect(JobTraceContext(payload: ["traceparent": .string(good), "tracestate": 7])?.tracestate == nil)
        // BullMQ's opts.tm: a JSON text of headers, bounded.
        #expect(JobTraceContext(bullmqTelemetry: .string(#"{"traceparent":"\#(good)"}"#))?.traceparent == good)
        for tm: JSONValue in [.string("{"), .string("[]"), 5, .string(#"{"traceparent":"\#(String(repeating: "x", count: 5000))"}"#)] {
            #expect(JobTraceContext(bullmqTelemetry: tm) == nil, "\(tm)")
        }
    }

    /// Sampling is decided per job before a span exists: a share by the jid's hash (the same for every attempt),
    /// the producer's flag for the parent-based samplers, nothing for `always_off`.
    @Test func jobsAreSampledByJidAndByTheProducersFlag() {
        let sampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        let tenth = JobSampler(name: "traceidratio", ratio: 0.1)
        let jids = (0..<100_000).map { _ in Job.newJID() }
        let share = Double(jids.filter { tenth.samples(jid: $0, producer: nil) }.count) / Double(jids.count)
        #expect(abs(share - 0.1) < 0.01, "\(share)")
        #expect(jids.prefix(100).allSatisfy { tenth.samples(jid: $0, producer: nil) == tenth.samples(jid: $0, producer: nil) })
        // Not parent-based: the producer's flag does not count.
        let dropped = jids.first { !tenth.samples(jid: $0, producer: nil) }!
        #expect(!tenth.samples(jid: dropped, producer: sampled))
        let parent = JobSampler(name: "parentbased_traceidratio", ratio: 0.1)
        #expect(parent.samples(jid: dropped, producer: sampled))
        #expect(!JobSampler(name: "parentbased_always_on", ratio: 1).samples(jid: dropped, producer: unsampled))
        #expect(JobSampler(name: "parentbased_always_on", ratio: 1).samples(jid: dropped, producer: "garbage"), "an invalid parent counts as none")
        #expect(JobSampler(name: "always_off", ratio: 1).tracesNothing)
        #expect(!JobSampler(name: "parentbased_always_off", ratio: 1).tracesNothing)
        #expect(!JobSampler(name: "parentbased_always_off", ratio: 1).samples(jid: dropped, producer: nil))
        #expect(JobSampler(name: "traceidratio", ratio: 0).root == .never && JobSampler(name: "traceidratio", ratio: 1).root == .always)
    }

    /// The catalogue refuses what swift-otel would misread: the extremes of every number, unknown samplers and
    /// propagators, gRPC, malformed pairs.
    @Test func settingsRefuseTheExtremes() {
        let refused: [(Setting, String)] = [
            (TracingSettings.samplerArg, "inf"), (TracingSettings.samplerArg, "1e308"), (TracingSettings.samplerArg, "-0.1"),
            (TracingSettings.samplerArg, "1.5"), (TracingSettings.samplerArg, "nan"), (TracingSettings.samplerArg, ""),
            (TracingSettings.maxQueueSize, "9223372036854775807"), (TracingSettings.maxQueueSize, "0"),
            (TracingSettings.maxExportBatchSize, "1e308"), (TracingSettings.scheduleDelay, "-1"), (TracingSettings.timeout, "inf"),
            (TracingSettings.exportTimeout, "9223372036854775808"),
            (TracingSettings.sampler, "jaeger_remote"), (TracingSettings.sampler, "xray"), (TracingSettings.propagators, "b3"),
            (TracingSettings.propagators, "tracecontext,,baggage"), (TracingSettings.protocol, "grpc"),
            (TracingSettings.endpoint, "ftp://collector"), (TracingSettings.endpoint, "http://"), (TracingSettings.endpoint, "http://:4318"),
            (TracingSettings.endpoint, "http://user@host:4318"), (TracingSettings.endpoint, "http://h/" + String(repeating: "a", count: 3000)),
            (TracingSettings.headers, "novalue"), (TracingSettings.headers, "=v"), (TracingSettings.resourceAttributes, String(repeating: "k=v,", count: 100)),
            (TracingSettings.serviceName, ""), (TracingSettings.propagation, "parent"),
        ]
        for (setting, value) in refused { #expect(setting.problem(with: value) != nil, "\(setting.name)=\(value)") }
        let accepted: [(Setting, String)] = [
            (TracingSettings.samplerArg, "0"), (TracingSettings.samplerArg, "0.1"), (TracingSettings.samplerArg, "1"),
            (TracingSettings.endpoint, "http://127.0.0.1:4318"), (TracingSettings.tracesEndpoint, "https://otel.example/v1/traces"),
            (TracingSettings.headers, "api-key=abc,x-tenant=t%201"), (TracingSettings.propagators, "tracecontext"),
            (TracingSettings.propagation, "link"), (TracingSettings.protocol, "http/json"),
        ]
        for (setting, value) in accepted { #expect(setting.problem(with: value) == nil, "\(setting.name)=\(value)") }
        #expect(TracingSettings.pairs("api-key=abc, x-tenant = t%201") .map { "\($0.0)=\($0.1)" } == ["api-key=abc", "x-tenant=t 1"])
    }
}
