import ArgumentParser
import ConveyorCore
import Foundation
import Operations
import SidekiqQueue

/// `conveyor stats`: what Redis holds now.
struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Queue depths and latencies, scheduled/retry/dead counts, totals, live worker processes and stale unique locks.",
        discussion: "Exit codes: 0 printed, 1 failed, 3 Redis unreachable.")

    @OptionGroup var redis: RedisOptions
    @Flag(help: "Print JSON.") var json = false

    func run() {
        let keys = redis.keys
        let connection = redis.connect()
        let s = SetCommands.run { try QueueSnapshot.read(connection, keys: keys) }
        let locks = SetCommands.run { try UniqueLockAudit.read(connection, keys: keys) }
        let limits = SetCommands.run { try FlowLimitReport.read(connection, keys: keys) }
        if json {
            var o = Self.json(s).objectValue ?? JSONObject()
            o["unique_locks"] = .object(JSONObject([
                ("held", JSONValue(locks.held)), ("stale", JSONValue(locks.stale.count)),
                ("stale_jids", .array(locks.stale.values.sorted().prefix(100).map { .string($0) })), ("complete", .bool(locks.complete)),
            ]))
            o["limits"] = .array(limits.entries.map { e in
                .object(JSONObject([
                    ("name", .string(e.name)), ("running", JSONValue(e.stat.running)), ("waiting", JSONValue(e.stat.waiting)),
                    ("keys_waiting", JSONValue(e.stat.keysWaiting)), ("definition", e.definition),
                ]))
            })
            print(JSONValue.object(o).text)
            return
        }
        print("QUEUE".padding(toLength: 24, withPad: " ", startingAt: 0) + "DEPTH".padding(toLength: 10, withPad: " ", startingAt: 0) + "LATENCY")
        for q in s.queues {
            print(q.name.padding(toLength: 24, withPad: " ", startingAt: 0) + String(q.depth).padding(toLength: 10, withPad: " ", startingAt: 0)
                + String(format: "%.1fs", q.latency) + (q.paused ? "  paused" : ""))
        }
        if s.queues.isEmpty { print("(no queues)") }
        print("")
        print("scheduled \(s.scheduled)  retry \(s.retries)  dead \(s.dead)  processed \(s.processed)  failed \(s.failed)")
        var lockLine = "unique locks \(locks.held)  stale \(locks.stale.count)"
        if !locks.stale.isEmpty { lockLine += " (held by \(locks.stale.values.sorted().prefix(5).joined(separator: ", ")), in no queue, in-flight list or set)" }
        if !locks.complete { lockLine += "  (not all looked at)" }
        print(lockLine)
        for e in limits.entries {
            print("limit \(e.name)  running \(e.stat.running)  waiting \(e.stat.waiting)  keys waiting \(e.stat.keysWaiting)  \(Self.describe(e.definition))")
        }
        print("")
        print("\(s.processes.count) live worker processes, \(s.busy) busy")
        for p in s.processes {
            let beat = p.beat.map { String(format: "%.0fs ago", max(0, s.readAt - $0)) } ?? "?"
            print("  \(p.identity)  busy \(p.busy)/\(p.concurrency.map(String.init) ?? "?")  beat \(beat)\(p.quiet ? "  quiet" : "")")
        }
    }

    /// `classes sleep,noop  key args.tenant  concurrency 2  rate 30/60s`, from a limit's stored definition.
    static func describe(_ d: JSONValue) -> String {
        var parts: [String] = []
        if case .array(let classes)? = d["classes"] { parts.append("classes " + classes.compactMap(\.stringValue).joined(separator: ",")) }
        if let key = d["key"]?.stringValue { parts.append("key " + key) }
        if let n = d["concurrency"]?.intValue { parts.append("concurrency \(n)") }
        if let rate = d["rate"]?.stringValue { parts.append("rate " + rate) }
        return String(parts.joined(separator: "  ").unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? " " : Character($0) }.prefix(300))
    }

    static func json(_ s: QueueSnapshot) -> JSONValue {
        var o = JSONObject()
        o["queues"] = .array(s.queues.map { q in
            .object(JSONObject([("name", .string(q.name)), ("depth", JSONValue(q.depth)), ("latency", JSONValue((q.latency * 1000).rounded() / 1000)), ("paused", .bool(q.paused))]))
        })
        o["scheduled"] = JSONValue(s.scheduled)
        o["retry"] = JSONValue(s.retries)
        o["dead"] = JSONValue(s.dead)
        o["processed"] = JSONValue(s.processed)
        o["failed"] = JSONValue(s.failed)
        o["busy"] = JSONValue(s.busy)
        o["processes"] = .array(s.processes.map { p in
            .object(JSONObject([
                ("identity", .string(p.identity)), ("hostname", p.hostname.map { .string($0) } ?? .null),
                ("pid", p.pid.map { JSONValue($0) } ?? .null), ("busy", JSONValue(p.busy)),
                ("concurrency", p.concurrency.map { JSONValue($0) } ?? .null), ("quiet", .bool(p.quiet)),
                ("beat", p.beat.map { JSONValue($0) } ?? .null),
                ("queues", .array(p.queues.map { .string($0) })),
            ]))
        })
        return .object(o)
    }
}
