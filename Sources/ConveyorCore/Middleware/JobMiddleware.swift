/// Work done around every job's run without touching the worker or the handlers, as swift-jobs' `JobMiddleware`:
/// per-job logs and metrics today; tracing, uniqueness, limits, progress and cancellation plug in the same way.
///
/// The worker runs a job through its middleware in order, the class's handler innermost, all in the job's own task
/// under its deadline: when the deadline passes, the worker records the timeout and moves on whatever a middleware or
/// the handler still does (so code after `next` may run late, or never, for a job that timed out). What must see
/// every decided outcome belongs in `completed`.
public protocol JobMiddleware: Sendable {
    /// The job's context before anything runs, changed if need be (a trace's ids in its logger's metadata): what
    /// `handle` and `completed` then get, so every line the job logs carries it. Called once per run, in chain
    /// order, also for a job that will not start (an unknown class, cancelled before it started). Must return quickly.
    func prepare(_ job: Job, context: JobContext) -> JobContext

    /// Runs the rest of the chain (`next`, the handler last) for `job`, with this middleware's work around it.
    ///
    /// Pass `context` on (changed if need be: its logger's metadata, for one). Throw to fail the job without running
    /// the rest (a `JobFailure` picks its error class and whether it is retried); return a value to finish it.
    func handle(_ job: Job, context: JobContext, next: JobMiddlewareNext) async throws -> JSONValue

    /// The worker decided the job's outcome (succeeded, retrying or dead) and handed its move to the acknowledger.
    /// Called once per run, in chain order, also for a job that could not start (an unknown class); not for a job a
    /// shutdown gave up on (it goes back to its queue). Must return quickly.
    func completed(_ job: Job, outcome: JobOutcome, context: JobContext)
}

/// The rest of a middleware chain: the next middleware, or the handler's `perform`.
public typealias JobMiddlewareNext = @Sendable (Job, JobContext) async throws -> JSONValue

extension JobMiddleware {
    public func prepare(_ job: Job, context: JobContext) -> JobContext { context }

    public func handle(_ job: Job, context: JobContext, next: JobMiddlewareNext) async throws -> JSONValue {
        try await next(job, context)
    }

    public func completed(_ job: Job, outcome: JobOutcome, context: JobContext) {}
}
