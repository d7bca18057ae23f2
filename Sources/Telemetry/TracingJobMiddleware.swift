public import ConveyorCore
import Foundation
public import Logging
import Synchronization
public import Tracing

/// One span per run of a job, `process <queue>` (kind consumer), as OpenTelemetry's messaging conventions and the
/// Sidekiq instrumentation name it; the handler and every `Traced.span` under it (S3, the helper, SMTP, LLM calls)
/// are its children. The producer's context (`JobTraceContext`) makes it a child of the producer's span, or, in
/// `link` mode, a new trace linked to it. Trace and span ids go into the job's log lines.
public final class TracingJobMiddleware: JobMiddleware {
    public enum Propagation: String, Sendable { case child, link }

    /// The trace and span ids (lowercase hex) of the span in a context, when the tracer has one there.
    public typealias SpanIDs = @Sendable (ServiceContext) -> (trace: String, span: String)?

    let tracer: any Tracer
    let propagation: Propagation
    let sampler: JobSampler
    let ids: SpanIDs
    /// Spans started by `prepare`, ended by `completed`, keyed by jid (a jid run twice at once in one process, which
    /// only a duplicated push does, ends the first run's span early).
    private let open = Mutex<[String: any Span]>([:])
    /// Runs a shutdown gave up on are never `completed`: past this many open spans the oldest are ended.
    static let maxOpen = 100_000

    /// Where a failed run leaves its span's `traceparent` for the next run's link.
    public static let previousField = "conveyor_previous_traceparent"

    public init(tracer: any Tracer, propagation: Propagation, sampler: JobSampler = JobSampler(root: .always, parentBased: true), ids: @escaping SpanIDs) {
        self.tracer = tracer
        self.propagation = propagation
        self.sampler = sampler
        self.ids = ids
    }

    public func prepare(_ job: Job, context: JobContext) -> JobContext {
        let carried = JobTraceContext(payload: job.payload)
        // Not sampled: no span at all, and the job runs as if tracing were off.
        guard sampler.samples(jid: job.jid, producer: carried?.traceparent) else { return context }
        var producer = ServiceContext.topLevel
        var hasProducer = false
        if let carried {
            tracer.extract(carried.carrier, into: &producer, using: DictionaryExtractor())
            hasProducer = ids(producer) != nil
        }
        let name = "process \(job.queue)"
        let span: any Span
        if hasProducer, propagation == .child {
            span = tracer.startAnySpan(name, context: producer, ofKind: .consumer)
        } else {
            span = tracer.startAnySpan(name, context: .topLevel, ofKind: .consumer)
            if hasProducer { span.addLink(SpanLink(context: producer, attributes: ["conveyor.link": "producer"])) }
        }
        // A tracer that records nothing (a no-op one): nothing to do.
        guard span.isRecording else {
            span.end()
            return context
        }
        // A retry (or a replay of a dead job) links to the run before it, whose span context that run left in the
        // payload it stored.
        if let previous = JobTraceContext.header(job.payload[Self.previousField], max: JobTraceContext.maxTraceparent) {
            var before = ServiceContext.topLevel
            tracer.extract(["traceparent": previous], into: &before, using: DictionaryExtractor())
            if ids(before) != nil { span.addLink(SpanLink(context: before, attributes: ["conveyor.link": "previous_attempt"])) }
        }
        // Set at once: each set on a recording span takes its lock.
        var attributes: SpanAttributes = [
            "messaging.system": .string(job.payload["bullmq"] == nil ? "sidekiq" : "bullmq"),
            "messaging.operation.type": "process", "messaging.operation.name": "process",
            "messaging.destination.name": .string(job.queue), "messaging.message.id": .string(job.jid),
            "conveyor.job.class": .string(job.jobClass), "conveyor.job.attempt": .int64(Int64(context.attempt)),
        ]
        // The time the job waited: as events at the producer's times (as the Sidekiq instrumentation records
        // `created_at` and `enqueued_at`) and as one number.
        let now = JobTime.now()
        if let created = job.createdAt, created > 0, created <= now + 86_400 {
            span.addEvent(SpanEvent(name: "created", at: DefaultTracerClock.Timestamp(nanosecondsSinceEpoch: UInt64(created * 1e9))))
        }
        if let enqueued = job.enqueuedAt, enqueued > 0, enqueued <= now + 86_400 {
            span.addEvent(SpanEvent(name: "enqueued", at: DefaultTracerClock.Timestamp(nanosecondsSinceEpoch: UInt64(enqueued * 1e9))))
            if enqueued <= now { attributes["conveyor.job.queue_wait_ms"] = Saturating.int(((now - enqueued) * 1000).rounded()) }
        }
        span.attributes.merge(attributes)
        var context = context
        // The span's own context, once: the next attempt's link, and the ids for the log lines and the open table.
        var carrier: [String: String] = [:]
        tracer.inject(span.context, into: &carrier, using: DictionaryInjector())
        if let own = carrier["traceparent"] { context.nextAttemptFields[Self.previousField] = .string(own) }
        if let (trace, spanID) = carrier["traceparent"].flatMap(Self.ids(traceparent:)) ?? ids(span.context) {
            context.logger[metadataKey: "trace_id"] = "\(trace)"
            context.logger[metadataKey: "span_id"] = "\(spanID)"
        }
        let key = job.jid
        let evicted: [any Span] = open.withLock { open in
            var evicted: [any Span] = []
            if open.count >= Self.maxOpen, let first = open.keys.first { evicted.append(open.removeValue(forKey: first)!) }
            if let previous = open.updateValue(span, forKey: key) { evicted.append(previous) }
            return evicted
        }
        for old in evicted { old.end() }
        return context
    }

    public func handle(_ job: Job, context: JobContext, next: JobMiddlewareNext) async throws -> JSONValue {
        guard let span = open.withLock({ $0[job.jid] }) else { return try await next(job, context) }
        return try await ServiceContext.withValue(span.context) { try await next(job, context) }
    }

    public func completed(_ job: Job, outcome: JobOutcome, context: JobContext) {
        guard let span = open.withLock({ $0.removeValue(forKey: job.jid) }) else { return }
        span.attributes["conveyor.job.outcome"] = outcome.status.rawValue
        if let failure = outcome.failure {
            switch outcome.status {
            case .cancelled, .skipped, .deferred:
                span.attributes["error.type"] = failure.errorClass
            default:
                Traced.failed(span, failure)
            }
        }
        span.end()
    }

    /// How many spans are open (started, not yet completed).
    public var openSpans: Int { open.withLock { $0.count } }

    /// The trace and span ids of a W3C `traceparent` (`00-<trace>-<span>-<flags>`).
    static func ids(traceparent: String) -> (trace: String, span: String)? {
        let fields = traceparent.split(separator: "-")
        guard fields.count >= 4, fields[1].utf8.count == 32, fields[2].utf8.count == 16 else { return nil }
        return (String(fields[1]), String(fields[2]))
    }

}
