public import ConveyorCore
import Foundation
public import Redis
public import SidekiqQueue

/// The sorted sets an operator works on: `dead` (jobs that will not run again), `retry` (failed jobs waiting
/// for their next attempt) and `scheduled` (jobs to run later; replaying one runs it now).
public enum JobSetName: String, Sendable, CaseIterable {
    case dead, retry, scheduled

    public func key(_ keys: QueueKeys) -> String {
        switch self {
        case .dead: keys.dead
        case .retry: keys.retry
        case .scheduled: keys.schedule
        }
    }
}

/// Which entries of a set an operation applies to. Every given criterion must match.
public struct JobFilter: Sendable {
    public var classes: [String] = []
    public var queues: [String] = []
    /// Matched against `error_class: error_message` by `ErrorPattern` (linear time, a regular-expression subset).
    public var errorPattern: String?
    /// Unix seconds; compared with the job's `failed_at` (or the set's score when it has none).
    public var since: Double?
    public var until: Double?
    public var jids: [String] = []
    /// Most entries returned (nil: all).
    public var limit: Int?

    public init() {}

    /// True when no criterion is set (every entry matches).
    public var isEmpty: Bool {
        classes.isEmpty && queues.isEmpty && errorPattern == nil && since == nil && until == nil && jids.isEmpty
    }

    func compiled() throws -> CompiledFilter {
        var pattern: ErrorPattern?
        if let errorPattern { pattern = try ErrorPattern(errorPattern) }
        return CompiledFilter(filter: self, pattern: pattern)
    }
}

/// A filter ready to run; `steps` counts the error pattern's matching work so far (see `JobSet.page`).
final class CompiledFilter {
    let filter: JobFilter
    let pattern: ErrorPattern?
    var steps = 0

    init(filter: JobFilter, pattern: ErrorPattern?) {
        self.filter = filter
        self.pattern = pattern
    }

