public import Logging
public import ServiceLifecycle
import Synchronization

/// A worker process: takes jobs from its queues with a reliable fetch, runs them under the concurrency limits,
/// records outcomes, heartbeats, reaps dead processes' jobs and promotes due scheduled and retried jobs.
///
/// Every job taken from a queue sits in this process's in-flight list until its outcome is written, so a crash at
/// any instant leaves it where a live process's reaper finds it.
public final class Worker: Service {
    public let configuration: WorkerConfiguration
    public let registry: JobRegistry
    /// Where the jobs live: every read and write of queues, sets and liveness records goes through it.
    let backend: any QueueBackend
    let observers: [any JobObserver]
    /// Every run's chain, outermost first: per-job logs, the observers (metrics), then the caller's middleware.
    let middleware: [any JobMiddleware]
    /// Where terminal outcomes are kept durably with their acks (the result store), or nil when none are recorded.
    let journal: (any OutcomeJournal)?
    let logger: Logger
    var identity: String { configuration.identity }
    /// Numbers the reaper's batches in this process's journal (`r<n>`).
    let journalSequence = Atomic<UInt64>(0)

    let dispatcher: Dispatcher
    let acknowledger: Acknowledger
    let watchdog = Watchdog()
    /// The jobs of the in-flight list this process knows it holds.
    let ledger = InflightLedger()
    /// Set when a fetch failed: its jobs may be in the in-flight list with nobody running them.
    let reconcileNeeded = AsyncEvent()
    let fetchOutage = OutageLog("fetching jobs")

    /// Set once shutdown starts: nothing new is fetched.
    let stopping = AsyncEvent()
    /// Set when fetched jobs should no longer be started (`TSTP` from Sidekiq's Web UI, or shutdown).
    let quiet = AsyncEvent()
    /// Open while the fetcher found its queues empty: the per-queue waiters wait in the backend for a job.
    let idle = AsyncEvent()
    /// Set by a blocker that received a job.
    let wake = AsyncEvent()
    /// Jobs received by blockers, waiting to be dispatched by the fetch loop.
    let delivered = Mutex<[FetchedJob]>([])
    /// After shutdown gave up on running jobs, their late outcomes are not recorded (the jobs were requeued).
    let abandoned = Atomic<Bool>(false)
    /// When the stop began (`shutdown()`), which sets its deadlines.
    let stopBegan = Mutex<ContinuousClock.Instant?>(nil)
    /// Set when `drain` returned.
    let drained = AsyncEvent()
    /// Set when `drain` returned or a stop began: what `run` waits for before it starts counting the stop's deadline.
    let runEnding = AsyncEvent()
    /// Completions a stop could not write by its deadline, and whether it left jobs in the in-flight list.
    let unwritten = Atomic<Int>(0)
    let stopLeftJobs = Atomic<Bool>(false)

    /// What a stop has after `shutdownTimeout` to write the last completions, return unfinished jobs to their
    /// queues and deregister. Past it the stop ends whatever the queue backend does (`stopLeftJobsInFlight`).
    public static let stopWriteAllowance: Duration = .seconds(5)

    /// Completions the last stop dropped at its deadline because the backend did not take them in time.
    public var unwrittenCompletions: Int { unwritten.load(ordering: .sequentiallyConsistent) }
    /// Whether the last stop ended with jobs still in this process's in-flight list (completions not written, or
    /// unfinished jobs not returned): they run again through a live worker's reaper. `conveyor worker` exits 75.
    public var stopLeftJobsInFlight: Bool { stopLeftJobs.load(ordering: .sequentiallyConsistent) }
    let startedAt = JobTime.now()
    /// Running jobs by watchdog token, for Sidekiq's `<identity>:workers` hash: queue, payload, start time.
    let runningJobs = Mutex<[UInt64: (queue: String, raw: [UInt8], runAt: Int)]>([:])
    /// The recently cancelled jids as last read (`QueueBackend.cancellations`), and that list's version.
    let cancelRequests = Mutex<(version: String?, recent: Set<String>)>((nil, []))

