public import ConveyorCore
import Foundation
public import Prometheus

/// Conveyor's Prometheus metrics: a `JobObserver` for job counters and durations, gauges refreshed from Redis
/// by `QueuePoller`, and counters other parts report into (`redisError()`, `postgresError()`).
///
/// Labels are bounded whatever the jobs say (`MetricLabels`): `class` is a registered job class or `unknown`,
/// `queue` one of the worker's queues or `other`, `outcome` one of four values. Cluster-wide gauges (queue depth,
/// set sizes) are the same from every worker: take `max()` across instances, not `sum()`.
public final class ConveyorMetrics: JobObserver, @unchecked Sendable {
    public let registry: PrometheusCollectorRegistry
    private let lock = NSLock()
    private let labelRule: MetricLabels
    /// In the first-seen rule, the values already given a series of their own.
    private var seenClasses: Set<String> = []
    private var seenQueues: Set<String> = []
    /// Whether the `other` queue's gauges were ever set (then they are kept current, zero when nothing is other).
    private var otherQueueShown = false
    private var refreshers: [@Sendable () -> Void] = []
    private var exporters: [@Sendable () -> String] = []
    /// Last reported position of each running transcode, so counters grow by the difference.
    private var transcodes: [String: (frames: Int, seconds: Double)] = [:]