    func matches(_ entry: JobSetEntry) -> Bool {
        if !filter.classes.isEmpty && !filter.classes.contains(entry.jobClass ?? "") { return false }
        if !filter.queues.isEmpty && !filter.queues.contains(entry.queue ?? "") { return false }
        if !filter.jids.isEmpty && !filter.jids.contains(entry.jid ?? "") { return false }
        let time = entry.failedAt ?? entry.score
        if let since = filter.since, time < since { return false }
        if let until = filter.until, time > until { return false }
        if let pattern {
            let text = "\(entry.errorClass ?? ""): \(entry.errorMessage ?? "")"
            if !pattern.matches(text, steps: &steps) { return false }
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

    public init(member: [UInt8], score: Double, set: String? = nil) {
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
        return queues.filter(QueueKeys.isClusterSafe(queue:)).sorted().map { queue in
            switch name {
            case .dead: keys.dead(queue: queue)
            case .retry: keys.retry(queue: queue)
            case .scheduled: keys.schedule(queue: queue)
            }
        }
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

    /// Removes one exact member, and gives up its unique lock if it holds one (a retrying unique job keeps its lock
    /// until its outcome; deleting it is that outcome). Returns false when it was already gone.
    public func delete(_ entry: JobSetEntry) throws -> Bool {
        guard try connection.command("ZREM", entry.set ?? name.key(keys), entry.member).check().int == 1 else { return false }
        if let release = RedisUniqueLocks.releaseCommand(member: entry.member, keys: keys) { _ = try connection.command(release).check() }
        return true
    }

    /// The entry with this jid: looked up by its score when given (`ZRANGEBYSCORE score score`, what the
    /// dashboard's links carry), else by reading the set from the top.
    public func find(jid: String, score: Double?) throws -> JobSetEntry? {
        for set in try sets() {
            if let hit = try find(jid: jid, score: score, in: set) { return hit }
        }
        return nil
    }

    private func find(jid: String, score: Double?, in set: String) throws -> JobSetEntry? {
        let tag = keys.cluster ? set : nil
        if let score, !score.isNaN {
            // Redis spells the infinite scores a producer may have written +inf and -inf (JSON has no such number).
            let text = score.isFinite ? JSONValue(score).text : (score > 0 ? "+inf" : "-inf")
            let items = try connection.command("ZRANGEBYSCORE", set, text, text, "WITHSCORES", "LIMIT", 0, 100).check().array ?? []
            if let hit = Self.entries(items, set: tag).first(where: { $0.jid == jid }) { return hit }
        }
        // Without a score: read the set from the newest end and look for the jid's bytes before parsing anything,
        // so only a candidate is decoded (cheaper here than Redis matching a glob against every member).
        let needle = Array(jid.utf8)
        guard !needle.isEmpty else { return nil }
        // Members only (half the replies to parse); a hit's score is asked for afterwards.
        var start = 0
        let chunk = 5000
        while true {
            let items = try connection.command("ZREVRANGE", set, start, start + chunk - 1).check().array ?? []
            for item in items {
                guard let member = item.bytes, Self.contains(member, needle) else { continue }
                let candidate = JobSetEntry(member: member, score: 0, set: tag)
                guard candidate.jid == jid else { continue }
                guard let score = try connection.command("ZSCORE", set, member).check().text.flatMap(Double.init) else { continue }
                return JobSetEntry(member: member, score: score, set: tag)
            }
            if items.count < chunk { return nil }
            start += chunk
        }
    }

    /// `memchr` (vectorised) to each candidate first byte, `memcmp` for the rest: a lookup searches every member
    /// of a large set.
    private static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count, let first = needle.first else { return false }
        return haystack.withUnsafeBytes { h in
            needle.withUnsafeBytes { n in
                guard let base = h.baseAddress, let pattern = n.baseAddress else { return false }
                var offset = 0
                let last = h.count - n.count
                while offset <= last {
                    guard let hit = memchr(base + offset, Int32(first), last - offset + 1) else { return false }
                    let at = base.distance(to: UnsafeRawPointer(hit))
                    if memcmp(base + at, pattern, n.count) == 0 { return true }
                    offset = at + 1
                }
                return false
            }
        }
    }

    /// Entries in the set now (`ZCARD`).
    public func count() throws -> Int {
        try sets().reduce(0) { total, set in try total + (connection.command("ZCARD", set).check().int ?? 0) }
    }

    /// One page of entries, newest first, without reading the whole set. `offset` is a position in the set
    /// (0: newest). With no criterion: one `ZREVRANGE offset offset+count`. With criteria: chunks of 1,000 from
    /// `offset` on, until `count` entries matched, `scanBudget` (5,000) entries were looked at or the error pattern spent
    /// `matchBudget` steps, so a filter that matches little costs a bounded read and bounded work per page; `next` says
    /// where the following page starts.
    public func page(_ filter: JobFilter, offset: Int, count: Int, scanBudget: Int = 5000, matchBudget: Int = 5_000_000) throws -> JobSetPage {
        let sets = try sets()
        guard sets.count == 1, let key = sets.first else {
            // A cluster: each queue's set on its own shard. The page comes from the merged, newest-first listing
            // (read up to the page's end), not from one ZREVRANGE.
            var upTo = filter
            upTo.limit = offset + count + 1
            let merged = try list(upTo)
            let entries = Array(merged.dropFirst(offset).prefix(count))
            let total = try self.count()
            return JobSetPage(entries: entries, total: total, offset: offset, next: merged.count > offset + count ? offset + count : nil, scanned: nil)
        }
        let total = try self.count()
        if filter.isEmpty {
            let reply = try connection.command("ZREVRANGE", key, offset, offset + count, "WITHSCORES").check()
            let entries = Self.entries(reply.array ?? [])
            let more = entries.count > count
            return JobSetPage(entries: Array(entries.prefix(count)), total: total, offset: offset, next: more ? offset + count : nil, scanned: nil)
        }
        let compiled = try filter.compiled()
        var found: [JobSetEntry] = []
        var position = offset
        let chunk = 1000
        scan: while position - offset < scanBudget {
            let items = try connection.command("ZREVRANGE", key, position, position + chunk - 1, "WITHSCORES").check().array ?? []
            if items.isEmpty { break }
            for entry in Self.entries(items) {
                position += 1
                if compiled.matches(entry) {
                    found.append(entry)
                    if found.count == count { break scan }
                }
                if compiled.steps > matchBudget { break scan }
            }
            if items.count < chunk * 2 { break }
        }
        let next = position < total ? position : nil
        return JobSetPage(entries: found, total: total, offset: offset, next: next, scanned: position - offset)
    }

    private static func entries(_ items: [RedisReply], set: String? = nil) -> [JobSetEntry] {
        var out: [JobSetEntry] = []
        out.reserveCapacity(items.count / 2)
        var i = 0
        while i + 1 < items.count {
            out.append(JobSetEntry(member: items[i].bytes ?? [], score: Double(items[i + 1].text ?? "") ?? 0, set: set))
            i += 2
        }
        return out
    }

    /// What a bulk `move` does to each matching entry.
    public enum MoveAction: Sendable, Equatable {
        case replay(resetAttempts: Bool)
        case delete

        public var verb: String {
            switch self {
            case .replay: "replay"
            case .delete: "delete"
            }
        }
    }

    /// Replays or deletes every entry matching `filter`, one atomic step per job, at most `perSecond` jobs a second
    /// (paced against the start, so the average holds when Redis is slow). `conveyor dead|retry replay|delete` and
    /// the dashboard's bulk actions both run this.
    /// - Parameter progress: called after each entry with (done so far, matched); return false to stop early.
    public func move(
        _ filter: JobFilter, _ action: MoveAction, perSecond: Double? = nil, dryRun: Bool = false,
        progress: (Int, Int) -> Bool = { _, _ in true }
    ) throws -> JobSetMoveReport {
        let entries = try list(filter)
        var report = JobSetMoveReport(action: action, matched: entries.count, dryRun: dryRun)
        if dryRun {
            report.jids = entries.map { $0.jid ?? "" }
            return report
        }
        let started = Date()
        for (i, entry) in entries.enumerated() {
            if let perSecond {
                let wait = started.addingTimeInterval(Double(i) / perSecond).timeIntervalSinceNow
                if wait > 0 { usleep(useconds_t(wait * 1_000_000)) }
            }
            switch action {
            case .replay(let resetAttempts):
                if entry.jobClass == nil {
                    report.unreplayable += 1
                } else if try replay(entry, resetAttempts: resetAttempts) {
                    report.jids.append(entry.jid ?? "")
                } else {
                    report.skipped += 1
                }
            case .delete:
                if try delete(entry) { report.jids.append(entry.jid ?? "") } else { report.skipped += 1 }
            }
            if !progress(i + 1, entries.count) {
                report.stopped = true
                break
            }
        }
        return report
    }
}

/// One page of a set, as the dashboard shows it.
public struct JobSetPage: Sendable {
    public var entries: [JobSetEntry]
    /// Entries in the whole set.
    public var total: Int
    /// Where this page started in the set (0: newest).
    public var offset: Int
    /// Where the next page starts, nil at the end of the set.
    public var next: Int?
    /// For a filtered page: how many entries were looked at. Nil for an unfiltered page.
    public var scanned: Int?
}

/// What a bulk move did.
public struct JobSetMoveReport: Sendable {
    public var action: JobSet.MoveAction
    public var matched: Int
    public var dryRun: Bool
    /// Jobs moved (or, in a dry run, that would be).
    public var jids: [String] = []
    /// Entries already gone when their turn came (a worker or another command took them).
    public var skipped = 0
    /// Members that are not jobs: they cannot be replayed, only deleted.
    public var unreplayable = 0
    /// True when `progress` asked to stop before the end.
    public var stopped = false

    public var done: Int { dryRun ? 0 : jids.count }
}
