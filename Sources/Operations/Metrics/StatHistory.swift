public import ConveyorCore
import Foundation
public import Redis
public import SidekiqQueue

/// Processed and failed counts per day from Sidekiq's `stat:processed:<day>` / `stat:failed:<day>` keys, oldest
/// first, read in one `MGET`.
public struct StatHistory: Sendable, Equatable {
    public struct Day: Sendable, Equatable {
        /// `2026-11-22` (UTC, as Sidekiq names the keys).
        public var day: String
        public var processed: Int
        public var failed: Int
    }

    public var days: [Day]

    /// The most days one read covers, whatever is asked.
    public static let maximumDays = 366

    public static func read(_ connection: RedisConnection, keys: QueueKeys, days count: Int = 30, now: Double? = nil) throws -> StatHistory {
        let now = now ?? Date().timeIntervalSince1970
        let names = (0..<min(maximumDays, max(1, count))).reversed().map { JobTime.day(now - Double($0) * 86_400) }
        var arguments: [any RedisArgument] = ["MGET"]
        arguments += names.map(keys.processed(day:))
        arguments += names.map(keys.failed(day:))
        let reply = try connection.command(RedisCommand(arguments)).check()
        let values = (reply.array ?? []).map { max(0, $0.text.flatMap { Int($0) } ?? 0) }
        guard values.count == names.count * 2 else { return StatHistory(days: []) }
        return StatHistory(days: names.enumerated().map { i, day in Day(day: day, processed: values[i], failed: values[names.count + i]) })
    }
}
