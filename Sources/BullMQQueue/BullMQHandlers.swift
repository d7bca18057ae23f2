public import ConveyorCore

extension ErrorClass {
    /// The job's BullMQ lock was lost mid-run (renewal refused, or the lock holds another worker's token).
    public static let bullMQLockLost: ErrorClass = "BullMQLockLost"
    /// BullMQ's stalled check failed the job for good (`job stalled more than allowable limit`).
    public static let bullMQStalled: ErrorClass = "BullMQStalled"
    /// A child of this flow parent failed, and its `failParentOnFailure` fails the parent (`child <key> failed`).
    public static let bullMQChildFailed: ErrorClass = "BullMQChildFailed"
}

/// Wraps every class of a registry so that its BullMQ jobs run as BullMQ's worker runs them, and better: a job failed
/// by the stalled check or by a child's `failParentOnFailure` fails without running; a job whose lock is lost has its handler cancelled at once (a Node
/// worker keeps running it beside the copy another worker took); the handler's result becomes the job's `returnvalue`.
/// Jobs of other backends run unchanged.
public enum BullMQHandlers {
    public static func wrap(_ registry: JobRegistry, backend: BullMQBackend) -> JobRegistry {
        var wrapped = JobRegistry()
        for name in registry.names {
            guard var jobClass = registry[name] else { continue }
            jobClass.handler = Guarded(inner: jobClass.handler, backend: backend)
            wrapped.register(jobClass)
        }
        return wrapped
    }

    struct Guarded: JobHandler {
        let inner: any JobHandler
        let backend: BullMQBackend

        func perform(_ job: JobContext) async throws -> JSONValue {
            guard backend.holds(jid: job.jid) else { return try await inner.perform(job) }
            if let reason = backend.deferredFailure(jid: job.jid) {
                // BullMQ's two deferred failures: a failed child's (`child <key> failed`), the stalled check's.
                throw JobFailure.permanent(reason.hasPrefix("child ") ? .bullMQChildFailed : .bullMQStalled, reason)
            }
            // A lock lost while the handler runs stops it through the worker (`setJobStopper`); one lost before it
            // started stops it here.
            if backend.lockLost(jid: job.jid) { throw BullMQBackend.lockLost }
            let value = try await inner.perform(job)
            backend.recordResult(value, jid: job.jid)
            return value
        }
    }
}