    /// - Parameters:
    ///   - backend: serves this process (`configuration.identity`); the worker closes it when `run` returns.
    ///   - observers: told of every outcome (through `ObservingJobMiddleware` for runs).
    ///   - middleware: runs around every job's `perform`, inside the worker's own logging and observing middleware.
    public init(
        backend: any QueueBackend, registry: JobRegistry, configuration: WorkerConfiguration,
        observers: [any JobObserver] = [], middleware: [any JobMiddleware] = [], journal: (any OutcomeJournal)? = nil,
        logger: Logger = Logger(label: "conveyor.worker")
    ) {
        precondition(backend.identity == configuration.identity, "a worker's backend serves its own identity")
        self.backend = backend
        self.registry = registry
        self.configuration = configuration
        self.observers = observers
        self.middleware = [LoggingJobMiddleware()] + (observers.isEmpty ? [] : [ObservingJobMiddleware(observers)]) + middleware
        self.journal = journal
        var logger = logger
        logger[metadataKey: "process"] = "\(configuration.identity)"
        self.logger = logger
        self.dispatcher = Dispatcher(concurrency: configuration.concurrency)
        self.acknowledger = Acknowledger(backend: backend, ledger: ledger, journal: journal, logger: logger)
        let watchdog = watchdog
        backend.setJobStopper { jid, failure in watchdog.stop([jid], failure: failure) }
    }

    /// Asks the worker to stop: no new jobs are fetched, running ones get `shutdownTimeout` to finish, the rest
    /// go back to the head of their queues, and `run()` returns.
    public func shutdown() {
        guard !stopping.isSet else { return }
        logger.info("shutting down: no new jobs; waiting for running jobs", metadata: ["running": "\(dispatcher.running)"])
        stopBegan.withLock { $0 = $0 ?? .now }
        stopping.set()
        runEnding.set()
        quiet.set()
        wake.set()
        idle.set()
        // Jobs waiting for a slot stay in the in-flight list and go back to their queues with the rest.
        _ = dispatcher.release()
    }

    /// Stops fetching but keeps running what was fetched (Sidekiq's quiet mode).
    public func quietDown() {
        guard !quiet.isSet else { return }
        logger.info("quiet: no new jobs will be fetched")
        quiet.set()
        wake.set()
    }

