public import Logging
public import Redis
import Synchronization

/// A worker process: takes jobs from its queues with a reliable fetch, runs them under the concurrency limits,
/// records outcomes, heartbeats, reaps dead processes' jobs and promotes due scheduled and retried jobs.
///
/// Every job taken from a queue sits in this process's in-flight list until its outcome is written, so a crash at
/// any instant leaves it where a live process's reaper finds it.
public final class Worker: Sendable {
    public let configuration: WorkerConfiguration
    public let registry: JobRegistry
    let endpoint: RedisEndpoint
    let observers: [any JobObserver]
    let logger: Logger
    let keys: QueueKeys
    var identity: String { configuration.identity }
    let inflightKey: String

    let dispatcher: Dispatcher
    let acknowledger: Acknowledger
    let fetchRedis: RedisThread
    let housekeepingRedis: RedisThread
    let watchdog = Watchdog()

    /// Set once shutdown starts: nothing new is fetched.
    let stopping = AsyncEvent()
    /// Set when fetched jobs should no longer be started (`TSTP` from Sidekiq's Web UI, or shutdown).
    let quiet = AsyncEvent()
    /// Open while the fetcher found its queues empty: the per-queue blockers wait in Redis for a job.
    let idle = AsyncEvent()
    /// Set by a blocker that received a job.
    let wake = AsyncEvent()
    /// Jobs received by blockers, waiting to be dispatched by the fetch loop.
    let delivered = Mutex<[(raw: [UInt8], queue: String)]>([])
    /// After shutdown gave up on running jobs, their late outcomes are not recorded (the jobs were requeued).
    let abandoned = Atomic<Bool>(false)
    let startedAt = JobTime.now()

    public init(
        redis endpoint: RedisEndpoint, registry: JobRegistry, configuration: WorkerConfiguration,
        observers: [any JobObserver] = [], logger: Logger = Logger(label: "conveyor.worker")
    ) {
        self.endpoint = endpoint
        self.registry = registry
        self.configuration = configuration
        self.observers = observers
        var logger = logger
        logger[metadataKey: "process"] = "\(configuration.identity)"
        self.logger = logger
        self.keys = configuration.keys
        self.inflightKey = configuration.keys.inflight(configuration.identity)
        self.dispatcher = Dispatcher(concurrency: configuration.concurrency)
        self.fetchRedis = RedisThread(endpoint, name: "conveyor-fetch")
        self.housekeepingRedis = RedisThread(endpoint, name: "conveyor-housekeeping")
        let ackRedis = RedisThread(endpoint, name: "conveyor-ack")
        self.acknowledger = Acknowledger(redis: ackRedis, keys: configuration.keys, logger: logger) { _ in }
    }

