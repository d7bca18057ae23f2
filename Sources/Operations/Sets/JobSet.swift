public import ConveyorCore
import Foundation
public import Redis
public import SidekiqQueue

/// The sorted sets an operator works on: `dead` (jobs that will not run again) and `retry` (failed jobs waiting
/// for their next attempt).
public enum JobSetName: String, Sendable, CaseIterable {
    case dead, retry

    public func key(_ keys: QueueKeys) -> String {
        switch self {
        case .dead: keys.dead
        case .retry: keys.retry
        }
    }
}

/// Which entries of a set an operation applies to. Every given criterion must match.
public struct JobFilter: Sendable {
    public var classes: [String] = []
    public var queues: [String] = []
    /// Matched against `error_class: error_message`.
    public var errorPattern: String?
    /// Unix seconds; compared with the job's `failed_at` (or the set's score when it has none).
    public var since: Double?
    public var until: Double?
    public var jids: [String] = []
    /// Most entries returned (nil: all).
    public var limit: Int?

    public init() {}

    func compiled() throws -> CompiledFilter {
        var regex: NSRegularExpression?
        if let errorPattern {
            do { regex = try NSRegularExpression(pattern: errorPattern) } catch {
                throw JobSetError.usage("--error \(errorPattern): not a valid regular expression")
            }
        }
        return CompiledFilter(filter: self, regex: regex)
    }
}

struct CompiledFilter {
    let filter: JobFilter
    let regex: NSRegularExpression?

    func matches(_ entry: JobSetEntry) -> Bool {
        if !filter.classes.isEmpty && !filter.classes.contains(entry.jobClass ?? "") { return false }
        if !filter.queues.isEmpty && !filter.queues.contains(entry.queue ?? "") { return false }
        if !filter.jids.isEmpty && !filter.jids.contains(entry.jid ?? "") { return false }
        let time = entry.failedAt ?? entry.score
        if let since = filter.since, time < since { return false }
        if let until = filter.until, time > until { return false }
        if let regex {
            let text = "\(entry.errorClass ?? ""): \(entry.errorMessage ?? "")"
            if regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) == nil { return false }
        }
        return true
    }
}

/// One member of a set, with its exact bytes (needed to remove exactly it) and the fields operators filter on.
public struct JobSetEntry: Sendable {
    public var member: [UInt8]
    public var score: Double
    /// Nil when the member is not a JSON object (raw garbage kept for inspection: it cannot be replayed).
    public var job: JSONObject?
    /// The sorted set it was read from (on a cluster, its queue's own); nil: the set the operation names.
    public var set: String?

    public var jid: String? { job?["jid"]?.stringValue }
    public var jobClass: String? { job?["class"]?.stringValue }
    public var queue: String? { job?["queue"]?.stringValue }
    public var errorClass: String? { job?["error_class"]?.stringValue }
    public var errorMessage: String? { job?["error_message"]?.stringValue }
    public var retryCount: Int? { job?["retry_count"]?.intValue }
    public var failedAt: Double? { QueueSnapshot.timestamp(job?["failed_at"]) }

    init(member: [UInt8], score: Double, set: String? = nil) {
        self.member = member
        self.score = score
        self.set = set
        if case .object(let o)? = try? JSONValue(parsing: member) { job = o }
    }

    /// The short form printed by `list --json`.
    public var summary: JSONValue {
        var o = JSONObject()
        o["jid"] = jid.map { .string($0) } ?? .null
        o["class"] = jobClass.map { .string($0) } ?? .null
        o["queue"] = queue.map { .string($0) } ?? .null
        o["error_class"] = errorClass.map { .string($0) } ?? .null
        o["error_message"] = errorMessage.map { .string($0) } ?? .null
        o["retry_count"] = retryCount.map { JSONValue($0) } ?? .null
        o["failed_at"] = failedAt.map { JSONValue($0) } ?? .null
        o["score"] = JSONValue(score)
        if job == nil { o["raw"] = .string(String(decoding: member.prefix(200), as: UTF8.self)) }
        return .object(o)
    }
}

