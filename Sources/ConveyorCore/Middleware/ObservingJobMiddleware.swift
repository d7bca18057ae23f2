/// Tells `JobObserver`s (metrics, a result store without a journal, a family's own) of every run: `jobStarted` before
/// the rest of the chain, `jobFinished` with the decided outcome. The worker puts it second in every chain when it
/// has observers; outcomes decided outside a run (a payload quarantined at fetch, a dead process's job reaped) reach
/// them from the worker directly.
public struct ObservingJobMiddleware: JobMiddleware {
    public let observers: [any JobObserver]

    public init(_ observers: [any JobObserver]) {
        self.observers = observers
    }

    public func handle(_ job: Job, context: JobContext, next: JobMiddlewareNext) async throws -> JSONValue {
        for observer in observers { observer.jobStarted(jid: job.jid, jobClass: job.jobClass, queue: job.queue) }
        return try await next(job, context)
    }

    public func completed(_ job: Job, outcome: JobOutcome, context: JobContext) {
        for observer in observers { observer.jobFinished(outcome) }
    }
}
