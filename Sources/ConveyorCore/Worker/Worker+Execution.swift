import Foundation
import Logging
import Synchronization

extension Worker {
    /// Runs one job under its class's hard timeout and records the outcome.
    func execute(_ job: Job, _ jobClass: JobClass) async {
        let startedAt = JobTime.now()
        var jobLogger = logger
        jobLogger[metadataKey: "job.id"] = "\(job.jid)"
        jobLogger[metadataKey: "job.class"] = "\(job.jobClass)"
        jobLogger[metadataKey: "queue"] = "\(job.queue)"
        let context = JobContext(
            jid: job.jid, jobClass: job.jobClass, queue: job.queue, arguments: job.arguments,
            attempt: Saturating.add(job.previousFailures, 1), deadline: .now + jobClass.timeout, payload: job.payload, logger: jobLogger)
        for observer in observers { observer.jobStarted(jid: job.jid, jobClass: job.jobClass, queue: job.queue) }
        jobLogger.debug("job started")

        let handler = jobClass.handler
        let timeout = jobClass.timeout
        let token = watchdog.newToken()
        runningJobs.withLock { $0[token] = (job.queue, job.raw, Saturating.int(startedAt)) }
        defer { _ = runningJobs.withLock { $0.removeValue(forKey: token) } }
        let result: Result<JSONValue, JobFailure> = await withCheckedContinuation { continuation in
            let once = OnceResume(continuation)
            // The handler runs in its own task so a handler that ignores cancellation cannot hold the job past
            // its deadline: the watchdog records the timeout and the job's slot moves on.
            let task = Task {
                do {
                    once.resume(.success(try await handler.perform(context)))
                } catch {
                    once.resume(.failure(JobFailure(error)))
                }
            }
            watchdog.add(
                token, deadline: context.deadline,
                // Resume before cancelling: a cancelled handler throws CancellationError at once, and that must not
                // win the race and become the job's error.
                onTimeout: {
                    once.resume(
                        .failure(.transient(.jobTimeout, "\(job.jobClass) ran longer than its \(timeout) limit and was stopped")))
                    task.cancel()
                },
                onAbandon: {
                    once.resume(.failure(.transient(.workerShutdown, "worker shut down before the job finished")))
                    task.cancel()
                })
        }
        watchdog.remove(token)
        if abandoned.load(ordering: .sequentiallyConsistent) { return }
        record(job: job, policy: jobClass.retry, startedAt: startedAt, result: result, logger: jobLogger)
    }

    /// Writes a job's outcome (ack, retry or dead) and tells the observers.
    func record(job: Job, policy: RetryPolicy, startedAt: Double, result: Result<JSONValue, JobFailure>, logger: Logger? = nil) {
        let log = logger ?? self.logger
        let now = JobTime.now()
        let durationMS = Saturating.int(((now - startedAt) * 1000).rounded())
        var outcome = JobOutcome(
            jid: job.jid, jobClass: job.jobClass, queue: job.queue, status: .succeeded, attempts: Saturating.add(job.previousFailures, 1),
            result: nil, failure: nil, enqueuedAt: job.enqueuedAt, startedAt: startedAt, finishedAt: now, payload: job.payload)
        let move: JobTransitions.Move
        switch result {
        case .success(let value):
            move = .init(receipt: job.receipt, target: .ack, counts: .processed)
            outcome.result = value
            if log.logLevel <= .info {
                var metadata: Logger.Metadata = ["duration_ms": "\(durationMS)"]
                if let enqueued = job.enqueuedAt { metadata["latency_ms"] = "\(String(format: "%.2f", (startedAt - enqueued) * 1000))" }
                if log[metadataKey: "job.id"] == nil {
                    metadata["job.id"] = "\(job.jid)"
                    metadata["job.class"] = "\(job.jobClass)"
                }
                log.info("job succeeded", metadata: metadata)
            }
        case .failure(let failure):
            let (payload, destination) = JobTransitions.failed(job, failure: failure, policy: policy, now: now)
            outcome.failure = failure
            outcome.payload = payload
            var metadata: Logger.Metadata = [
                "job.id": "\(job.jid)", "job.class": "\(job.jobClass)", "queue": "\(job.queue)",
                "error_class": "\(failure.errorClass)", "error": "\(failure.message)", "attempt": "\(outcome.attempts)",
                "duration_ms": "\(durationMS)",
            ]
            switch destination {
            case .retry(let at):
                outcome.status = .retrying
                move = .init(receipt: job.receipt, target: .retry(payload: payload.bytes, at: at), counts: .processedAndFailed)
                metadata["retry_in_s"] = "\(Saturating.int((at - now).rounded()))"
                log.warning("job failed; will retry", metadata: metadata)
            case .dead:
                outcome.status = .dead
                metadata["reason"] = failure.isPermanent ? "permanent error" : "out of attempts"
                if JobTransitions.keepsDead(payload) {
                    move = .init(receipt: job.receipt, target: .dead(payload: payload.bytes), counts: .processedAndFailed)
                    log.error("job failed; moved to the dead set", metadata: metadata)
                } else {
                    move = .init(receipt: job.receipt, target: .ack, counts: .processedAndFailed)
                    log.error("job failed; discarded (retry: false)", metadata: metadata)
                }
            }
        }
        var journaled = move
        journaled.journal = journalEntry(for: outcome)
        acknowledger.add(journaled)
        for observer in observers { observer.jobFinished(outcome) }
    }
}

/// Enforces job deadlines: one timer loop for every running job, instead of a timer task per job.
final class Watchdog: Sendable {
    private struct Entry {
        var deadline: ContinuousClock.Instant
        var onTimeout: @Sendable () -> Void
        var onAbandon: @Sendable () -> Void
    }

    private let entries = Mutex<[UInt64: Entry]>([:])
    private let tokens = Atomic<UInt64>(0)

    func newToken() -> UInt64 { tokens.add(1, ordering: .relaxed).newValue }

    func add(
        _ token: UInt64, deadline: ContinuousClock.Instant, onTimeout: @escaping @Sendable () -> Void,
        onAbandon: @escaping @Sendable () -> Void
    ) {
        entries.withLock { $0[token] = Entry(deadline: deadline, onTimeout: onTimeout, onAbandon: onAbandon) }
    }

    func remove(_ token: UInt64) {
        _ = entries.withLock { $0.removeValue(forKey: token) }
    }

    /// Fires every expired deadline, every 50 ms, until `stop` is set and no job is left.
    func run(until stop: AsyncEvent) async {
        while true {
            let now = ContinuousClock.now
            let expired = entries.withLock { e -> [Entry] in
                let due = e.filter { $0.value.deadline <= now }
                for key in due.keys { e.removeValue(forKey: key) }
                return Array(due.values)
            }
            for entry in expired { entry.onTimeout() }
            if stop.isSet && entries.withLock({ $0.isEmpty }) { return }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Gives up on every running job (shutdown timeout).
    func abandonAll() {
        let all = entries.withLock { e in
            defer { e.removeAll() }
            return Array(e.values)
        }
        for entry in all { entry.onAbandon() }
    }
}