public enum JobSetError: Error, CustomStringConvertible {
    case usage(String)
    case redis(RedisError)

    public var description: String {
        switch self {
        case .usage(let m): m
        case .redis(let e): "\(e)"
        }
    }
}

/// Dead/retry set operations, safe while workers run and from several terminals at once: each job moves with
/// one Lua script that removes that exact member and pushes it only if the removal happened.
public struct JobSet {
    public let name: JobSetName
    public let keys: QueueKeys
    private let connection: RedisConnection

    public init(_ name: JobSetName, keys: QueueKeys, connection: RedisConnection) {
        self.name = name
        self.keys = keys
        self.connection = connection
    }

    /// The sets this operation reads: Sidekiq's one, or on a cluster each queue's own (queues in the `queues` set).
    func sets() throws -> [String] {
        guard keys.cluster else { return [name.key(keys)] }
        let queues = try connection.command("SMEMBERS", keys.queues).check().array?.compactMap(\.text) ?? []
        return queues.filter(QueueKeys.isClusterSafe(queue:)).sorted().map { name == .dead ? keys.dead(queue: $0) : keys.retry(queue: $0) }
    }

    /// Entries matching `filter`, newest first (highest score first), at most `filter.limit`. On a cluster, the
    /// queues' sets are read one by one and merged.
    public func list(_ filter: JobFilter) throws -> [JobSetEntry] {
        let compiled = try filter.compiled()
        let sets = try sets()
        if sets.count == 1 { return try list(sets[0], compiled) }
        var merged: [JobSetEntry] = []
        for set in sets { merged += try list(set, compiled) }
        merged.sort { $0.score > $1.score }
        if let limit = filter.limit { return Array(merged.prefix(limit)) }
        return merged
    }

    private func list(_ key: String, _ compiled: CompiledFilter) throws -> [JobSetEntry] {
        let filter = compiled.filter
        var found: [JobSetEntry] = []
        var start = 0
        let page = 1000
        while true {
            let reply = try connection.command("ZREVRANGE", key, start, start + page - 1, "WITHSCORES").check()
            let items = reply.array ?? []
            if items.isEmpty { break }
            var i = 0
            while i + 1 < items.count {
                let entry = JobSetEntry(member: items[i].bytes ?? [], score: Double(items[i + 1].text ?? "") ?? 0, set: keys.cluster ? key : nil)
                if compiled.matches(entry) {
                    found.append(entry)
                    if let limit = filter.limit, found.count >= limit { return found }
                }
                i += 2
            }
            if items.count < page * 2 { break }
            start += page
        }
        return found
    }

    /// Moves one entry back to its queue: removes that exact member and, only if that removed it, pushes the job
    /// (with `enqueued_at` now, `retry_count` dropped when `resetAttempts`) and registers the queue. Returns false
    /// when the entry was gone (a worker or another replay took it).
    public func replay(_ entry: JobSetEntry, resetAttempts: Bool, now: Double? = nil) throws -> Bool {
        let now = now ?? Date().timeIntervalSince1970
        guard let job = entry.job, let jobClass = entry.jobClass, !jobClass.isEmpty else {
            throw JobSetError.usage("cannot replay a member that is not a job (no JSON object with a class); delete it instead")
        }
        let queue = entry.queue.flatMap { $0.isEmpty ? nil : $0 } ?? "default"
        let payload = JobTransitions.replayed(job, queue: queue, resetAttempts: resetAttempts, now: now)
        let reply = try connection.command(SidekiqCommands.replayCommand(entry.member, from: entry.set ?? name.key(keys), payload: payload, queue: queue, keys: keys))
            .check()
        return reply.int == 1
    }

    /// Removes one exact member. Returns false when it was already gone.
    public func delete(_ entry: JobSetEntry) throws -> Bool {
        try connection.command("ZREM", entry.set ?? name.key(keys), entry.member).check().int == 1
    }
}