    static let durationBuckets: [Double] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]

    /// - Parameter labels: which `class` and `queue` label values get series of their own; `conveyor worker` gives
    ///   its registered classes and its queues. The default keeps the first `MetricLabels.firstSeenLimit` of each.
    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), labels: MetricLabels = .firstSeen) {
        self.registry = registry
        self.labelRule = labels
        // Series that must exist before the first event, so alerts and dashboards see zeros, not gaps.
        _ = counter("conveyor_jobs_reaped_total", "In-flight jobs taken back from worker processes whose heartbeat expired.")
        _ = counter("conveyor_poison_pills_total", "Reaped jobs sent to the dead set because they kept killing their worker.")
        _ = counter("conveyor_redis_errors_total", "Failed Redis commands or connections in this process.")
        _ = counter("conveyor_postgres_errors_total", "Failed PostgreSQL writes or connections in this process.")
        _ = counter("conveyor_result_writes_total", "Job outcomes written to conveyor.job_results.")
        _ = counter("conveyor_result_writes_dropped_total", "Job outcomes dropped because the result buffer was full.")
        _ = counter("conveyor_result_writes_refused_total", "Job outcomes PostgreSQL refused to store, even without their result.")
        _ = counter("conveyor_result_writes_deferred_total", "Journaled job outcomes a full result buffer let go; they stay in Redis and are written later.")
        _ = counter("conveyor_result_writes_recovered_total", "Job outcomes read back from an outcome journal in Redis (a stopped worker's, or this one's after an overflow).")
        _ = gauge("conveyor_result_write_backlog", "Job outcomes buffered in this process, waiting to be written to PostgreSQL.")
        _ = gauge("conveyor_result_writes_failing", "1 while writes to PostgreSQL are failing and being retried.")
        _ = gauge("conveyor_up", "1 while this worker process runs.").set(1.0)
        _ = counter("conveyor_trace_spans_dropped_total", "Finished spans not exported: the export queue was full or the collector refused or timed out a batch.")
        _ = counter("conveyor_video_transcoded_frames_total", "Video frames encoded by video.transcode and media.ingest.")
        _ = counter("conveyor_video_transcoded_seconds_total", "Seconds of video encoded (rate() over wall time is the encode speed).")
    }

    // MARK: JobObserver

    /// The collectors one job class uses on every job, looked up once (the registry's lookup takes a lock and
    /// builds label arrays: too slow for the per-job path).
    private final class ClassCollectors: @unchecked Sendable {
        let inFlight: Gauge
        let duration: ValueHistogram
        let retries: Counter
        var outcomes: [String: Counter] = [:]
        var running = 0

        init(inFlight: Gauge, duration: ValueHistogram, retries: Counter) {
            self.inFlight = inFlight
            self.duration = duration
            self.retries = retries
        }
    }

    private var classes: [String: ClassCollectors] = [:]

    /// The `class` label for a job's class: itself when allowed, `unknown` otherwise. Call with `lock` held.
    private func classLabel(_ jobClass: String) -> String {
        switch labelRule.kind {
        case .allowed(let classes, _): return classes.contains(jobClass) ? jobClass : MetricLabels.unknownClass
        case .firstSeen(let limit):
            if seenClasses.contains(jobClass) { return jobClass }
            guard seenClasses.count < limit, jobClass != MetricLabels.unknownClass else { return MetricLabels.unknownClass }
            seenClasses.insert(jobClass)
            return jobClass
        }
    }

    /// The `queue` label for a queue name: itself when allowed, `other` otherwise. Call with `lock` held.
    private func queueLabel(_ queue: String) -> String {
        switch labelRule.kind {
        case .allowed(_, let queues): return queues.contains(queue) ? queue : MetricLabels.otherQueue
        case .firstSeen(let limit):
            if seenQueues.contains(queue) { return queue }
            guard seenQueues.count < limit, queue != MetricLabels.otherQueue else { return MetricLabels.otherQueue }
            seenQueues.insert(queue)
            return queue
        }
    }

    /// Call with `lock` held; `jobClass` is already a label (`classLabel`).
    private func collectors(_ jobClass: String) -> ClassCollectors {
        if let c = classes[jobClass] { return c }
        let c = ClassCollectors(
            inFlight: gauge("conveyor_jobs_in_flight", "Jobs running in this process.", ["class": jobClass]),
            duration: histogram("conveyor_job_duration_seconds", "Run time of one job attempt.", ["class": jobClass]),
            retries: counter("conveyor_job_retries_total", "Failed runs scheduled for another attempt.", ["class": jobClass]))
        classes[jobClass] = c
        return c
    }

    public func jobStarted(jid: String, jobClass: String, queue: String) {
        lock.lock()
        let c = collectors(classLabel(jobClass))
        c.running += 1
        let n = c.running
        lock.unlock()
        c.inFlight.set(Double(n))
    }

    public func jobFinished(_ outcome: JobOutcome) {
        lock.lock()
        let jobClass = classLabel(outcome.jobClass)
        let queue = queueLabel(outcome.queue)
        let key = queue + "\u{0}" + outcome.status.rawValue
        if !transcodes.isEmpty { transcodes[outcome.jid] = nil }
        let c = collectors(jobClass)
        c.running = max(0, c.running - 1)
        let n = c.running
        let total: Counter
        if let existing = c.outcomes[key] {
            total = existing
        } else {
            total = counter(
                "conveyor_jobs_total", "Finished job runs by outcome (succeeded, retrying, dead, requeued, deferred, skipped, cancelled).",
                ["class": jobClass, "queue": queue, "outcome": outcome.status.rawValue])
            c.outcomes[key] = total
        }
        lock.unlock()
        c.inFlight.set(Double(n))
        total.increment()
        if outcome.status == .retrying { c.retries.increment() }
        if outcome.status != .requeued { c.duration.record(max(0, outcome.duration)) }
    }

    public func jobsReaped(count: Int, requeued: Int, dead: Int) {
        counter("conveyor_jobs_reaped_total", "In-flight jobs taken back from worker processes whose heartbeat expired.").increment(by: Int64(count))
        counter("conveyor_poison_pills_total", "Reaped jobs sent to the dead set because they kept killing their worker.").increment(by: Int64(dead))
    }

    // MARK: Reported by other parts

    /// A running transcode's position (cumulative frames and output seconds, about once a second): the frame
    /// and seconds counters grow by what is new since its last report. Forgotten when the job finishes.
    public func transcodeProgress(jid: String, frames: Int, seconds: Double) {
        // A helper's report is outside input: a negative, infinite or NaN position counts nothing.
        let frames = max(0, frames)
        let seconds = seconds.isFinite ? max(0, seconds) : 0
        lock.lock()
        let last = transcodes[jid] ?? (0, 0)
        transcodes[jid] = (max(frames, last.frames), max(seconds, last.seconds))
        lock.unlock()
        if frames > last.frames {
            counter("conveyor_video_transcoded_frames_total", "Video frames encoded by video.transcode and media.ingest.")
                .increment(by: Int64(frames - last.frames))
        }
        if seconds > last.seconds {
            counter("conveyor_video_transcoded_seconds_total", "Seconds of video encoded (rate() over wall time is the encode speed).")
                .increment(by: seconds - last.seconds)
        }
    }

    public func redisError() {
        counter("conveyor_redis_errors_total", "Failed Redis commands or connections in this process.").increment()
    }

    public func postgresError(count: Int = 1) {
        counter("conveyor_postgres_errors_total", "Failed PostgreSQL writes or connections in this process.").increment(by: Int64(count))
    }

    /// Exports a result store's buffer and counters at every scrape.
    public func observe(_ store: ResultStore) {
        let last = LastCounts()
        addRefresher { [self] in
            let s = store.currentStats
            gauge("conveyor_result_write_backlog", "Job outcomes buffered in this process, waiting to be written to PostgreSQL.")
                .set(Double(s.backlog) as Double)
            gauge("conveyor_result_writes_failing", "1 while writes to PostgreSQL are failing and being retried.").set(s.failing ? 1.0 : 0.0)
            counter("conveyor_result_writes_total", "Job outcomes written to conveyor.job_results.")
                .increment(by: Int64(last.delta("written", s.written)))
            counter("conveyor_result_writes_dropped_total", "Job outcomes dropped because the result buffer was full.")
                .increment(by: Int64(last.delta("dropped", s.dropped)))
            counter("conveyor_result_writes_refused_total", "Job outcomes PostgreSQL refused to store, even without their result.")
                .increment(by: Int64(last.delta("refused", s.refused)))
            counter("conveyor_result_writes_deferred_total", "Journaled job outcomes a full result buffer let go; they stay in Redis and are written later.")
                .increment(by: Int64(last.delta("deferred", s.deferred)))
            counter("conveyor_result_writes_recovered_total", "Job outcomes read back from an outcome journal in Redis (a stopped worker's, or this one's after an overflow).")
                .increment(by: Int64(last.delta("recovered", s.recovered)))
            postgresError(count: last.delta("errors", s.writeErrors))
        }
    }

    /// Sets the Redis-derived gauges from a snapshot.
    /// Queues without a label of their own are summed into `queue="other"` (depth added, latency the oldest, paused
    /// when any is).
    public func update(from snapshot: QueueSnapshot) {
        var shown: [(name: String, depth: Int, latency: Double, paused: Bool)] = []
        var other: (depth: Int, latency: Double, paused: Bool)?
        lock.lock()
        for q in snapshot.queues {
            let label = queueLabel(q.name)
            if label == MetricLabels.otherQueue {
                let o = other ?? (0, 0, false)
                other = (Saturating.add(o.depth, max(0, q.depth)), max(o.latency, q.latency.isFinite ? q.latency : 0), o.paused || q.paused)
            } else {
                shown.append((label, q.depth, q.latency, q.paused))
            }
        }
        if other != nil { otherQueueShown = true }
        if otherQueueShown {
            let o = other ?? (0, 0, false)
            shown.append((MetricLabels.otherQueue, o.depth, o.latency, o.paused))
        }
        lock.unlock()
        for q in shown {
            gauge("conveyor_queue_depth", "Ready jobs in queue:<name> (LLEN).", ["queue": q.name]).set(Double(q.depth))
            gauge("conveyor_queue_latency_seconds", "Age of the oldest ready job in the queue.", ["queue": q.name]).set(q.latency)
            gauge("conveyor_queue_paused", "1 while the queue is paused (conveyor queue pause): workers do not fetch from it.", ["queue": q.name])
                .set(q.paused ? 1.0 : 0.0)
        }
        gauge("conveyor_scheduled_jobs", "Jobs in the schedule set.").set(Double(snapshot.scheduled))
        gauge("conveyor_retry_jobs", "Jobs in the retry set.").set(Double(snapshot.retries))
        gauge("conveyor_dead_jobs", "Jobs in the dead set.").set(Double(snapshot.dead))
        gauge("conveyor_processes", "Live worker processes (heartbeat not expired).").set(Double(snapshot.processes.count))
        gauge("conveyor_busy_workers", "Jobs running across all live worker processes.").set(Double(snapshot.busy))
        gauge("conveyor_snapshot_timestamp_seconds", "When queue gauges were last read from Redis (Unix seconds).").set(snapshot.readAt)
    }

    /// Runs `refresh` before every scrape (cheap, in-process reads only).
    public func addRefresher(_ refresh: @escaping @Sendable () -> Void) {
        lock.lock()
        refreshers.append(refresh)
        lock.unlock()
    }

    /// Counts spans the tracing exporter gave up on.
    public func tracesDropped(_ count: Int) {
        guard count > 0 else { return }
        counter("conveyor_trace_spans_dropped_total", "Finished spans not exported: the export queue was full or the collector refused or timed out a batch.")
            .increment(by: Int64(count))
    }

    /// Appends another family's metrics, already in Prometheus text format, to every scrape (the summaries
    /// family keeps its breaker and provider counters itself and renders them on demand).
    public func addExporter(_ text: @escaping @Sendable () -> String) {
        lock.lock()
        exporters.append(text)
        lock.unlock()
    }

    /// The exposition text (Prometheus text format 0.0.4).
    public func render() -> [UInt8] {
        lock.lock()
        let hooks = refreshers
        let extra = exporters
        lock.unlock()
        for hook in hooks { hook() }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        for exporter in extra { buffer.append(contentsOf: exporter().utf8) }
        return buffer
    }

    // MARK: Collectors

    private func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        let cut = name.lastIndex(of: "_")!
        return MetricNameDescriptor(
            metricName: String(name[..<cut]), unitName: String(name[name.index(after: cut)...]), helpText: help)
    }

    private func labels(_ l: [String: String]) -> [(String, String)] { l.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }

    func counter(_ name: String, _ help: String, _ l: [String: String] = [:]) -> Counter {
        l.isEmpty ? registry.makeCounter(descriptor: descriptor(name, help)) : registry.makeCounter(descriptor: descriptor(name, help), labels: labels(l))
    }

    func gauge(_ name: String, _ help: String, _ l: [String: String] = [:]) -> Gauge {
        l.isEmpty ? registry.makeGauge(descriptor: descriptor(name, help)) : registry.makeGauge(descriptor: descriptor(name, help), labels: labels(l))
    }

    func histogram(_ name: String, _ help: String, _ l: [String: String]) -> ValueHistogram {
        registry.makeValueHistogram(descriptor: descriptor(name, help), labels: labels(l), buckets: Self.durationBuckets)
    }
}

