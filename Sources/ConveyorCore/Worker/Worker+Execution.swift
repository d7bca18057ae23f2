import Foundation
import Logging
import Synchronization

extension Worker {
    /// What the handler and the middleware see of `job`, with a logger carrying its `job.id`, `job.class` and `queue`.
    func context(for job: Job, deadline: ContinuousClock.Instant) -> JobContext {
        var jobLogger = logger
        jobLogger[metadataKey: "job.id"] = "\(job.jid)"
        jobLogger[metadataKey: "job.class"] = "\(job.jobClass)"
        jobLogger[metadataKey: "queue"] = "\(job.queue)"
        let backend = backend
        let jid = job.jid
        let progressLogger = jobLogger
        let reporter = JobProgressReporter { fields, ttl in
            do {
                try await backend.writeProgress(jid: jid, fields: fields, expireSeconds: ttl)
            } catch {
                progressLogger.debug("progress not written", metadata: ["error": "\(error)"])
            }
        }
        var context = JobContext(
            jid: job.jid, jobClass: job.jobClass, queue: job.queue, arguments: job.arguments,
            attempt: Saturating.add(job.previousFailures, 1), deadline: deadline, payload: job.payload, logger: jobLogger,
            progressReporter: reporter)
        context.jobLog = { line in
            do {
                try await backend.appendJobLog(jid: jid, line: line)
            } catch {
                progressLogger.debug("job log line not written", metadata: ["error": "\(error)"])
            }
        }
        return context
    }

    /// `context` after every middleware's `prepare`, in chain order.
    func prepared(_ job: Job, _ context: JobContext) -> JobContext {
        middleware.reduce(context) { $1.prepare(job, context: $0) }
    }

    /// Runs one job through its middleware and handler under its deadline (its class's time limit, or its own
    /// `timeout` when shorter), and records the outcome. A job cancelled before it starts is recorded `cancelled`
    /// without running; one cancelled while it runs is stopped (its task cancelled, so its helper is killed).
    func execute(_ job: Job, _ jobClass: JobClass) async {
        let startedAt = JobTime.now()
        let timeout = job.timeout.map { min($0, jobClass.timeout) } ?? jobClass.timeout
        let context = prepared(job, context(for: job, deadline: .now + timeout))
        let handler = jobClass.handler
        let limit = timeout < jobClass.timeout ? "its own \(timeout) timeout" : "its \(timeout) limit"
        if cancelRequests.withLock({ $0.recent.contains(job.jid) }) {
            let outcome = record(
                job: job, policy: jobClass.retry, startedAt: startedAt, result: .failure(.cancelled("cancelled before it started")))
            context.progressReporter?.finish(status: outcome.status.rawValue)
            for m in middleware { m.completed(job, outcome: outcome, context: context) }
            return
        }
        let token = watchdog.newToken()
        runningJobs.withLock { $0[token] = (job.queue, job.raw, Saturating.int(startedAt)) }
        defer { _ = runningJobs.withLock { $0.removeValue(forKey: token) } }
        let result: Result<JSONValue, JobFailure> = await withCheckedContinuation { continuation in
            let once = OnceResume(continuation)
            let running = Mutex<Task<Void, Never>?>(nil)
            // Resume before cancelling: a cancelled handler throws CancellationError at once, and that must not win the
            // race and become the job's error. Registered before the task starts, so a stop (a cancel, a BullMQ lock
            // lost) that comes at once is not missed: the task then starts cancelled.
            let stop: @Sendable (JobFailure) -> Void = { failure in
                once.resume(.failure(failure))
                running.withLock { $0?.cancel() }
            }
            watchdog.add(
                token, jid: job.jid, deadline: context.deadline,
                onTimeout: { stop(.transient(.jobTimeout, "\(job.jobClass) ran longer than \(limit) and was stopped")) },
                onAbandon: { stop(.transient(.workerShutdown, "worker shut down before the job finished")) },
                onStop: stop)
            // The middleware and the handler run in their own task so that neither, ignoring cancellation, can hold the
            // job past its deadline: the watchdog records the timeout and the job's slot moves on.
            running.withLock { slot in
                let task = Task {
                    do {
                        once.resume(.success(try await self.perform(job, context, from: 0, handler: handler)))
                    } catch {
                        once.resume(.failure(JobFailure(error)))
                    }
                }
                if once.isResumed { task.cancel() }
                slot = task
            }
        }
        watchdog.remove(token)
        if abandoned.load(ordering: .sequentiallyConsistent) { return }
        let outcome = record(job: job, policy: jobClass.retry, startedAt: startedAt, result: result, nextAttempt: context.nextAttemptFields)
        context.progressReporter?.finish(status: outcome.status.rawValue)
        for m in middleware { m.completed(job, outcome: outcome, context: context) }
    }

    /// The middleware chain from `index` on, the handler's `perform` last.
    private func perform(_ job: Job, _ context: JobContext, from index: Int, handler: any JobHandler) async throws -> JSONValue {
        guard index < middleware.count else { return try await handler.perform(context) }
        return try await middleware[index].handle(job, context: context) { job, context in
            try await self.perform(job, context, from: index + 1, handler: handler)
        }
    }

