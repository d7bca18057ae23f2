public import ConveyorCore
public import SidekiqQueue
public import Postgres
internal import Redis

/// The `llm.summarize` job: summary text, provider and model, whether cached or degraded.
public struct SummarizeHandler: JobHandler {
    public let summarizer: Summarizer
    public let store: (any SummaryStore)?

    public init(summarizer: Summarizer, store: (any SummaryStore)?) {
        self.summarizer = summarizer
        self.store = store
    }

    public func perform(_ job: JobContext) async throws -> JSONValue {
        let request = try SummaryRequest(arguments: job)
        let result = try await summarizer.summarize(request, deadline: job.deadline, jid: job.jid, logger: job.logger)
        if let store {
            do {
                try await store.save(result)
            } catch {
                throw JobFailure.transient(.summaryStoreFailed, "llm.summarize jid=\(job.jid) post \(request.postID): could not store the summary: \(error)")
            }
        }
        return result.json
    }
}

/// Registers the summaries job classes.
public enum SummariesJobs: JobFamilyDefinition, DeclaresMigrations {
    /// The family's queue, and its classes: what `conveyor enqueue` needs, without building the family.
    public static let queue = "llm"
    public static let classNames = ["llm.summarize"]

    /// `conveyor.summaries`.
    public static var migrations: [Migration] { PostgresSummaryStore.migrations }

    /// The family for a worker: `llm.summarize`, with its summariser's breakers and counters in the metrics.
    public static func family(_ context: FamilyContext) throws -> JobFamily {
        var registry = JobRegistry()
        let summarizer = try register(into: &registry, settings: context.settings)
        return JobFamily(registry: registry, metrics: { summarizer.metricsSnapshot().prometheusText() })
    }

    /// Registers `llm.summarize` on queue `llm`, 120 s timeout (two providers at the 30 s default each plus
    /// waiting for another job's call), 8 per process, reading the variables of docs/configuration.md from `environment`.
    /// Summaries are stored by post id in PostgreSQL (`conveyor.summaries`) when `DATABASE_URL` is set; the
    /// table's migration is `PostgresSummaryStore.migrations`, which the composition hands to `conveyor migrate`.
    /// - Parameters:
    ///   - store: overrides where summaries are kept (tests); without it and without `DATABASE_URL` they are
    ///     only in the job results.
    /// - Returns: the summariser, whose breakers and counters the worker's metrics export.
    @discardableResult
    public static func register(into registry: inout JobRegistry, environment: [String: String], store: (any SummaryStore)? = nil) throws
        -> Summarizer
    {
        try register(into: &registry, settings: SettingsReader(families: environment), store: store)
    }

    /// The same from the one reader (`SummariesSettings`; the connections are other groups' settings).
    @discardableResult
    public static func register(into registry: inout JobRegistry, settings: SettingsReader, store: (any SummaryStore)? = nil) throws
        -> Summarizer
    {
        let configuration = try SummariesConfiguration(settings: settings)
        let environment = settings.effectiveEnvironment
        var store = store
        if store == nil, let url = environment["DATABASE_URL"], !url.isEmpty {
            store = PostgresSummaryStore(database: PostgresThread(url: url, name: "conveyor-llm-store"))
        }
        var cache: SummaryCache?
        if let url = configuration.redisURL {
            let endpoint = try RedisEndpoint(url: url, environment: environment)
            let redis = RedisThread(endpoint, name: "conveyor-llm-cache", commandTimeout: 5)
            cache = SummaryCache(redis: redis, keys: QueueKeys(namespace: configuration.namespace),
                                 ttl: configuration.cacheTTL, lockTTL: configuration.lockTTL)
        }
        let summarizer = Summarizer(configuration: configuration, cache: cache)
        registry.register(JobClass(
            "llm.summarize", queue: queue, retry: .default, timeout: .seconds(120), concurrency: 8,
            handler: SummarizeHandler(summarizer: summarizer, store: store)))
        return summarizer
    }
}
