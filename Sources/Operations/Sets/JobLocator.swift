public import ConveyorCore
import Foundation
public import Redis
public import SidekiqQueue

/// Finds a job by jid wherever it is in Redis: taken by a process (running, or fetched and about to start), queued,
/// scheduled, waiting for a retry or dead, with its progress hash. `conveyor job` and the dashboard's Look up use it.
public struct JobLocator {
    public let keys: QueueKeys
    private let connection: RedisConnection

    public init(keys: QueueKeys, connection: RedisConnection) {
        self.keys = keys
        self.connection = connection
    }

    /// One place the job was found.
    public struct Sighting: Sendable {
        /// `taken`, `queued`, `scheduled`, `retry` or `dead`.
        public var place: String
        /// The queue it waits in (`queued`), or its own queue field.
        public var queue: String?
        /// The process holding it (`taken`).
        public var process: String?
        /// The sorted-set score (`scheduled`: when it runs; `retry`: when it is retried; `dead`: when it died).
        public var score: Double?
        /// Its payload as stored; nil when the bytes are not a JSON object.
        public var job: JSONObject?
    }

    /// How many jobs of each queue are read looking for the jid (newest first), at most: a lookup (a dashboard page)
    /// reads at most `queueScanLimit * maximumQueues` members.
    public static let queueScanLimit = 10_000
    /// How many queues are searched, at most (in name order).
    public static let maximumQueues = 20

    /// Every place `jid` is (usually one; a job pushed twice can be in two).
    public func locate(_ jid: String) throws -> [Sighting] {
        var found: [Sighting] = []
        if let (identity, job) = try taken(jid) {
            found.append(Sighting(place: "taken", queue: job?["queue"]?.stringValue, process: identity, job: job))
        }
        let queues = (try connection.command("SMEMBERS", keys.queues).check().array ?? []).compactMap(\.text).sorted().prefix(Self.maximumQueues)
        for queue in queues {
            if let hit = try QueueContents(queue, keys: keys, connection: connection).find(jid: jid, scanLimit: Self.queueScanLimit) {
                found.append(Sighting(place: "queued", queue: queue, job: (try? JSONValue(parsing: hit.member))?.objectValue))
            }
        }
        for set in [JobSetName.scheduled, .retry, .dead] {
            if let entry = try JobSet(set, keys: keys, connection: connection).find(jid: jid, score: nil) {
                found.append(Sighting(place: set == .scheduled ? "scheduled" : set.rawValue, queue: entry.queue, score: entry.score, job: entry.job))
            }
        }
        return found
    }

    /// The process whose in-flight list holds `jid`, and the job as it holds it.
    public func taken(_ jid: String) throws -> (String, JSONObject?)? {
        let identities = (try connection.command("SMEMBERS", keys.conveyorProcesses).check().array ?? []).compactMap(\.text).sorted()
        guard !identities.isEmpty else { return nil }
        // In-flight lists hold what a process took (its concurrency and a little prefetch): small.
        let lists = try connection.pipeline(identities.map { RedisCommand("LRANGE", keys.inflight($0), 0, 9_999) })
        let needle = Array(jid.utf8)
        for (identity, reply) in zip(identities, lists) {
            for item in try reply.check().array ?? [] {
                guard let bytes = item.bytes, Self.contains(bytes, needle),
                    let job = (try? JSONValue(parsing: bytes))?.objectValue, job["jid"]?.stringValue == jid
                else { continue }
                return (identity, job)
            }
        }
        return nil
    }

    /// The job's progress hash (`conveyor:job:<jid>`): `progress`, `detail`, `updated_at`, `status`; empty when none.
    public func progress(_ jid: String) throws -> [String: String] {
        try Self.progress([jid], keys: keys, connection: connection)[0]
    }

    /// The progress hashes of several jobs in one round trip, in order.
    public static func progress(_ jids: [String], keys: QueueKeys, connection: RedisConnection) throws -> [[String: String]] {
        guard !jids.isEmpty else { return [] }
        let fields = ["progress", "detail", "updated_at", "status"]
        let replies = try connection.pipeline(jids.map { RedisCommand(["HMGET", keys.conveyor("job:" + $0)] + fields) })
        return try replies.map { reply in
            let values = try reply.check().array ?? []
            var out: [String: String] = [:]
            for (name, value) in zip(fields, values) { if let text = value.text { out[name] = text } }
            return out
        }
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        return haystack.withUnsafeBufferPointer { h in
            needle.withUnsafeBufferPointer { n in
                var i = 0
                while i + n.count <= h.count {
                    if h[i] == n[0] && memcmp(h.baseAddress! + i, n.baseAddress!, n.count) == 0 { return true }
                    i += 1
                }
                return false
            }
        }
    }
}
