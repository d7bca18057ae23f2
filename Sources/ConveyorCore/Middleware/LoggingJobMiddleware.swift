import Foundation
import Logging

/// One log line per run: `job started` (debug), then `job succeeded` (info, with `duration_ms` and `latency_ms`),
/// `job failed; will retry` (warning, `retry_in_s`), or `job failed; moved to the dead set` / `discarded (retry:
/// false)` (error, `reason`), on the job's logger (`job.id`, `job.class`, `queue`). The worker puts it first in every
/// chain.
public struct LoggingJobMiddleware: JobMiddleware {
    public init() {}

    public func handle(_ job: Job, context: JobContext, next: JobMiddlewareNext) async throws -> JSONValue {
        context.logger.debug("job started")
        return try await next(job, context)
    }

    public func completed(_ job: Job, outcome: JobOutcome, context: JobContext) {
        let log = context.logger
        let durationMS = Saturating.int(((outcome.finishedAt - outcome.startedAt) * 1000).rounded())
        guard let failure = outcome.failure else {
            guard log.logLevel <= .info else { return }
            var metadata: Logger.Metadata = ["duration_ms": "\(durationMS)"]
            if let enqueued = outcome.enqueuedAt {
                metadata["latency_ms"] = "\(String(format: "%.2f", (outcome.startedAt - enqueued) * 1000))"
            }
            log.info("job succeeded", metadata: metadata)
            return
        }
        var metadata: Logger.Metadata = [
            "job.id": "\(outcome.jid)", "job.class": "\(outcome.jobClass)", "queue": "\(outcome.queue)",
            "error_class": "\(failure.errorClass)", "error": "\(failure.message)", "attempt": "\(outcome.attempts)",
            "duration_ms": "\(durationMS)",
        ]
        switch outcome.status {
        case .skipped:
            log.info("job skipped", metadata: metadata)
        case .cancelled:
            log.notice("job cancelled", metadata: metadata)
        case .retrying:
            if let at = outcome.retryAt { metadata["retry_in_s"] = "\(Saturating.int((at - outcome.finishedAt).rounded()))" }
            log.warning("job failed; will retry", metadata: metadata)
        case .deferred:
            if let at = outcome.retryAt { metadata["retry_in_s"] = "\(Saturating.int((at - outcome.finishedAt).rounded()))" }
            log.notice("job deferred: its destination asked to wait; no attempt spent", metadata: metadata)
        default:
            metadata["reason"] = failure.isPermanent ? "permanent error" : "out of attempts"
            if JobTransitions.keepsDead(outcome.payload) {
                log.error("job failed; moved to the dead set", metadata: metadata)
            } else {
                log.error("job failed; discarded (retry: false)", metadata: metadata)
            }
        }
    }
}
