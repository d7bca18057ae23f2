public import ConveyorCore
public import Postgres
import Redis
import SidekiqQueue
import Foundation
import Logging

/// Registers the Web Push job classes.
public enum PushJobs: JobFamilyDefinition, DeclaresMigrations {
    public static let sendClass = "push.send"
    public static let fanoutClass = "push.fanout"
    /// The family's queue, and its classes: what `conveyor enqueue` needs, without building the family.
    public static let queue = "notifications"
    public static let classNames = [sendClass, fanoutClass]

    /// `conveyor.push_gone`, the subscriptions push services said are gone.
    public static var migrations: [Migration] { PushMigrations.all }

    /// Ten runs, 1 s doubling back-off (jittered): 429/5xx retry quickly and still no earlier than `Retry-After`.
    public static let retry = RetryPolicy(maxAttempts: 10, backoff: .exponential(base: 1, factor: 2, cap: 3600, jitter: 0.25))

    public static func family(_ context: FamilyContext) throws -> JobFamily {
        var registry = JobRegistry()
        try register(into: &registry, environment: context.environment)
        return JobFamily(registry: registry)
    }

    /// Registers `push.send` and `push.fanout` on queue `notifications`, reading the settings of `PushSettings` from `environment`;
    /// gone subscriptions go to `conveyor.push_gone` when `DATABASE_URL` is set.
    public static func register(into registry: inout JobRegistry, environment: [String: String], gone: (any PushGoneStore)? = nil) throws {
        let configuration = try PushConfiguration(environment: environment)
        if configuration.allowInsecureLoopback {
            Logger(label: "conveyor.push").warning(
                "CONVEYOR_PUSH_ALLOW_INSECURE_LOOPBACK is on: push.send also sends to http://127.0.0.1 (tests only; never in production)")
        }
        let store = gone ?? environment["DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }.map { PostgresPushGoneStore(url: $0) }
        let sender = PushSender(configuration: configuration)
        // A service's 429 holds back every worker's pushes to it when they share Redis.
        let namespace = environment["CONVEYOR_NAMESPACE"].flatMap { $0.isEmpty ? nil : $0 }
        let cooldownRedis = try environment["REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 }.map {
            RedisThread(try RedisEndpoint(url: $0, environment: environment), name: "conveyor-push-cooldown")
        }
        let cooldown = PushCooldown(redis: cooldownRedis, namespace: namespace)
        registry.register(JobClass(
            sendClass, queue: queue, retry: retry, timeout: .seconds(configuration.timeout + 30), concurrency: configuration.concurrency,
            handler: PushSendHandler(sender: sender, gone: store, cooldown: cooldown)))
        // push.fanout enqueues push.send jobs where this worker's queues are: the same Redis and namespace.
        var client: JobClient?
        if let url = environment["REDIS_URL"], !url.isEmpty {
            let keys = QueueKeys(namespace: environment["CONVEYOR_NAMESPACE"].flatMap { $0.isEmpty ? nil : $0 },
                                 cluster: url.hasPrefix("redis+cluster://") || url.hasPrefix("rediss+cluster://"))
            client = JobClient(redis: RedisThread(try RedisEndpoint(url: url, environment: environment), name: "conveyor-push-fanout"), keys: keys)
        }
        registry.register(JobClass(
            fanoutClass, queue: queue, retry: retry, timeout: .seconds(60), concurrency: 4,
            handler: PushFanoutHandler(client: client, allowInsecureLoopback: configuration.allowInsecureLoopback)))
    }
}
