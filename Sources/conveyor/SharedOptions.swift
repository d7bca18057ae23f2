public import ArgumentParser
import ConveyorCore
import SidekiqQueue
import Foundation
import Images
import Logging
import Mail
import Operations
import Redis
import Sandbox
import Summaries
import AV
import Media

/// Where Redis is, which deployment's keys to use and which config file to read: the options every command shares.
/// Flags win over `REDIS_URL` / `CONVEYOR_NAMESPACE` / `CONVEYOR_CONFIG_FILE`, which win over the file.
struct RedisOptions: ParsableArguments {
    @Option(name: .customLong("redis-url"), help: "Redis URL (env REDIS_URL; default redis://127.0.0.1:6379/0).")
    var redisURL: String?

    @Option(help: "Prefix for every key, to share one Redis between deployments (env CONVEYOR_NAMESPACE).")
    var namespace: String?

    @Option(name: .customLong("config"), help: "A YAML file of settings, e.g. conveyor.yml (env CONVEYOR_CONFIG_FILE).")
    var configFile: String?

    /// These options as the reader's flag provider.
    var flags: [String: SettingsReader.FlagValue] {
        var flags: [String: SettingsReader.FlagValue] = [:]
        if let redisURL { flags[RedisSettings.redisUrl.name] = .init("--redis-url", redisURL) }
        if let namespace { flags[RedisSettings.namespace.name] = .init("--namespace", namespace) }
        if let configFile { flags[WorkerSettings.configFile.name] = .init("--config", configFile) }
        return flags
    }

    /// The one reader with these options and `more` flags; refuses (exit 64) when the file cannot be read or has
    /// unknown keys, or when a Redis setting is refused: what every command needs before it connects.
    func settings(_ more: [String: SettingsReader.FlagValue] = [:]) throws -> SettingsReader {
        var reader = Catalogue.reader(flags: flags.merging(more) { a, _ in a })
        Catalogue.checkRedis(&reader)
        let redisNames = Set(RedisSettings.all.map(\.name))
        let problems = zip(reader.problems, reader.problemSettingsByProblem).filter { $0.1 == nil || redisNames.contains($0.1!) }.map(\.0)
        if !problems.isEmpty { throw ValidationError(problems.joined(separator: "\n")) }
        return reader
    }

    func endpoint() throws -> RedisEndpoint { try Self.endpoint(settings()) }

    static func endpoint(_ settings: SettingsReader) throws -> RedisEndpoint {
        do { return try RedisEndpoint(settings: settings) } catch {
            throw ValidationError(settings.scrubbed("\(settings.resolved(RedisSettings.redisUrl).origin): \(error)"))
        }
    }

    /// The key layout: Sidekiq's, or on a Redis Cluster (`redis+cluster://`) the slot-safe one.
    var keys: QueueKeys { Self.keys((try? settings()) ?? Catalogue.reader(flags: flags)) }

    static func keys(_ settings: SettingsReader) -> QueueKeys {
        let url = settings.text(RedisSettings.redisUrl) ?? ""
        return QueueKeys(
            namespace: settings.text(RedisSettings.namespace),
            cluster: url.hasPrefix("redis+cluster://") || url.hasPrefix("rediss+cluster://"))
    }
}

