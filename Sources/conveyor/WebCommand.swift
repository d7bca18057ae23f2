import ArgumentParser
import BullMQQueue
import ConveyorCore
import Foundation
import Logging
import Operations
import Redis
import ServiceLifecycle
import Storage
import Web

/// `conveyor web`: the operator dashboard, beside the workers (it runs no jobs).
struct WebCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "web",
        abstract: "Serve the operator dashboard (queues, busy, scheduled/retry/dead, lookups) until SIGTERM or SIGINT.",
        discussion: """
            Binds 127.0.0.1:9292 unless --addr or CONVEYOR_WEB_ADDR says otherwise; any non-loopback address needs \
            CONVEYOR_WEB_PASSWORD of at least 12 characters (HTTP Basic: serve it over TLS or behind a proxy). Answers \
            only requests whose Host is the bound address, a loopback name when bound to loopback, or a name in \
            CONVEYOR_WEB_HOSTS (421 otherwise). CONVEYOR_WEB_READ_ONLY=on disables \
            every action. Reads DATABASE_URL for results, uploads and summaries, and the media store settings \
            (CONVEYOR_MEDIA_ROOT, CONVEYOR_MEDIA_STORE) to show upload variants, and CONVEYOR_BULLMQ_QUEUES and \
            CONVEYOR_BULLMQ_PREFIX for the BullMQ page.
            """)

    @Option(help: "host:port to listen on (env CONVEYOR_WEB_ADDR; default 127.0.0.1:9292; port 0 picks one).")
    var addr: String?

    @Flag(help: "Show everything, change nothing (env CONVEYOR_WEB_READ_ONLY).")
    var readOnly = false

    @Option(help: "trace, debug, info, notice, warning, error, critical (env CONVEYOR_LOG_LEVEL).")
    var logLevel: String?

    @OptionGroup var redis: RedisOptions

    func run() async throws {
        // The same reader and the same checks as conveyor worker and conveyor config: every problem at once, exit 64.
        var flags: [String: SettingsReader.FlagValue] = [:]
        if let addr { flags[WebSettings.webAddr.name] = .init("--addr", addr) }
        if readOnly { flags[WebSettings.webReadOnly.name] = .init("--read-only", "on") }
        if let logLevel { flags[WorkerSettings.logLevel.name] = .init("--log-level", logLevel) }
        var settings = Catalogue.reader(flags: redis.flags.merging(flags) { a, _ in a })
        Catalogue.checkEverything(&settings)
        try LogSetup.refuse(settings.problems)
        LogSetup.bootstrap(settings)
        let environment = settings.effectiveEnvironment
        let logger = Logger(label: "conveyor.web")
        for warning in settings.warnings { logger.warning("\(warning)") }
        let configuration: WebConfiguration
        let store: (any MediaStore)?
        do {
            configuration = try WebConfiguration(settings: settings)
            let media = try MediaStoreSettings(environment: environment)
            store = try media.makeStore(environment: environment)
        } catch {
            throw ValidationError(settings.scrubbed(error.message))
        }
        // The BullMQ queues of CONVEYOR_BULLMQ_QUEUES get a page; retrying them needs BullMQ's scripts, and without
        // them the page still shows (and says why it cannot retry).
        var bullmq: BullMQPages?
        let bullmqQueues = settings.list(BullMQSettings.queues)
        if !bullmqQueues.isEmpty {
            var pages = BullMQPages(queues: bullmqQueues, prefix: settings.text(BullMQSettings.prefix) ?? "bull", scripts: nil)
            do {
                pages.scripts = try BullMQScripts(directory: try settings.text(BullMQSettings.scripts) ?? BullMQScripts.discover())
            } catch {
                pages.scriptsProblem = "\(error)"
                logger.warning("BullMQ queues are shown but cannot be retried", metadata: ["error": "\(error)"])
            }
            bullmq = pages
        }
        let dashboard = Dashboard(
            configuration: configuration, redis: try RedisOptions.endpoint(settings), keys: RedisOptions.keys(settings),
            databaseURL: settings.text(OperationsSettings.databaseUrl), mediaStore: store, bullmq: bullmq, version: Conveyor.version,
            logger: logger)
        defer { dashboard.close() }
        let host = configuration.host
        let app = WebServer.application(dashboard, logger: logger) { port in
            let shown = host.contains(":") ? "[\(host)]" : host
            logger.notice("dashboard listening on http://\(shown):\(port)/", metadata: [
                "read_only": "\(configuration.readOnly)", "password": "\(configuration.password != nil)",
                "extra_hosts": "\(configuration.allowedHosts.map { $0.host + ($0.port.map { ":\($0)" } ?? "") }.joined(separator: ","))",
            ])
            // One line on stdout for scripts (make run, the browser tests) to read the URL from.
            FileHandle.standardOutput.write(Data("conveyor web: http://\(shown):\(port)/\n".utf8))
        }
        let services: [any Service] = dashboard.services + [app]
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
