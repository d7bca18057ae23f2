public import ArgumentParser
import ConveyorCore
import SidekiqQueue
import Foundation
import Images
import Logging
import Mail
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

/// `30s`, `500ms`, `5m`, `2h`, or plain seconds.
struct DurationArgument: ExpressibleByArgument, Sendable {
    let duration: Duration
    var seconds: Double { Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18 }

    init(_ duration: Duration) { self.duration = duration }

    /// How `--help` shows a default: `25s`, `300ms`.
    var defaultValueDescription: String {
        let ms = Int64((seconds * 1000).rounded())
        if ms % 1000 != 0 { return "\(ms)ms" }
        let s = ms / 1000
        if s != 0 && s % 3600 == 0 { return "\(s / 3600)h" }
        if s != 0 && s % 60 == 0 { return "\(s / 60)m" }
        return "\(s)s"
    }

    init?(argument: String) {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        for (suffix, scale) in units where argument.hasSuffix(suffix) {
            guard let n = Double(argument.dropLast(suffix.count)), n >= 0 else { return nil }
            self.duration = .milliseconds(Int64((n * scale * 1000).rounded()))
            return
        }
        guard let n = Double(argument), n >= 0 else { return nil }
        self.duration = .milliseconds(Int64((n * 1000).rounded()))
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
