import ArgumentParser
import BullMQQueue
import ConveyorCore
import SidekiqQueue
@preconcurrency import Dispatch
import Foundation
import Logging
import Operations
import Redis
import ServiceLifecycle
import Synchronization
import Summaries
import Telemetry
import Media

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "Run jobs from the queues until SIGTERM or SIGINT.")

    @OptionGroup var settingFlags: WorkerSettingFlags

    @Option(name: .customLong("class-concurrency"), help: "Per-class limit in this process: CLASS=N (repeatable).")
    var classConcurrency: [String] = []

    @Option(name: .customLong("class-timeout"), help: "Per-class hard timeout: CLASS=DURATION (repeatable).")
    var classTimeout: [String] = []

    @Option(name: .customLong("class-attempts"), help: "Per-class maximum runs: CLASS=N (repeatable).")
    var classAttempts: [String] = []

    @OptionGroup var redis: RedisOptions

    @Option(name: .customLong("bullmq-queues"), help: "BullMQ queues this worker also serves (env CONVEYOR_BULLMQ_QUEUES; prefix CONVEYOR_BULLMQ_PREFIX, default bull).")
    var bullmqQueues: String?

    /// The ranges of the numeric flags the catalogue does not hold (docs/configuration.md lists them): anything
    /// else is a usage error, exit 64. The other flags (`--concurrency`, `--shutdown-timeout`, the heartbeat, poll
    /// and dead-set ones...) are settings, checked by the one reader with their variables and file keys.
    enum Limits {
        static let classConcurrency = 1...10_000
        static let classAttempts = 1...10_000
        static let classTimeout: ClosedRange<Double> = 0.001...(30 * 86_400)
    }

    func validate() throws {
        for setting in classTimeout {
            let value = try Self.value(of: setting, "--class-timeout")
            guard let d = DurationArgument(argument: value) else { throw ValidationError("--class-timeout takes CLASS=DURATION, got \(setting)") }
            try d.checked("--class-timeout", Limits.classTimeout)
        }
        for (flag, settings) in [("--class-concurrency", classConcurrency), ("--class-attempts", classAttempts)] {
            let range = flag == "--class-concurrency" ? Limits.classConcurrency : Limits.classAttempts
            for setting in settings {
                let value = try Self.value(of: setting, flag)
                guard let n = Int(value), range.contains(n) else {
                    throw ValidationError("\(flag) \(setting): expected CLASS=N with N a whole number in \(range.lowerBound)...\(range.upperBound)")
                }
            }
        }
    }

    /// The VALUE of a `CLASS=VALUE` setting.
    private static func value(of setting: String, _ flag: String) throws -> String {
        let parts = setting.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("\(flag) takes CLASS=VALUE, got \(setting)") }
        return parts[1]
    }

    func run() async throws {
        do {
            try await start()
        } catch let failure as JobFailure where failure.errorClass == ErrorClass.invalidConfiguration.rawValue {
            // A setting that cannot be used is a usage error (exit 64), reported before anything starts.
            throw ValidationError(failure.message)
        }
    }

    /// The worker, composed: settings, the job classes, the queues served, the backend, the middleware, the
    /// services, then the run. Signals are watched from the first instant: a SIGTERM while this is still being put
    /// together stops it before anything runs (exit 0), instead of killing the process.
    private func start() async throws {
        let stop = StopRequest()
        let signals = SignalWatcher { signal, count in
            if count > 1 {
                Logger(label: "conveyor.worker").warning("second \(signal): exiting now; a live worker's reaper returns the unfinished jobs")
                Foundation.exit(1)
            }
            stop.request()
        }
        defer { signals.cancel() }

        let (settings, logger) = try readSettings()
        let identity = WorkerConfiguration.newIdentity()
        let endpoint = try RedisOptions.endpoint(settings)
        let keys = RedisOptions.keys(settings)
        // Metrics, the HTTP endpoint and outcomes in PostgreSQL (when DATABASE_URL is set) first: the families
        // report to the metrics (transcode progress, the summariser's breakers).
        let operations = try WorkerOperations(
            redis: endpoint, keys: keys, settings: settings, migrations: Composition.migrations, identity: identity,
            labels: Self.metricLabels(queues: settings.text(WorkerSettings.queues)), logger: logger)
        let metrics = operations.metrics
        let families = try Composition.build(FamilyContext(settings: settings) { jid, frames, seconds in
            metrics.transcodeProgress(jid: jid, frames: frames, seconds: seconds)
        })
        let registry = try jobClasses(families, metrics: metrics, logger: logger)
        let selection = try servedQueues(settings, registry: registry, logger: logger)
        let limits = try flowLimits(settings, registry: registry, keys: keys, logger: logger)
        let backend = try sidekiqBackend(
            settings, keys: keys, endpoint: endpoint, identity: identity, selection: selection, limits: limits, logger: logger)
        let (served, servedRegistry) = try await BullMQWiring.backend(
            sidekiq: backend, queues: settings.list(BullMQSettings.queues), settings: settings, redis: endpoint, identity: identity,
            registry: registry, logger: logger)
        let (middleware, tracing) = try self.middleware(settings, keys: keys, endpoint: endpoint, metrics: metrics, logger: logger)
        let worker = Worker(
            backend: served, registry: servedRegistry, configuration: workerConfiguration(settings, selection: selection, identity: identity),
            observers: operations.observers + families.flatMap(\.observers), middleware: middleware, journal: operations.journal, logger: logger)
        let group = try serviceGroup(
            worker: worker, operations: operations, families: families, tracing: tracing, served: served, settings: settings,
            registry: registry, endpoint: endpoint, keys: keys, logger: logger)

        guard stop.attach(group) else {
            logger.notice("stopped by a signal before it started; nothing ran")
            return
        }
        try await group.run()
        // The stop reached its deadline with the queue backend not answering (logged with the count): the jobs whose
        // completions were not written stay in flight and run again through a live worker's reaper. EX_TEMPFAIL.
        if worker.stopLeftJobsInFlight { throw ExitCode(75) }
    }

    /// One reader for everything: flags, then the environment, then the config file. Every problem is refused at once
    /// (exit 64) before anything starts; the families read their typed values from the same reader
    /// (`FamilyContext.settings`), and the helpers get theirs through their arguments and spawn environment.
    private func readSettings() throws -> (SettingsReader, Logger) {
        var flags = redis.flags.merging(settingFlags.flags) { a, _ in a }
        if let bullmqQueues { flags[BullMQSettings.queues.name] = .init("--bullmq-queues", bullmqQueues) }
        var settings = Catalogue.reader(flags: flags)
        Catalogue.checkEverything(&settings, dashboard: false)
        try LogSetup.refuse(settings.problems)
        LogSetup.bootstrap(settings)
        let logger = Logger(label: "conveyor.worker")
        for warning in settings.warnings { logger.warning("\(warning)") }
        if let file = settings.file { logger.info("settings read", metadata: ["config_file": "\(file.path)"]) }
        // Before any thread reads the environment: the reader above has the sampler settings already.
        if TracingSetup.enabled(settings) { TracingSetup.takeOverSampling() }
        return (settings, logger)
    }

    /// Every family's classes, with the command line's per-class concurrency, timeout and attempts applied.
    private func jobClasses(_ families: [JobFamily], metrics: ConveyorMetrics, logger: Logger) throws -> JobRegistry {
        var registry = JobRegistry()
        for family in families {
            for jobClass in family.classes { registry.register(jobClass) }
            if let exported = family.metrics { metrics.addExporter(exported) }
        }
        // The static table `conveyor enqueue` reads must say what the families registered.
        let registered = registry.classes.mapValues(\.queue)
        if registered != Composition.classQueues {
            logger.critical("Composition.classQueues disagrees with the registered classes; conveyor enqueue would pick wrong queues",
                            metadata: ["registered": "\(registered.sorted { $0.key < $1.key })"])
        }
        try apply(classConcurrency, "--class-concurrency", to: &registry) { jobClass, value in
            guard let n = Int(value), Limits.classConcurrency.contains(n) else { return false }
            jobClass.concurrency = n
            return true
        }
        try apply(classTimeout, "--class-timeout", to: &registry) { jobClass, value in
            guard let d = try? DurationArgument(argument: value)?.checked("--class-timeout", Limits.classTimeout) else { return false }
            jobClass.timeout = d
            return true
        }
        try apply(classAttempts, "--class-attempts", to: &registry) { jobClass, value in
            guard let n = Int(value), Limits.classAttempts.contains(n) else { return false }
            jobClass.retry.maxAttempts = n
            return true
        }
        return registry
    }

    /// The Sidekiq and BullMQ queues this worker serves; a class whose queue is not served is named once.
    private func servedQueues(_ settings: SettingsReader, registry: JobRegistry, logger: Logger) throws -> QueueSelection {
        let queuesText = settings.text(WorkerSettings.queues)
        let bullQueues = settings.list(BullMQSettings.queues)
        let selection: QueueSelection
        do {
            selection = try BullMQWiring.selection(sidekiq: queuesText ?? (bullQueues.isEmpty ? Self.defaultQueues(registry) : nil), bullmq: bullQueues)
        } catch { throw ValidationError(error.message) }
        let unserved = registry.classes.values.filter { !selection.names.contains($0.queue) }
        if !unserved.isEmpty {
            logger.warning(
                "job classes whose queue is not served by this worker (another worker must serve it, or they never run)",
                metadata: [
                    "classes": "\(unserved.map(\.name).sorted().joined(separator: ","))",
                    "queues": "\(Set(unserved.map(\.queue)).sorted().joined(separator: ","))",
                ])
        }
        return selection
    }

    private func workerConfiguration(_ settings: SettingsReader, selection: QueueSelection, identity: String) -> WorkerConfiguration {
        WorkerConfiguration(
            queues: selection,
            concurrency: settings.int(WorkerSettings.concurrency),
            shutdownTimeout: OperatorInput.clampedDuration(seconds: settings.number(WorkerSettings.shutdownTimeout)),
            heartbeatInterval: OperatorInput.clampedDuration(seconds: settings.number(WorkerSettings.heartbeatInterval)),
            heartbeatTTL: max(2, Int(exactly: settings.number(WorkerSettings.heartbeatTtl).rounded()) ?? 30),
            pollInterval: OperatorInput.clampedDuration(seconds: settings.number(WorkerSettings.pollInterval)),
            identity: identity,
            tag: settings.text(WorkerSettings.tag) ?? "conveyor")
    }

    /// The config file's `limits:`, checked (exit 64 naming the file and line): refused on a Redis Cluster, and each
    /// lease must outlast two heartbeats (the heartbeat renews it).
    private func flowLimits(_ settings: SettingsReader, registry: JobRegistry, keys: QueueKeys, logger: Logger) throws -> [FlowLimit] {
        guard let file = settings.file else { return [] }
        let (limits, problems) = FlowLimit.check(file) { registry.classes[$0] != nil }
        if !problems.isEmpty { throw ValidationError(problems.joined(separator: "\n")) }
        if limits.isEmpty { return [] }
        if keys.cluster { throw ValidationError("\(file.path): limits are not supported on a Redis Cluster yet") }
        let heartbeat = settings.number(WorkerSettings.heartbeatInterval)
        for limit in limits where Double(limit.leaseMilliseconds) / 1000 < 2 * heartbeat {
            throw ValidationError(
                "\(file.path) line \(file.limits.first { $0.name == limit.name }?.line ?? 0): limit \(limit.name): lease \(limit.leaseMilliseconds / 1000)s must be at least two heartbeats (CONVEYOR_HEARTBEAT_INTERVAL is \(heartbeat)s)")
        }
        if !settings.list(BullMQSettings.queues).isEmpty {
            logger.warning("limits: apply to Sidekiq-format queues only; BullMQ jobs of a limited class are not held back")
        }
        logger.info("limits", metadata: ["names": "\(limits.map(\.name).joined(separator: ","))"])
        return limits
    }

    /// Sidekiq's key layout on one Redis (or Sentinel), or one slot per queue on a Redis Cluster.
    private func sidekiqBackend(
        _ settings: SettingsReader, keys: QueueKeys, endpoint: RedisEndpoint, identity: String, selection: QueueSelection,
        limits: [FlowLimit], logger: Logger
    ) throws -> any QueueBackend {
        let deadSet = DeadSetLimits(
            maxJobs: settings.int(WorkerSettings.deadMaxJobs), maxAge: settings.number(WorkerSettings.deadMaxDays) * 86_400)
        if keys.cluster {
            if let unsafe = selection.names.first(where: { !QueueKeys.isClusterSafe(queue: $0) }) {
                throw ValidationError("queue \(unsafe): a queue name on a Redis Cluster cannot contain { or } (they pick the key's slot)")
            }
            return ClusterBackend(
                redis: endpoint, keys: keys, identity: identity, queues: selection.names, deadSet: deadSet,
                replicas: try ReplicaWait(settings: settings), logger: logger)
        }
        return SidekiqBackend(
            redis: endpoint, keys: keys, identity: identity, deadSet: deadSet, replicas: try ReplicaWait(settings: settings), limits: limits,
            logger: logger)
    }

    /// Unique jobs (`unique_for`: the locks live in one slot of their own, read through a connection of their own),
    /// and traces (OTLP/HTTP, when an endpoint is set: the job's span wraps the rest of the chain).
    private func middleware(
        _ settings: SettingsReader, keys: QueueKeys, endpoint: RedisEndpoint, metrics: ConveyorMetrics, logger: Logger
    ) throws -> ([any JobMiddleware], TracingSetup?) {
        var middleware: [any JobMiddleware] = []
        if keys.cluster {
            logger.warning("unique_for is not enforced on a Redis Cluster yet: jobs that carry it run like any other")
        } else {
            middleware.append(UniqueJobsMiddleware(locks: RedisUniqueLocks(redis: RedisThread(endpoint, name: "unique-locks"), keys: keys)))
        }
        guard TracingSetup.enabled(settings) else { return (middleware, nil) }
        let setup = try TracingSetup.start(settings: settings, logger: logger) { metrics.tracesDropped($0) }
        if !setup.sampler.tracesNothing { middleware.insert(setup.middleware, at: 0) }
        logger.info("tracing on", metadata: ["endpoint": "\(SettingMasking.masked(setup.endpoint))"])
        return (middleware, setup)
    }

    /// One lifecycle: started in this order, stopped in reverse on SIGTERM/SIGINT (the worker drains first, then the
    /// result store writes what it finished, then the poller and the HTTP server go; the trace exporter last, so the
    /// last runs' spans are sent). The worker also ends the group when it stops on its own (TERM from Sidekiq's Web UI).
    private func serviceGroup(
        worker: Worker, operations: WorkerOperations, families: [JobFamily], tracing: TracingSetup?, served: any QueueBackend,
        settings: SettingsReader, registry: JobRegistry, endpoint: RedisEndpoint, keys: QueueKeys, logger: Logger
    ) throws -> ServiceGroup {
        let metrics = operations.metrics
        var services = (operations.services(shutdownTimeout: 5) + families.flatMap(\.services))
            .map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) }
        if let tracing { services.insert(.init(service: tracing.service), at: 0) }
        services.append(.init(service: worker, successTerminationBehavior: .gracefullyShutdownGroup))
        // The BullMQ queues' sizes on /metrics (queue-depth autoscaling), read on the poller's interval.
        if let router = served as? QueueRouter {
            let depth = BullMQDepth(endpoint: endpoint, queues: router.bullmq.queues, interval: settings.number(OperationsSettings.metricsPollSeconds))
            metrics.addExporter { depth.render() }
            services.append(.init(service: depth))
        }
        // The limits' gauges (slots held, jobs and keys waiting), read on the poller's interval.
        if let sidekiq = ((served as? QueueRouter)?.sidekiq ?? served) as? SidekiqBackend, sidekiq.flow != nil {
            let gauges = FlowLimitGauges(backend: sidekiq, interval: settings.number(OperationsSettings.metricsPollSeconds))
            metrics.addExporter { gauges.render() }
            services.append(.init(service: gauges))
        }
        // The config file's schedules: checked (exit 64), written into Redis, evaluated here as in every worker.
        if let scheduler = try SchedulesWiring.service(
            settings: settings, registry: registry, endpoint: endpoint, keys: keys, logger: logger, exporter: { metrics.addExporter($0) })
        {
            services.append(.init(service: scheduler))
        }
        return ServiceGroup(configuration: ServiceGroupConfiguration(services: services, logger: logger))
    }

    /// The metric labels this worker may report: its registered classes, their queues, the default queues and the
    /// queues it was told to serve (`--queues`, `CONVEYOR_QUEUES`; a value that does not parse is reported later).
    static func metricLabels(queues text: String?) -> MetricLabels {
        let served = text.flatMap { $0.isEmpty ? nil : try? QueueSelection(parsing: $0) }?.names ?? []
        return MetricLabels(
            classes: Composition.classQueues.keys,
            queues: Set(Composition.classQueues.values).union(["critical", "default", "low"]).union(served))
    }

    /// Every queue a registered class uses, weighted: `critical:8,default:4,<family queues>:2,low:1`.
    static func defaultQueues(_ registry: JobRegistry) -> String {
        let families = Set(registry.classes.values.map(\.queue)).subtracting(["critical", "default", "low"]).sorted()
        return (["critical:8", "default:4"] + families.map { "\($0):2" } + ["low:1"]).joined(separator: ",")
    }

    private func apply(
        _ settings: [String], _ flag: String, to registry: inout JobRegistry,
        _ change: (inout JobClass, String) -> Bool
    ) throws {
        for setting in settings {
            let parts = setting.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("\(flag) takes CLASS=VALUE, got \(setting)") }
            var ok = true
            do {
                try registry.configure(parts[0]) { ok = change(&$0, parts[1]) }
            } catch {
                throw ValidationError("\(flag): \(error.message)")
            }
            if !ok { throw ValidationError("\(flag): bad value \(parts[1]) for \(parts[0])") }
        }
    }
}

