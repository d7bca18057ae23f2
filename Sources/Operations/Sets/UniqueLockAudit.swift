public import ConveyorCore
import Foundation
public import Redis
public import SidekiqQueue

/// Unique keys whose holder is gone: a lock (`{conveyor:unique}:<sha1>` holding a jid) whose jid is in no queue, no
/// process's in-flight list, and neither the schedule nor the retry set. Such a key refuses its duplicates for nothing
/// until `unique_for` runs out; after any crash or chaos `conveyor stats` should report none.
public struct UniqueLockAudit: Sendable, Equatable {
    /// Locks looked at.
    public var held: Int
    /// Lock keys whose holder is nowhere, with the holder's jid.
    public var stale: [String: String]
    /// False when a bound stopped the look (more locks or jobs than `maximumLocks` / `maximumMembers`): `stale` is
    /// then what was found among those looked at.
    public var complete: Bool

    /// Most locks read.
    public static let maximumLocks = 10_000
    /// Most queued, in-flight, scheduled and retrying jobs read.
    public static let maximumMembers = 1_000_000

    public static func read(_ connection: RedisConnection, keys: QueueKeys) throws -> UniqueLockAudit {
        guard let prefix = RedisUniqueLocks.lockPrefix(keys) else { return UniqueLockAudit(held: 0, stale: [:], complete: true) }
        var complete = true
        // The locks: SCAN by pattern (the prefix's glob characters escaped), bounded.
        let pattern = Self.globEscaped(prefix) + "*"
        var lockKeys: [String] = []
        var cursor = "0"
        repeat {
            let reply = try connection.command("SCAN", cursor, "MATCH", pattern, "COUNT", 1000).check().array ?? []
            guard reply.count == 2, let next = reply[0].text else { break }
            cursor = next
            lockKeys += (reply[1].array ?? []).compactMap(\.text)
            if lockKeys.count >= maximumLocks {
                complete = cursor == "0" && lockKeys.count == maximumLocks
                lockKeys = Array(lockKeys.prefix(maximumLocks))
                break
            }
        } while cursor != "0"
        guard !lockKeys.isEmpty else { return UniqueLockAudit(held: 0, stale: [:], complete: complete) }
        var holders: [String: String] = [:]
        for chunk in stride(from: 0, to: lockKeys.count, by: 500) {
            let part = Array(lockKeys[chunk..<min(lockKeys.count, chunk + 500)])
            let values = try connection.command(RedisCommand(["MGET"] + part.map { $0 as any RedisArgument })).check().array ?? []
            for (key, value) in zip(part, values) { if let jid = value.text { holders[key] = jid } }
        }
        // Every jid that is somewhere: queues, in-flight lists, schedule and retry (members read in chunks, bounded).
        var present = Set<String>()
        var budget = maximumMembers
        func collect(_ members: [RedisReply]) {
            for member in members { if let bytes = member.bytes, let jid = Self.jid(in: bytes) { present.insert(jid) } }
        }
        /// Reads a list (`LRANGE`) or sorted set (`ZRANGE`) in chunks of 5,000 while the budget lasts.
        func read(_ key: String, with command: String) throws {
            var start = 0
            while budget > 0 {
                let count = min(5000, budget)
                let items = try connection.command(command, key, start, start + count - 1).check().array ?? []
                collect(items)
                budget -= items.count
                if items.count < count { return }
                start += count
            }
            complete = false
        }
        for queue in (try connection.command("SMEMBERS", keys.queues).check().array ?? []).compactMap(\.text) { try read(keys.queue(queue), with: "LRANGE") }
        for identity in (try connection.command("SMEMBERS", keys.conveyorProcesses).check().array ?? []).compactMap(\.text) {
            try read(keys.inflight(identity), with: "LRANGE")
        }
        try read(keys.schedule, with: "ZRANGE")
        try read(keys.retry, with: "ZRANGE")
        let stale = holders.filter { !present.contains($0.value) }
        return UniqueLockAudit(held: holders.count, stale: stale, complete: complete)
    }

    /// The `jid` string of a job's JSON, read without parsing the rest: the first `"jid"`, a colon and a string
    /// (spaces allowed around the colon, as `json.dumps` writes it); nil when it is not a plain string.
    static func jid(in bytes: [UInt8]) -> String? {
        let needle = Array(#""jid""#.utf8)
        let space: Set<UInt8> = [0x20, 0x09, 0x0a, 0x0d]
        var i = 0
        while i + needle.count <= bytes.count {
            if bytes[i] == needle[0] && bytes[i..<(i + needle.count)].elementsEqual(needle) {
                var k = i + needle.count
                while k < bytes.count && space.contains(bytes[k]) { k += 1 }
                guard k < bytes.count, bytes[k] == UInt8(ascii: ":") else { i += 1; continue }
                k += 1
                while k < bytes.count && space.contains(bytes[k]) { k += 1 }
                guard k < bytes.count, bytes[k] == UInt8(ascii: "\"") else { return nil }
                let start = k + 1
                var end = start
                while end < bytes.count && bytes[end] != UInt8(ascii: "\"") && bytes[end] != UInt8(ascii: "\\") { end += 1 }
                guard end < bytes.count, bytes[end] == UInt8(ascii: "\""), end > start else { return nil }
                return String(decoding: bytes[start..<end], as: UTF8.self)
            }
            i += 1
        }
        return nil
    }

    /// `text` with Redis glob characters (`*?[]\`) escaped.
    static func globEscaped(_ text: String) -> String {
        var out = ""
        for c in text {
            if "*?[]\\".contains(c) { out.append("\\") }
            out.append(c)
        }
        return out
    }
}