    /// Decides a job's outcome (ack, retry or dead) and hands its move, with its journal entry, to the acknowledger.
    @discardableResult
    func record(
        job: Job, policy: RetryPolicy, startedAt: Double, result: Result<JSONValue, JobFailure>, nextAttempt: JSONObject = JSONObject()
    ) -> JobOutcome {
        let now = JobTime.now()
        var outcome = JobOutcome(
            jid: job.jid, jobClass: job.jobClass, queue: job.queue, status: .succeeded, attempts: Saturating.add(job.previousFailures, 1),
            result: nil, failure: nil, enqueuedAt: job.enqueuedAt, startedAt: startedAt, finishedAt: now, payload: job.payload)
        let move: JobTransitions.Move
        switch result {
        case .success(let value):
            move = .init(receipt: job.receipt, target: .ack, counts: .processed)
            outcome.result = value
        case .failure(let failure) where failure.cancelsJob:
            // Cancelled by an operator: done, never retried, recorded `cancelled`.
            outcome.status = .cancelled
            outcome.failure = failure
            move = .init(receipt: job.receipt, target: .ack, counts: .processed)
        case .failure(let failure) where failure.skipsJob:
            // Refused by a middleware without running (a duplicate unique job): done, not retried, recorded `skipped`.
            outcome.status = .skipped
            outcome.failure = failure
            move = .init(receipt: job.receipt, target: .ack, counts: .processed)
        case .failure(let failure):
            var noted = job
            for (key, value) in nextAttempt { noted.payload[key] = value }
            let (payload, destination) = JobTransitions.failed(noted, failure: failure, policy: policy, now: now)
            outcome.failure = failure
            outcome.payload = payload
            switch destination {
            case .retry(let at):
                outcome.status = .retrying
                outcome.retryAt = at
                move = .init(receipt: job.receipt, target: .retry(payload: payload.bytes, at: at), counts: .processedAndFailed)
            case .deferred(let at):
                // Not a failure: the next run is the same attempt, and Sidekiq's failed count is not raised.
                outcome.status = .deferred
                outcome.retryAt = at
                move = .init(receipt: job.receipt, target: .retry(payload: payload.bytes, at: at), counts: .processed)
            case .dead:
                outcome.status = .dead
                if JobTransitions.keepsDead(payload) {
                    move = .init(receipt: job.receipt, target: .dead(payload: payload.bytes), counts: .processedAndFailed)
                } else {
                    move = .init(receipt: job.receipt, target: .ack, counts: .processedAndFailed)
                }
            }
        }
        var journaled = move
        journaled.journal = journalEntry(for: outcome)
        // A unique job whose outcome is terminal gives up its lock in the same step (not a duplicate: it never held it).
        if outcome.status == .succeeded || outcome.status == .dead || outcome.status == .cancelled {
            journaled.uniqueRelease = UniqueJob.release(for: job)
        }
        acknowledger.add(journaled)
        return outcome
    }
}

/// Enforces job deadlines: one timer loop for every running job, instead of a timer task per job.
final class Watchdog: Sendable {
    private struct Entry {
        var jid: String
        var deadline: ContinuousClock.Instant
        var onTimeout: @Sendable () -> Void
        var onAbandon: @Sendable () -> Void
        var onStop: @Sendable (JobFailure) -> Void
    }

    private let entries = Mutex<[UInt64: Entry]>([:])
    private let tokens = Atomic<UInt64>(0)

    func newToken() -> UInt64 { tokens.add(1, ordering: .relaxed).newValue }

    func add(
        _ token: UInt64, jid: String, deadline: ContinuousClock.Instant, onTimeout: @escaping @Sendable () -> Void,
        onAbandon: @escaping @Sendable () -> Void, onStop: @escaping @Sendable (JobFailure) -> Void
    ) {
        entries.withLock {
            $0[token] = Entry(jid: jid, deadline: deadline, onTimeout: onTimeout, onAbandon: onAbandon, onStop: onStop)
        }
    }

    /// The jids of the running jobs.
    var runningJIDs: [String] { entries.withLock { $0.values.map(\.jid) } }

    /// Stops every running job whose jid is in `jids` as cancelled; returns how many it stopped.
    @discardableResult
    func cancel(_ jids: Set<String>) -> Int {
        stop(jids, failure: .cancelled("cancelled while running; stopped"))
    }

    /// Stops every running job whose jid is in `jids` with `failure` (its task cancelled); returns how many.
    @discardableResult
    func stop(_ jids: Set<String>, failure: JobFailure) -> Int {
        guard !jids.isEmpty else { return 0 }
        let hit = entries.withLock { e -> [Entry] in
            let due = e.filter { jids.contains($0.value.jid) }
            for key in due.keys { e.removeValue(forKey: key) }
            return Array(due.values)
        }
        for entry in hit { entry.onStop(failure) }
        return hit.count
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