/// The worker's setting flags, shared with `conveyor config` so it shows what a worker started with them would run.
struct WorkerSettingFlags: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Queues in strict priority order (critical,default,low) or weighted (critical:5,default:2,low:1).",
            discussion: "Env CONVEYOR_QUEUES. Default: every queue of the registered classes, weighted critical:8,default:4,<class queues>:2,low:1."))
    var queues: String?

    @Option(name: .shortAndLong, help: "Jobs running at once, 1-10000 (env CONVEYOR_CONCURRENCY; default 10).")
    var concurrency: String?

    @Option(help: "On SIGTERM, how long running jobs may finish before they are pushed back, 0s-1d (env CONVEYOR_SHUTDOWN_TIMEOUT) (default: 25s).")
    var shutdownTimeout: String?

    @Option(help: "trace, debug, info, notice, warning, error, critical (env CONVEYOR_LOG_LEVEL).")
    var logLevel: String?

    @Option(help: "Serve /metrics, /healthz and /readyz on host:port (env CONVEYOR_METRICS_ADDR).")
    var metricsAddr: String?

    @Option(help: "How often this process heartbeats, 10ms-1h (env CONVEYOR_HEARTBEAT_INTERVAL) (default: 5s).")
    var heartbeatInterval: String?

    @Option(help: "Silence after which another process reaps this one's in-flight jobs, 1s-1d (env CONVEYOR_HEARTBEAT_TTL) (default: 30s).")
    var heartbeatTtl: String?

    @Option(help: "How often due scheduled and retried jobs are moved to their queues, 10ms-1h (env CONVEYOR_POLL_INTERVAL) (default: 1s).")
    var pollInterval: String?

    @Option(help: "Dead set size limit, oldest dropped first, 0-100000000 (env CONVEYOR_DEAD_MAX_JOBS) (default: 10000).")
    var deadMaxJobs: String?

    @Option(help: "Dead set age limit in days, 0-3650 (env CONVEYOR_DEAD_MAX_DAYS) (default: 180).")
    var deadMaxDays: String?

    @Option(help: "Shown in Sidekiq's process list (env CONVEYOR_TAG) (default: conveyor).")
    var tag: String?

    var flags: [String: SettingsReader.FlagValue] {
        var flags: [String: SettingsReader.FlagValue] = [:]
        for (setting, spelling, value) in [
            (WorkerSettings.heartbeatInterval, "--heartbeat-interval", heartbeatInterval), (WorkerSettings.heartbeatTtl, "--heartbeat-ttl", heartbeatTtl),
            (WorkerSettings.pollInterval, "--poll-interval", pollInterval), (WorkerSettings.deadMaxJobs, "--dead-max-jobs", deadMaxJobs),
            (WorkerSettings.deadMaxDays, "--dead-max-days", deadMaxDays), (WorkerSettings.tag, "--tag", tag),
        ] {
            if let value { flags[setting.name] = .init(spelling, value) }
        }
        if let queues { flags[WorkerSettings.queues.name] = .init("--queues", queues) }
        if let concurrency { flags[WorkerSettings.concurrency.name] = .init("--concurrency", concurrency) }
        if let shutdownTimeout { flags[WorkerSettings.shutdownTimeout.name] = .init("--shutdown-timeout", shutdownTimeout) }
        if let logLevel { flags[WorkerSettings.logLevel.name] = .init("--log-level", logLevel) }
        if let metricsAddr { flags[OperationsSettings.metricsAddr.name] = .init("--metrics-addr", metricsAddr) }
        return flags
    }
}

/// `30s`, `500ms`, `5m`, `2h`, `7d`, or plain seconds, as typed. Parsing keeps any number the text spells (`inf`
/// and `-1` too) so that `checked(_:_:)`, called from each command's `validate()`, can refuse it with a message
/// naming the flag and its range (exit 64) instead of ArgumentParser's bare "invalid value".
struct DurationArgument: ExpressibleByArgument, Sendable {
    /// As typed, or the default's description.
    let text: String
    /// Clamped into 0...`OperatorInput.maximumDuration`: meaningful once `checked` accepted the value.
    let duration: Duration
    var seconds: Double { Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18 }

    init(_ duration: Duration) {
        self.duration = duration
        let s = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        self.text = OperatorInput.describe(seconds: s)
    }

    /// How `--help` shows a default: `25s`, `300ms`.
    var defaultValueDescription: String { text }

    init?(argument: String) {
        guard !argument.isEmpty else { return nil }
        self.text = argument
        let seconds = try? OperatorInput.duration(argument, name: "", plainSeconds: true)
        self.duration = OperatorInput.clampedDuration(seconds: seconds ?? 0)
    }

    /// The duration when it is finite and within `range` (seconds); a usage error naming `flag` otherwise.
    @discardableResult
    func checked(_ flag: String, _ range: ClosedRange<Double>) throws -> Duration {
        do {
            return OperatorInput.clampedDuration(seconds: try OperatorInput.duration(text, name: flag, range: range, plainSeconds: true))
        } catch { throw ValidationError(error.description) }
    }
}

enum LogSetup {
    /// Logs to standard error in `key=value` form, one line per event, every value escaped and cut
    /// (`LineLogHandler`): what reaches a log from a job cannot forge lines. The level and format come from the one
    /// reader (`--log-level`, `CONVEYOR_LOG_LEVEL`, `CONVEYOR_LOG_FORMAT`, or the file), checked there for every
    /// command alike.
    static func bootstrap(_ settings: SettingsReader) {
        let level = Logger.Level(rawValue: (settings.text(WorkerSettings.logLevel) ?? "info").lowercased()) ?? .info
        let format = LineLogHandler.Format(rawValue: (settings.text(WorkerSettings.logFormat) ?? "text").lowercased()) ?? .text
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, level: level, format: format) }
    }

    /// Refuses (exit 64) with every problem at once, each on its own line.
    static func refuse(_ problems: [String]) throws {
        if !problems.isEmpty { throw ValidationError(problems.joined(separator: "\n")) }
    }
}