    /// Runs until `shutdown()` (or, in a `ServiceGroup`, its graceful shutdown); returns after the graceful drain,
    /// and at the latest `shutdownTimeout + stopWriteAllowance` after the stop began, whatever the backend does.
    public func run() async throws {
        let draining = Task {
            await self.drain()
            self.drained.set()
            self.runEnding.set()
        }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await waitForDrain()
            } onGracefulShutdown: {
                self.shutdown()
            }
        } onCancel: {
            self.shutdown()
            draining.cancel()
        }
    }

    /// Waits for `drain` to return; once a stop began, no longer than its deadline. Past it, the completions not
    /// yet written are dropped (counted and logged) and the drain is left to end on its own.
    private func waitForDrain() async {
        await runEnding.wait()
        if drained.isSet { return }
        let began = stopBegan.withLock { $0 } ?? .now
        let deadline = began + configuration.shutdownTimeout + Self.stopWriteAllowance
        if await drained.wait(timeout: max(.zero, deadline - .now)) { return }
        let dropped = acknowledger.abandon()
        unwritten.store(dropped, ordering: .sequentiallyConsistent)
        stopLeftJobs.store(true, ordering: .sequentiallyConsistent)
        logger.error(
            "stop deadline reached with the queue backend not answering: giving up; the jobs of unwritten completions stay in this process's in-flight list and run again through a live worker's reaper",
            metadata: [
                "unwritten_completions": "\(dropped)", "running": "\(dispatcher.running)",
                "deadline": "\(configuration.shutdownTimeout + Self.stopWriteAllowance)",
            ])
    }

    private func drain() async {
        guard await register() else {
            backend.close()
            return
        }
        logger.info(
            "worker started",
            metadata: [
                "queues": "\(configuration.queues)", "concurrency": "\(configuration.concurrency)",
                "classes": "\(registry.names.joined(separator: ","))",
            ])
        let ackTask = Task { await acknowledger.run() }
        let housekeeping = Task {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.heartbeatLoop() }
                group.addTask { await self.reaperLoop() }
                group.addTask { await self.promoterLoop() }
                group.addTask { await self.reconcileLoop() }
                group.addTask { await self.cancelWatchLoop() }
            }
        }
        await withDiscardingTaskGroup { group in
            group.addTask { await self.watchdog.run(until: self.stopping) }
            for queue in configuration.queues.names {
                group.addTask { await self.blockerLoop(queue: queue) }
            }
            await fetchLoop(group: &group)
            // Running jobs get `shutdownTimeout` from the stop, however long the fetchers took to notice it.
            let began = stopBegan.withLock { $0 } ?? .now
            let drained = await dispatcher.waitUntilDrained(timeout: max(.zero, began + configuration.shutdownTimeout - .now))
            if !drained {
                abandoned.store(true, ordering: .sequentiallyConsistent)
                logger.warning(
                    "shutdown timeout reached: pushing unfinished jobs back to their queues",
                    metadata: ["running": "\(dispatcher.running)"])
                watchdog.abandonAll()
            }
        }
        await acknowledger.flush()
        housekeeping.cancel()
        reconcileNeeded.set()
        _ = await housekeeping.value
        let requeued = await requeueInflight()
        acknowledger.stop()
        await ackTask.value
        await deregister()
        if stopLeftJobs.load(ordering: .sequentiallyConsistent) {
            logger.warning("worker stopped; jobs left in its in-flight list for a live worker's reaper", metadata: ["requeued": "\(requeued)"])
        } else {
            logger.info("worker stopped", metadata: ["requeued": "\(requeued)"])
        }
        backend.close()
    }

    /// The first heartbeat. A worker may start before its Redis does (a pod scheduled first, a restart under way):
    /// it keeps trying, with backoff up to 5 s and one log line per outage, until the heartbeat lands or shutdown
    /// begins (then false). Until then nothing is fetched, and `/readyz` says 503.
    private func register() async -> Bool {
        let outage = OutageLog("registering this worker process (waiting for the queue backend)")
        var attempt = 0
        while !stopping.isSet {
            do {
                try await heartbeat()
                outage.succeeded(logger: logger)
                // The recently cancelled jobs before the first fetch: none of them may start. A refusal (an ACL
                // without ZRANGE) is said and does not keep the worker from starting; the poll tries again.
                do {
                    try await checkCancellations()
                } catch {
                    logger.warning("could not read the cancel requests before the first fetch", metadata: ["error": "\(error)"])
                }
                return true
            } catch {
                outage.failed(error, logger: logger)
                attempt += 1
                _ = await stopping.wait(timeout: .milliseconds(min(5000, 100 << min(attempt, 6))))
            }
        }
        return false
    }

    // MARK: Fetching

    private func fetchLoop(group: inout DiscardingTaskGroup) async {
        var fetchErrors = 0
        while !quiet.isSet {
            dispatchDelivered(group: &group)
            await dispatcher.waitForCapacity()
            if quiet.isSet { break }
            let want = dispatcher.capacity
            if want == 0 { continue }
            let order = configuration.queues.order()
            let batch: [FetchedJob]
            await ledger.beginFetch()
            if quiet.isSet {
                ledger.endFetch(delivered: [])
                break
            }
            do {
                batch = try await fetch(order: order, count: want)
                ledger.endFetch(delivered: batch.map(\.receipt.member))
                fetchErrors = 0
                fetchOutage.succeeded(logger: logger)
            } catch {
                ledger.endFetch(delivered: [])
                reconcileNeeded.set()
                fetchErrors += 1
                fetchOutage.failed(error, logger: logger)
                await quiet.wait(timeout: .milliseconds(min(2000, 50 * (1 << min(fetchErrors, 6)))))
                continue
            }
            if batch.isEmpty {
                // Nothing ready: let the per-queue waiters wait in the backend until a job arrives.
                idle.set()
                await wake.wait()
                wake.reset()
                idle.reset()
                continue
            }
            var started = 0
            var pushedBack = 0
            for item in batch {
                switch dispatch(item, group: &group) {
                case .pushBack: pushedBack += 1
                default: started += 1
                }
            }
            if pushedBack > 0 && started == 0 {
                // Every job fetched belongs to classes at their limit: wait for one to finish before fetching again.
                await quiet.wait(timeout: .milliseconds(200))
            }
        }
        dispatchDelivered(group: &group)
    }

    private func fetch(order: [String], count: Int) async throws -> [FetchedJob] {
        try await backend.fetch(from: order, count: count)
    }

    private func dispatchDelivered(group: inout DiscardingTaskGroup) {
        let items = delivered.withLock { d in
            defer { d.removeAll() }
            return d
        }
        for item in items {
            // A waiter can take a job after the fetcher filled every slot (its wait returned just as the fetcher woke).
            // Held here, it would wait for one of this process's jobs to end, however long they run, while other
            // workers have room: it goes back to the head of its queue instead, the next job any worker takes.
            if dispatcher.capacity == 0 {
                acknowledger.add(.init(receipt: item.receipt, target: .queue(item.queue, payload: item.raw, head: true), counts: .none))
                continue
            }
            _ = dispatch(item, group: &group)
        }
    }

    /// One waiter per queue waits in the backend for a job while the fetcher is idle, so a job pushed onto an
    /// empty queue starts within milliseconds without polling.
    private func blockerLoop(queue: String) async {
        let timeout = configuration.blockTimeout
        let outage = OutageLog("waiting for jobs")
        while !quiet.isSet {
            // Re-check quiet every second: the fetcher resets `idle` when it wakes, possibly past a shutdown.
            guard await idle.wait(timeout: .seconds(1)), !quiet.isSet else { continue }
            await ledger.beginFetch()
            do {
                if let fetched = try await backend.waitForJob(on: queue, timeout: timeout) {
                    ledger.endFetch(delivered: [fetched.receipt.member])
                    // Kept even after shutdown began: it is in the in-flight list and goes back with the rest. Taken
                    // while every slot is busy (the fetcher woke and filled them), it goes back to the head of its queue
                    // at once; the fetcher's next turn does the same for one that arrives as it fills the last slot.
                    let full = delivered.withLock { d in
                        if dispatcher.capacity == 0 { return true }
                        d.append(fetched)
                        return false
                    }
                    if full {
                        acknowledger.add(.init(receipt: fetched.receipt, target: .queue(queue, payload: fetched.raw, head: true), counts: .none))
                    }
                    wake.set()
                } else {
                    ledger.endFetch(delivered: [])
                }
                outage.succeeded(logger: logger, metadata: ["queue": "\(queue)"])
            } catch {
                ledger.endFetch(delivered: [])
                reconcileNeeded.set()
                outage.failed(error, logger: logger, metadata: ["queue": "\(queue)"])
                await quiet.wait(timeout: .milliseconds(500))
            }
        }
    }

    // MARK: Dispatching

    @discardableResult
    private func dispatch(_ fetched: FetchedJob, group: inout DiscardingTaskGroup) -> Dispatcher.Decision {
        var job: Job
        do {
            job = try Job(fetched)
        } catch {
            quarantine(fetched, failure: error)
            return .wait
        }
        if !Job.isValidJID(job.payload["jid"]) {
            // As Sidekiq's client would have: a jid of its own, written back before the job runs, so its logs,
            // result row and retry or dead entry name it.
            var payload = job.payload
            payload["jid"] = .string(Job.newJID())
            let rewritten = payload.bytes
            do {
                // The rewritten payload takes the job's place in the same in-flight store.
                job = try Job(
                    raw: rewritten, fetchedFrom: fetched.queue,
                    receipt: DeliveryReceipt(
                        queue: fetched.receipt.queue, member: rewritten, token: fetched.receipt.token, lease: fetched.receipt.lease))
            } catch {
                quarantine(fetched, failure: error)
                return .wait
            }
            ledger.hold(rewritten)
            acknowledger.add(.init(receipt: fetched.receipt, target: .replace(payload: rewritten), counts: .none))
        }
        guard let jobClass = registry[job.jobClass] else {
            let failure = JobFailure.permanent(
                .unknownJobClass,
                "no handler for class \(job.jobClass) in this worker (known: \(registry.names.joined(separator: ", ")))")
            let context = prepared(job, self.context(for: job, deadline: .now))
            let outcome = record(job: job, policy: .default, startedAt: JobTime.now(), result: .failure(failure))
            for m in middleware { m.completed(job, outcome: outcome, context: context) }
            return .wait
        }
        let decision = dispatcher.submit(Dispatcher.Entry(job: job, jobClass: jobClass))
        switch decision {
        case .start(let entry):
            group.addTask { await self.runChain(entry) }
        case .wait:
            break
        case .pushBack:
            acknowledger.add(.init(receipt: job.receipt, target: .queue(job.queue, payload: job.raw, head: false), counts: .none))
        }
        return decision
    }

    /// Runs a job, then whichever waiting job its slot goes to next.
    private func runChain(_ first: Dispatcher.Entry) async {
        var entry: Dispatcher.Entry? = first
        while let current = entry {
            await execute(current.job, current.jobClass)
            entry = dispatcher.finished(current.jobClass.name)
        }
    }

    /// The journal entry that keeps a terminal outcome with its ack, when outcomes are recorded.
    func journalEntry(for outcome: JobOutcome) -> JobTransitions.Move.JournalEntry? {
        guard let journal, let kept = journal.journalValue(for: outcome) else { return nil }
        // The field is the batch's, set when the batch is sent.
        return .init(field: "", value: kept.value, record: kept.record)
    }

    /// A payload that is not a runnable job goes to the dead set with its bytes kept: a job envelope whose
    /// arguments are refused as it came (class, jid, args), anything else wrapped as `conveyor.malformed`.
    private func quarantine(_ fetched: FetchedJob, failure: JobFailure) {
        let raw = fetched.raw
        let queue = fetched.queue
        let now = JobTime.now()
        let payload: JSONObject
        let jobClass: String
        if failure.errorClass == ErrorClass.invalidArguments.rawValue, let envelope = try? JSONValue(parsing: raw).objectValue,
            let named = envelope["class"]?.stringValue
        {
            payload = JobTransitions.rejected(envelope, raw: raw, queue: queue, failure: failure, now: now)
            jobClass = named
        } else {
            payload = JobTransitions.quarantined(raw: raw, queue: queue, failure: failure, now: now)
            jobClass = "conveyor.malformed"
        }
        logger.error(
            "malformed job moved to the dead set",
            metadata: [
                "queue": "\(queue)", "job.class": "\(jobClass)", "job.id": "\(payload["jid"]?.stringValue ?? "")",
                "error_class": "\(failure.errorClass)", "error": "\(failure.message)", "bytes": "\(raw.count)",
            ])
        let outcome = JobOutcome(
            jid: payload["jid"]?.stringValue ?? "", jobClass: jobClass, queue: queue, status: .dead, attempts: 1,
            result: nil, failure: failure, enqueuedAt: nil, startedAt: now, finishedAt: now, payload: payload)
        acknowledger.add(
            .init(receipt: fetched.receipt, target: .dead(payload: payload.bytes), counts: .processedAndFailed, journal: journalEntry(for: outcome)))
        for observer in observers { observer.jobFinished(outcome) }
    }
}
