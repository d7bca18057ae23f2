public import ConveyorCore
import Foundation
public import Redis
public import SidekiqQueue

/// What operators did, from the dashboard and the CLI, with who did it: a capped Redis list (`conveyor:actions`,
/// newest first, the last 1,000), so every dashboard replica shows the same history and it survives restarts.
public struct ActionLog {
    public let keys: QueueKeys
    private let connection: RedisConnection

    /// Entries kept.
    public static let capacity = 1000
    /// Longest `who` and `what` stored, in characters.
    public static let maximumText = 500

    public init(keys: QueueKeys, connection: RedisConnection) {
        self.keys = keys
        self.connection = connection
    }

    public struct Entry: Sendable, Equatable {
        public var at: Double
        public var who: String
        public var what: String
        /// `dashboard` or `cli`.
        public var via: String

        public init(at: Double, who: String, what: String, via: String) {
            self.at = at
            self.who = who
            self.what = what
            self.via = via
        }
    }

    public var key: String { keys.conveyor("actions") }

    public func record(_ entry: Entry) throws {
        let value = JSONValue.object(JSONObject([
            ("at", JSONValue(entry.at)), ("who", .string(String(entry.who.prefix(Self.maximumText)))),
            ("what", .string(String(entry.what.prefix(Self.maximumText)))), ("via", .string(String(entry.via.prefix(20)))),
        ])).text
        for reply in try connection.pipeline([RedisCommand("LPUSH", key, value), RedisCommand("LTRIM", key, 0, Self.capacity - 1)]) {
            try reply.check()
        }
    }

    /// The newest `limit` entries (at most `capacity`); unreadable entries are skipped.
    public func recent(limit: Int = 200) throws -> [Entry] {
        let n = min(Self.capacity, max(1, limit))
        let items = try connection.command("LRANGE", key, 0, n - 1).check().array ?? []
        return items.compactMap { item in
            guard let bytes = item.bytes, let o = (try? JSONValue(parsing: bytes))?.objectValue,
                let at = o["at"]?.doubleValue, let who = o["who"]?.stringValue, let what = o["what"]?.stringValue
            else { return nil }
            return Entry(at: at, who: String(who.prefix(Self.maximumText)), what: String(what.prefix(Self.maximumText)), via: o["via"]?.stringValue ?? "")
        }
    }

    /// Who runs a CLI command: `$USER@host` (`operator@host` without `$USER`).
    public static var cliUser: String {
        let user = ProcessInfo.processInfo.environment["USER"].flatMap { $0.isEmpty ? nil : $0 } ?? "operator"
        return "\(user.prefix(64))@\(ProcessInfo.processInfo.hostName.prefix(200))"
    }
}