/// A stop asked for by a signal, before or after the service group exists: the group, once attached, shuts down
/// gracefully; one asked for before it was attached means it never runs.
final class StopRequest: Sendable {
    private let state = Mutex<(requested: Bool, group: ServiceGroup?)>((false, nil))

    func request() {
        let group = state.withLock { s -> ServiceGroup? in
            s.requested = true
            return s.group
        }
        if let group { Task { await group.triggerGracefulShutdown() } }
    }

    /// Attaches the group; false when a stop was asked for already.
    func attach(_ group: ServiceGroup) -> Bool {
        state.withLock { s in
            if s.requested { return false }
            s.group = group
            return true
        }
    }
}

/// Turns SIGTERM and SIGINT into calls on a handler, counting repeats.
final class SignalWatcher: @unchecked Sendable {
    private let sources: [any DispatchSourceSignal]

    init(_ handler: @escaping @Sendable (String, Int) -> Void) {
        let counter = Counter()
        var sources: [any DispatchSourceSignal] = []
        for (number, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { handler(name, counter.increment()) }
            source.resume()
            sources.append(source)
        }
        self.sources = sources
    }

    func cancel() { for s in sources { s.cancel() } }

    private final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func increment() -> Int {
            lock.lock()
            defer { lock.unlock() }
            value += 1
            return value
        }
    }
}
