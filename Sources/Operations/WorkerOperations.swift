public import ConveyorCore
public import SidekiqQueue
import Foundation
public import Logging
public import Postgres
public import Redis
public import ServiceLifecycle

/// Everything operations adds to a `conveyor worker` process, built in one call: migrations, the result store,
/// metrics with the Redis poller, and the HTTP endpoint. Hand `observers` to the worker and run `services` in
/// the worker's service group before it (they stop after it: the store writes what the worker finished last);
/// outside a group, call `shutdown(timeout:)` after the worker drains.
public final class WorkerOperations: Sendable {
    public let metrics: ConveyorMetrics
    /// Nil when no `DATABASE_URL` is set: outcomes are then not recorded.
    public let results: ResultStore?
    public let poller: QueuePoller
    /// Nil when no metrics address was given.
    public let server: MetricsServer?

    /// Whether the result store is fed through the worker's outcome journal (an `identity` was given).
    public let journaled: Bool

    /// Observers for the worker: the metrics, then the result store unless it is the journal.
    public var observers: [any JobObserver] { [metrics] + (journaled ? [] : results.map { [$0] } ?? []) }

    /// The worker's outcome journal: the result store, when outcomes are recorded and an identity was given.
    public var journal: (any OutcomeJournal)? { journaled ? results : nil }

    /// - Parameters:
    ///   - metricsAddress: `--metrics-addr` (`CONVEYOR_METRICS_ADDR`), e.g. `127.0.0.1:9464`; nil serves nothing.
    ///   - environment: reads `DATABASE_URL`, `CONVEYOR_RESULTS_*`, `CONVEYOR_METRICS_POLL_SECONDS`.
    ///   - migrations: every family's migrations, applied at start (and by the store before its first write while
    ///     PostgreSQL is down).
    ///   - identity: the worker process's identity: outcomes then reach the store through its outcome journal
    ///     in Redis (`journal`), which survives kill -9. Nil: through `observers`, in memory only.
    ///   - labels: the job classes and queues that get metric series of their own (the registered classes and the
    ///     worker's queues); any other is counted as `unknown` / `other`.
    public convenience init(
        redis: RedisEndpoint, keys: QueueKeys, metricsAddress: String?, environment: [String: String],
        migrations: [Migration] = OperationsMigrations.all, identity: String? = nil, labels: MetricLabels = .firstSeen,
        logger: Logger = Logger(label: "conveyor.operations")
    ) throws {
        // Validated whether or not outcomes are recorded: a bad value is an error, not a silent default.
        try self.init(
            redis: redis, keys: keys, metricsAddress: metricsAddress, databaseURL: environment["DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 },
            results: try ResultStore.Configuration(environment: environment),
            pollInterval: try EnvironmentNumber.double("CONVEYOR_METRICS_POLL_SECONDS", in: environment, default: 5, range: 0.5...3600),
            migrations: migrations, identity: identity, labels: labels, logger: logger)
    }

    /// From the one settings reader (`OperationsSettings`), whose values are already checked.
    public convenience init(
        redis: RedisEndpoint, keys: QueueKeys, settings: SettingsReader, migrations: [Migration] = OperationsMigrations.all,
        identity: String? = nil, labels: MetricLabels = .firstSeen, logger: Logger = Logger(label: "conveyor.operations")
    ) throws {
        try self.init(
            redis: redis, keys: keys, metricsAddress: settings.text(OperationsSettings.metricsAddr),
            databaseURL: settings.text(OperationsSettings.databaseUrl), results: ResultStore.Configuration(settings: settings),
            pollInterval: settings.number(OperationsSettings.metricsPollSeconds), migrations: migrations, identity: identity, labels: labels,
            logger: logger)
    }

    /// - Parameters:
    ///   - databaseURL: where outcomes go; nil records none.
    ///   - pollInterval: seconds between the poller's reads of queue depths and set sizes.
    public init(
        redis: RedisEndpoint, keys: QueueKeys, metricsAddress: String?, databaseURL: String?, results resultsConfiguration: ResultStore.Configuration,
        pollInterval interval: Double, migrations: [Migration], identity: String?, labels: MetricLabels, logger: Logger
    ) throws {
        let metrics = ConveyorMetrics(labels: labels)
        self.metrics = metrics
        if let databaseURL {
            // Migrate at start; a database that is down now only delays writes: the store buffers, and runs the
            // migrations itself before its first write once PostgreSQL is back.
            var migrated = false
            do {
                let connection = try PostgresConnection(url: databaseURL)
                let report = try Migrator(migrations: migrations).migrate(connection)
                for m in report.applied { logger.info("applied migration \(m.component) \(m.version) \(m.name)") }
                migrated = true
            } catch {
                metrics.postgresError()
                logger.error("cannot migrate schema conveyor now (results are buffered until PostgreSQL is back): \(error)")
            }
            var prepare: (@Sendable (PostgresConnection) throws -> Void)?
            if !migrated {
                prepare = { @Sendable (connection: PostgresConnection) throws -> Void in
                    _ = try Migrator(migrations: migrations).migrate(connection)
                }
            }
            let store = ResultStore(
                databaseURL: databaseURL, configuration: resultsConfiguration, logger: logger, prepare: prepare,
                journal: identity.map { ResultStore.Journal(redis: redis, keys: keys, identity: $0) })
            metrics.observe(store)
            results = store
            journaled = identity != nil
        } else {
            logger.notice("DATABASE_URL is not set: job outcomes are not recorded")
            results = nil
            journaled = false
        }
        poller = QueuePoller(endpoint: redis, keys: keys, metrics: metrics, interval: interval)
        if let metricsAddress, !metricsAddress.isEmpty {
            server = try MetricsServer(address: metricsAddress, metrics: metrics) {
                Readiness.check(redis: redis, databaseURL: databaseURL)
            }
            logger.info("serving /metrics, /healthz, /readyz on \(metricsAddress)")
        } else {
            server = nil
        }
    }

    /// The long-running parts in start order: the HTTP server, the queue poller, the result store. A service group
    /// stops them in reverse: the store writes its buffer (up to `shutdownTimeout` seconds) before the server goes.
    public func services(shutdownTimeout: Double = 5) -> [any Service] {
        var services: [any Service] = []
        if let server { services.append(StoppingService("metrics-server") { server.stop() }) }
        services.append(poller)
        if let results { services.append(StoppingService("result-store") { results.shutdown(timeout: shutdownTimeout) }) }
        return services
    }

    /// Without a service group: writes buffered outcomes (up to `timeout` seconds), then stops the HTTP server.
    public func shutdown(timeout: Double = 5) {
        results?.shutdown(timeout: timeout)
        server?.stop()
    }
}
