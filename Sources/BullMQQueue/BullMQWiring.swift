public import ConveyorCore
public import Logging
public import Redis

/// How `conveyor worker` adds BullMQ queues to the queues it serves.
public enum BullMQWiring {
    /// The worker's queue selection: the Sidekiq queues (nil: none) followed by the BullMQ ones, each BullMQ queue with
    /// weight 1 in a weighted selection. A name on both sides is refused (a job's queue must say which backend holds it).
    public static func selection(sidekiq: String?, bullmq: [String]) throws(JobFailure) -> QueueSelection {
        guard !bullmq.isEmpty else { return try QueueSelection(parsing: sidekiq ?? "default") }
        guard let sidekiq, !sidekiq.isEmpty else { return try QueueSelection(parsing: bullmq.joined(separator: ",")) }
        let base = try QueueSelection(parsing: sidekiq)
        if let both = bullmq.first(where: { base.names.contains($0) }) {
            throw .permanent(
                .invalidConfiguration,
                "queue \(both) is named by both CONVEYOR_QUEUES (Sidekiq) and CONVEYOR_BULLMQ_QUEUES (BullMQ): one worker cannot tell their jobs apart; rename one")
        }
        let extra = base.mode == .weighted ? bullmq.map { "\($0):1" } : bullmq
        return try QueueSelection(parsing: ([sidekiq] + extra).joined(separator: ","))
    }

    /// The backend and registry the worker runs with: unchanged without BullMQ queues, else a `QueueRouter` over the
    /// Sidekiq backend and a `BullMQBackend` (scripts read and checked, old Bull queues refused) and the registry
    /// wrapped by `BullMQHandlers`. Throws `InvalidConfiguration` (exit 64) for scripts that are not the pinned ones.
    public static func backend(
        sidekiq: any QueueBackend, queues: [String], settings: SettingsReader, redis endpoint: RedisEndpoint, identity: String,
        registry: JobRegistry, logger: Logger
    ) async throws -> (any QueueBackend, JobRegistry) {
        guard !queues.isEmpty else { return (sidekiq, registry) }
        let scripts: BullMQScripts
        do {
            scripts = try BullMQScripts(directory: try settings.text(BullMQSettings.scripts) ?? BullMQScripts.discover())
        } catch let error as BullMQScriptError {
            throw JobFailure.permanent(.invalidConfiguration, error.message)
        }
        let options = BullMQOptions(
            prefix: settings.text(BullMQSettings.prefix) ?? "bull",
            lockDuration: Saturating.int((settings.number(BullMQSettings.lockDuration) * 1000).rounded()),
            stalledInterval: Saturating.int((settings.number(BullMQSettings.stalledInterval) * 1000).rounded()),
            removeOnComplete: BullMQOptions.keep(parsing: settings.text(BullMQSettings.removeOnComplete) ?? "keep") ?? nil,
            removeOnFail: BullMQOptions.keep(parsing: settings.text(BullMQSettings.removeOnFail) ?? "keep") ?? nil,
            limiter: BullMQOptions.limiter(parsing: settings.text(BullMQSettings.limiter) ?? "off") ?? nil)
        let bull = try BullMQBackend(
            redis: endpoint, scripts: scripts, queues: queues, options: options, identity: identity, journal: sidekiq.journalName, logger: logger)
        do {
            try await bull.checkQueues()
        } catch let failure as JobFailure {
            bull.close()
            throw failure
        } catch {
            logger.warning("could not check the BullMQ queues for old Bull layouts (Redis unreachable?); going on", metadata: ["error": "\(error)"])
        }
        logger.info(
            "serving BullMQ queues", metadata: ["bullmq_queues": "\(queues.joined(separator: ","))", "prefix": "\(options.prefix)", "scripts": "\(scripts.directory)"])
        return (QueueRouter(sidekiq: sidekiq, bullmq: bull), BullMQHandlers.wrap(registry, backend: bull))
    }
}
