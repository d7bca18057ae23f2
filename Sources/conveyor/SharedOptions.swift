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
import Video

/// Where Redis is and which deployment's keys to use: flags win over `REDIS_URL` / `CONVEYOR_NAMESPACE`.
struct RedisOptions: ParsableArguments {
    @Option(name: .customLong("redis-url"), help: "Redis URL (env REDIS_URL; default redis://127.0.0.1:6379/0).")
    var redisURL: String?

    @Option(help: "Prefix for every key, to share one Redis between deployments (env CONVEYOR_NAMESPACE).")
    var namespace: String?

    static let defaultURL = "redis://127.0.0.1:6379/0"

    func endpoint() throws -> RedisEndpoint {
        let url = redisURL ?? ProcessInfo.processInfo.environment["REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultURL
        do { return try RedisEndpoint(url: url, environment: ProcessInfo.processInfo.environment) } catch { throw ValidationError("\(error)") }
    }

    /// The key layout: Sidekiq's, or on a Redis Cluster (`redis+cluster://`) the slot-safe one.
    var keys: QueueKeys {
        let environment = ProcessInfo.processInfo.environment
        let url = redisURL ?? environment["REDIS_URL"] ?? ""
        return QueueKeys(
            namespace: namespace ?? environment["CONVEYOR_NAMESPACE"],
            cluster: url.hasPrefix("redis+cluster://") || url.hasPrefix("rediss+cluster://"))
    }

    /// `environment` with the flags applied, for the parts that read Redis settings from it.
    func environment(_ environment: [String: String]) -> [String: String] {
        var e = environment
        e["REDIS_URL"] = redisURL ?? e["REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultURL
        if let namespace { e["CONVEYOR_NAMESPACE"] = namespace }
        return e
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
    /// (`LineLogHandler`): what reaches a log from a job cannot forge lines.
    /// `CONVEYOR_LOG_FORMAT`: `text` (default) or `json`, one object per line; anything else is a usage error.
    static func bootstrap(level: Logger.Level, environment: [String: String]) throws {
        let text = environment["CONVEYOR_LOG_FORMAT"].flatMap { $0.isEmpty ? nil : $0.lowercased() } ?? "text"
        guard let format = LineLogHandler.Format(rawValue: text) else {
            throw ValidationError("CONVEYOR_LOG_FORMAT=\(text) is neither text nor json")
        }
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, level: level, format: format) }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