/// Turns a store's running totals into increments for monotonic counters.
private final class LastCounts: @unchecked Sendable {
    private let lock = NSLock()
    private var last: [String: Int] = [:]

    /// What total `name` grew by since the last call.
    func delta(_ name: String, _ total: Int) -> Int {
        lock.lock()
        defer { lock.unlock() }
        defer { last[name] = total }
        return max(0, total - last[name, default: 0])
    }
}

/// Which values the `class` and `queue` labels may take, so that job envelopes (whose class and queue any producer
/// writes) cannot add series without bound: `allowed` gives the registered classes and the worker's queues their own
/// series and everything else `unknown` / `other`; `firstSeen` (for tools and tests) keeps the first
/// `firstSeenLimit` values of each and maps later ones the same way.
public struct MetricLabels: Sendable {
    public static let unknownClass = "unknown"
    public static let otherQueue = "other"
    /// Distinct values per label under `firstSeen`.
    public static let firstSeenLimit = 100

    enum Kind: Sendable {
        case allowed(classes: Set<String>, queues: Set<String>)
        case firstSeen(limit: Int)
    }

    let kind: Kind

    /// Only these job classes and queue names get series of their own.
    public init(classes: some Sequence<String>, queues: some Sequence<String>) {
        kind = .allowed(classes: Set(classes), queues: Set(queues))
    }

    private init(_ kind: Kind) { self.kind = kind }

    /// The first `firstSeenLimit` classes and queues seen get series of their own.
    public static let firstSeen = MetricLabels(.firstSeen(limit: firstSeenLimit))
}
