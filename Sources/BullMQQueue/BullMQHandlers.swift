public import ConveyorCore
import Synchronization

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
            let inner = inner
            let backend = backend
            let box = Mutex<Task<Void, Never>?>(nil)
            let value: JSONValue = try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<JSONValue, any Error>) in
                    let once = Once(continuation)
                    let task = Task {
                        do {
                            once.resume(.success(try await inner.perform(job)))
                        } catch {
                            once.resume(.failure(error))
                        }
                    }
                    box.withLock { $0 = task }
                    _ = backend.watchLock(jid: job.jid) {
                        once.resume(
                            .failure(
                                JobFailure.transient(
                                    .bullMQLockLost,
                                    "the job's BullMQ lock was lost while it ran (another worker may run it): its handler was cancelled")))
                        task.cancel()
                    }
                }
            } onCancel: {
                box.withLock { $0?.cancel() }
            }
            backend.recordResult(value, jid: job.jid)
            return value
        }
    }

    /// Resumes a continuation once; later results are dropped.
    final class Once: Sendable {
        private let continuation: Mutex<CheckedContinuation<JSONValue, any Error>?>
        init(_ continuation: CheckedContinuation<JSONValue, any Error>) { self.continuation = Mutex(continuation) }
        func resume(_ result: Result<JSONValue, any Error>) {
            let c = continuation.withLock { c in
                defer { c = nil }
                return c
            }
            c?.resume(with: result)
        }
    }
}
