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
    let ids: SpanIDs
    /// Spans started by `prepare`, ended by `completed`, keyed by the job's jid and span id (in its logger's metadata).
    private let open = Mutex<[String: any Span]>([:])
    /// Runs a shutdown gave up on are never `completed`: past this many open spans the oldest are ended.
    static let maxOpen = 100_000

    /// Where a failed run leaves its span's `traceparent` for the next run's link.
    public static let previousField = "conveyor_previous_traceparent"

    public init(tracer: any Tracer, propagation: Propagation, ids: @escaping SpanIDs) {
        self.tracer = tracer
        self.propagation = propagation
        self.ids = ids
    }

    public func prepare(_ job: Job, context: JobContext) -> JobContext {
        var producer = ServiceContext.topLevel
        var hasProducer = false
        if let carried = JobTraceContext(payload: job.payload) {
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
        // A retry (or a replay of a dead job) links to the run before it, whose span context that run left in the
        // payload it stored.
        if let previous = JobTraceContext.header(job.payload[Self.previousField], max: JobTraceContext.maxTraceparent) {
            var before = ServiceContext.topLevel
            tracer.extract(["traceparent": previous], into: &before, using: DictionaryExtractor())
            if ids(before) != nil { span.addLink(SpanLink(context: before, attributes: ["conveyor.link": "previous_attempt"])) }
        }
        span.attributes["messaging.system"] = job.payload["bullmq"] == nil ? "sidekiq" : "bullmq"
        span.attributes["messaging.operation.type"] = "process"
        span.attributes["messaging.operation.name"] = "process"
        span.attributes["messaging.destination.name"] = job.queue
        span.attributes["messaging.message.id"] = job.jid
        span.attributes["conveyor.job.class"] = job.jobClass
        span.attributes["conveyor.job.attempt"] = context.attempt
        // The time the job waited: as events at the producer's times (as the Sidekiq instrumentation records
        // `created_at` and `enqueued_at`) and as one number.
        let now = JobTime.now()
        for (event, at) in [("created", job.createdAt), ("enqueued", job.enqueuedAt)] {
            guard let at, at > 0, at <= now + 86_400 else { continue }
            span.addEvent(SpanEvent(name: event, at: DefaultTracerClock.Timestamp(nanosecondsSinceEpoch: UInt64(at * 1e9))))
        }
        if let enqueued = job.enqueuedAt, enqueued > 0, enqueued <= now {
            span.attributes["conveyor.job.queue_wait_ms"] = Saturating.int(((now - enqueued) * 1000).rounded())
        }
        var context = context
        var carrier: [String: String] = [:]
        tracer.inject(span.context, into: &carrier, using: DictionaryInjector())
        if let own = carrier["traceparent"] { context.nextAttemptFields[Self.previousField] = .string(own) }
        let key: String
        if let (trace, spanID) = ids(span.context) {
            context.logger[metadataKey: "trace_id"] = "\(trace)"
            context.logger[metadataKey: "span_id"] = "\(spanID)"
            key = job.jid + " " + spanID
        } else {
            key = job.jid
        }
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
        guard let span = open.withLock({ $0[Self.key(job, context)] }) else { return try await next(job, context) }
        return try await ServiceContext.withValue(span.context) { try await next(job, context) }
    }

    public func completed(_ job: Job, outcome: JobOutcome, context: JobContext) {
        guard let span = open.withLock({ $0.removeValue(forKey: Self.key(job, context)) }) else { return }
        span.attributes["conveyor.job.outcome"] = outcome.status.rawValue
        if let failure = outcome.failure {
            switch outcome.status {
            case .cancelled, .skipped:
                span.attributes["error.type"] = failure.errorClass
            default:
                Traced.failed(span, failure)
            }
        }
        span.end()
    }

    /// How many spans are open (started, not yet completed).
    public var openSpans: Int { open.withLock { $0.count } }

    static func key(_ job: Job, _ context: JobContext) -> String {
        guard case .string(let span)? = context.logger[metadataKey: "span_id"] else { return job.jid }
        return job.jid + " " + span
    }
}