    /// Asks the worker to stop: no new jobs are fetched, running ones get `shutdownTimeout` to finish, the rest
    /// go back to the head of their queues, and `run()` returns.
    public func shutdown() {
        guard !stopping.isSet else { return }
        logger.info("shutting down: no new jobs; waiting for running jobs", metadata: ["running": "\(dispatcher.running)"])
        stopping.set()
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

    /// Runs until `shutdown()`; returns after the graceful drain.
    public func run() async throws {
        try await heartbeat()
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
            }
        }
        await withDiscardingTaskGroup { group in
            group.addTask { await self.watchdog.run(until: self.stopping) }
            for queue in configuration.queues.names {
                group.addTask { await self.blockerLoop(queue: queue) }
            }
            await fetchLoop(group: &group)
            let drained = await dispatcher.waitUntilDrained(timeout: configuration.shutdownTimeout)
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
        _ = await housekeeping.value
        let requeued = await requeueInflight()
        acknowledger.stop()
        await ackTask.value
        await deregister()
        logger.info("worker stopped", metadata: ["requeued": "\(requeued)"])
        fetchRedis.stop()
        housekeepingRedis.stop()
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
            let batch: [(raw: [UInt8], queue: String)]
            do {
                batch = try await fetch(order: order, count: want)
                fetchErrors = 0
            } catch {
                fetchErrors += 1
                logger.error("fetch failed; retrying", metadata: ["error": "\(error)"])
                await quiet.wait(timeout: .milliseconds(min(5000, 100 * (1 << min(fetchErrors, 6)))))
                continue
            }
            if batch.isEmpty {
                // Nothing ready: let the blockers wait inside Redis until a job arrives.
                idle.set()
                await wake.wait()
                wake.reset()
                idle.reset()
                continue
            }
            var started = 0
            var pushedBack = 0
            for item in batch {
                switch dispatch(raw: item.raw, queue: item.queue, group: &group) {
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

    private func fetch(order: [String], count: Int) async throws -> [(raw: [UInt8], queue: String)] {
        var arguments: [any RedisArgument] = ["EVAL", LuaScripts.fetch, order.count + 1, inflightKey]
        arguments += order.map { keys.queue($0) }
        arguments.append(count)
        let command = RedisCommand(arguments)
        let reply = try await fetchRedis.run { connection in try connection.command(command).check() }
        guard let items = reply.array else { return [] }
        var jobs: [(raw: [UInt8], queue: String)] = []
        jobs.reserveCapacity(items.count / 2)
        var i = 0
        while i + 1 < items.count {
            let index = items[i].int ?? 1
            jobs.append((items[i + 1].bytes ?? [], order[max(0, min(order.count - 1, index - 1))]))
            i += 2
        }
        return jobs
    }

    private func dispatchDelivered(group: inout DiscardingTaskGroup) {
        let items = delivered.withLock { d in
            defer { d.removeAll() }
            return d
        }
        for item in items { _ = dispatch(raw: item.raw, queue: item.queue, group: &group) }
    }

    /// One blocking connection per queue waits for a job while the fetcher is idle, so a job pushed onto an
    /// empty queue starts within milliseconds without polling.
    private func blockerLoop(queue: String) async {
        let redis = RedisThread(endpoint, name: "conveyor-block-\(queue)", commandTimeout: configuration.blockTimeout + 10)
        defer { redis.stop() }
        let source = keys.queue(queue)
        let inflight = inflightKey
        let timeout = configuration.blockTimeout
        while !quiet.isSet {
            // Re-check quiet every second: the fetcher resets `idle` when it wakes, possibly past a shutdown.
            guard await idle.wait(timeout: .seconds(1)), !quiet.isSet else { continue }
            do {
                let reply = try await redis.run { connection in
                    try connection.command("BLMOVE", source, inflight, "RIGHT", "LEFT", timeout).check()
                }
                if let raw = reply.bytes {
                    // Kept even after shutdown began: it is in the in-flight list and goes back with the rest.
                    delivered.withLock { $0.append((raw, queue)) }
                    wake.set()
                }
            } catch {
                logger.error("blocking fetch failed; retrying", metadata: ["queue": "\(queue)", "error": "\(error)"])
                await quiet.wait(timeout: .seconds(1))
            }
        }
    }

    // MARK: Dispatching

    @discardableResult
    private func dispatch(raw: [UInt8], queue: String, group: inout DiscardingTaskGroup) -> Dispatcher.Decision {
        let job: Job
        do {
            job = try Job(raw: raw, fetchedFrom: queue)
        } catch {
            quarantine(raw: raw, queue: queue, failure: error)
            return .wait
        }
        guard let jobClass = registry[job.jobClass] else {
            let failure = JobFailure.permanent(
                "UnknownJobClass",
                "no handler for class \(job.jobClass) in this worker (known: \(registry.names.joined(separator: ", ")))")
            let now = JobTime.now()
            record(job: job, policy: .default, startedAt: now, result: .failure(failure))
            return .wait
        }
        let decision = dispatcher.submit(Dispatcher.Entry(job: job, jobClass: jobClass))
        switch decision {
        case .start(let entry):
            group.addTask { await self.runChain(entry) }
        case .wait:
            break
        case .pushBack:
            acknowledger.add(
                .init(
                    command: JobTransitions.moveToQueue(
                        keys: keys, from: inflightKey, raw: raw, queue: job.queue, payload: raw, head: false),
                    processed: 0, failed: 0))
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

    /// A payload that is not a runnable job goes to the dead set with its bytes kept.
    private func quarantine(raw: [UInt8], queue: String, failure: JobFailure) {
        let now = JobTime.now()
        let payload = JobTransitions.quarantined(raw: raw, queue: queue, failure: failure, now: now)
        logger.error(
            "malformed job moved to the dead set",
            metadata: ["queue": "\(queue)", "error_class": "\(failure.errorClass)", "error": "\(failure.message)", "bytes": "\(raw.count)"])
        acknowledger.add(
            .init(
                command: JobTransitions.moveToDead(keys: keys, from: inflightKey, raw: raw, payload: payload, now: now, limits: configuration.deadSet),
                processed: 1, failed: 1))
        let outcome = JobOutcome(
            jid: payload["jid"]?.stringValue ?? "", jobClass: "conveyor.malformed", queue: queue, status: .dead, attempts: 1,
            result: nil, failure: failure, enqueuedAt: nil, startedAt: now, finishedAt: now, payload: payload)
        for observer in observers { observer.jobFinished(outcome) }
    }
}
