public import ConveyorCore
public import SidekiqQueue
import Curl
import Foundation
public import Postgres
import Redis

/// Registers the email job classes.
public enum MailJobs: JobFamilyDefinition, DeclaresMigrations {
    public static let sendClass = "email.send"
    /// The family's queue, and its classes: what `conveyor enqueue` needs, without building the family.
    public static let queue = "mail"
    public static let classNames = [sendClass]

    /// `conveyor.mail_ledger`, the idempotency ledger.
    public static var migrations: [Migration] { MailMigrations.all }

    public static func family(_ context: FamilyContext) throws -> JobFamily {
        var registry = JobRegistry()
        try register(into: &registry, settings: context.settings)
        return JobFamily(registry: registry)
    }

    /// The same from a plain environment, through a reader of the families' settings.
    public static func register(into registry: inout JobRegistry, environment: [String: String]) throws {
        try register(into: &registry, settings: SettingsReader(families: environment))
    }

    /// Registers `email.send` on queue `mail`, reading `MailSettings` from the one reader:
    /// `SMTP_URL` (none: `.eml` files in `CONVEYOR_MAIL_OUTBOX`), `DATABASE_URL` for the idempotency ledger (none:
    /// an in-process ledger), `REDIS_URL` + `SMTP_RATE_LIMIT` for the shared rate limit. See docs/configuration.md, Email.
    public static func register(into registry: inout JobRegistry, settings: SettingsReader) throws {
        let configuration = try MailConfiguration(settings: settings)
        // The connections (PostgreSQL, Redis) are other groups' settings, under their variables.
        let environment = settings.effectiveEnvironment
        let transport: any MailTransport = configuration.smtp.map { SMTPTransport(configuration: $0, connections: configuration.concurrency) }
            ?? OutboxTransport(folder: configuration.outbox)
        let ledger: any MailLedger = environment["DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }.map { PostgresMailLedger(url: $0) }
            ?? InMemoryMailLedger()
        /// A budget shared through Redis (it needs REDIS_URL), under `conveyor:mail:rate:<transport>`.
        func sharedLimiter(_ rate: Int?, _ setting: Setting, thread: String) throws -> MailRateLimiter? {
            guard let rate else { return nil }
            guard let url = environment["REDIS_URL"], !url.isEmpty else {
                throw JobFailure.permanent(.mailConfiguration, "\(setting.name)=\(rate) needs REDIS_URL: the limit is shared through Redis")
            }
            let keys = QueueKeys(namespace: environment["CONVEYOR_NAMESPACE"].flatMap { $0.isEmpty ? nil : $0 })
            return MailRateLimiter(redis: RedisThread(try RedisEndpoint(url: url, environment: environment), name: thread),
                                   keyPrefix: keys.conveyor("mail:rate:\(transport.name)"), perSecond: rate)
        }
        let limiter = try sharedLimiter(configuration.rateLimit, MailSettings.smtpRateLimit, thread: "conveyor-mail-rate")
        let domainLimiter = try sharedLimiter(configuration.domainRateLimit, MailSettings.smtpRateLimitPerDomain, thread: "conveyor-mail-domain-rate")
        let handler = EmailSendHandler(configuration: configuration, transport: transport, ledger: ledger, rateLimiter: limiter, domainRateLimiter: domainLimiter)
        registry.register(JobClass(
            sendClass, queue: queue, retry: RetryPolicy(maxAttempts: 8), timeout: (configuration.smtp?.timeout ?? .seconds(60)) + .seconds(30),
            concurrency: configuration.concurrency, handler: handler))
    }
}
