import Synchronization
public import Tracing

/// Spans for the work a job sends out of the process (S3 transfers, the sandboxed helper, SMTP, LLM calls), children
/// of the job's `process <queue>` span. Outside a traced job (no span in the task's context) they cost one task-local
/// read: no span is started, so work that belongs to no job never makes a root span of its own.
public enum Traced {
    /// Runs `body` in a child span `name` of the current span; a thrown error marks it failed (`error.type` the
    /// error class of a `JobFailure`, else the error's type).
    public static func span<T, E: Error>(
        _ name: String, kind: SpanKind = .client, attributes: SpanAttributes = [:],
        _ body: (any Span) async throws(E) -> T
    ) async throws(E) -> T {
        guard let parent = ServiceContext.current else { return try await body(NoOpTracer.NoOpSpan(context: .topLevel)) }
        let span = InstrumentationSystem.tracer.startAnySpan(name, context: parent, ofKind: kind)
        span.attributes.merge(attributes)
        defer { span.end() }
        do {
            return try await body(span)
        } catch {
            failed(span, error)
            throw error
        }
    }

    /// Whether this process exports traces (set once by the tracing's setup): `root` starts nothing otherwise.
    public static var enabled: Bool {
        get { tracing.load(ordering: .relaxed) }
        set { tracing.store(newValue, ordering: .relaxed) }
    }
    private static let tracing = Atomic<Bool>(false)

    /// Runs `body` in a span of a trace of its own, for batched work that serves many jobs at once (the outcome
    /// writes): no job's span can be its parent. Started only when the process traces.
    public static func root<T, E: Error>(
        _ name: String, kind: SpanKind = .client, attributes: SpanAttributes = [:], _ body: (any Span) throws(E) -> T
    ) throws(E) -> T {
        guard enabled else { return try body(NoOpTracer.NoOpSpan(context: .topLevel)) }
        let span = InstrumentationSystem.tracer.startAnySpan(name, context: .topLevel, ofKind: kind)
        span.attributes.merge(attributes)
        defer { span.end() }
        do {
            return try body(span)
        } catch {
            failed(span, error)
            throw error
        }
    }

    /// Marks `span` failed by `error`: status error, `error.type` the error class (a `JobFailure`'s, else the type's
    /// name), the message as the status's description.
    public static func failed(_ span: any Span, _ error: any Error) {
        let failure = error as? JobFailure ?? JobFailure(error)
        span.attributes["error.type"] = failure.errorClass
        span.setStatus(SpanStatus(code: .error, message: failure.message))
    }
}
