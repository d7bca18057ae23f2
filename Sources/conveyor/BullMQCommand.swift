import ArgumentParser
import BullMQQueue
import ConveyorCore
import Foundation

/// `conveyor bullmq stats`: the BullMQ queues' jobs by state, beside what `conveyor stats` shows of the Sidekiq ones.
struct BullMQCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bullmq",
        abstract: "The BullMQ queues this deployment serves: their jobs by state.",
        discussion: "Exit codes: 0 done, 1 failed, 3 Redis unreachable, 64 bad usage.",
        subcommands: [Stats.self])

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Jobs of each BullMQ queue by state (waiting, prioritized, delayed and due, active, paused, completed, failed, stalled).",
            discussion: """
                The queues named, or those of CONVEYOR_BULLMQ_QUEUES; the key prefix is CONVEYOR_BULLMQ_PREFIX (default \
                bull). "ready" is what the depth gauge for autoscaling counts: waiting + prioritized + due delayed + paused. \
                "stalled" is the stalled check's candidate list: active jobs whose lock was not renewed since its last run.
                """)

        @OptionGroup var redis: RedisOptions
        @Argument(help: "BullMQ queue names (default: CONVEYOR_BULLMQ_QUEUES).") var queues: [String] = []
        @Flag(help: "One JSON object per queue name.") var json = false

        func run() throws {
            let settings = SetCommands.run { try redis.settings() }
            let names = queues.isEmpty ? settings.list(BullMQSettings.queues) : queues
            guard !names.isEmpty else { throw ValidationError("name the BullMQ queues, or set CONVEYOR_BULLMQ_QUEUES") }
            let prefix = settings.text(BullMQSettings.prefix) ?? "bull"
            var keys: [String: BullMQKeys] = [:]
            for name in names {
                do { try BullMQOptions.validate(name: name, as: "queue name") } catch { throw ValidationError(error.message) }
                keys[name] = BullMQKeys(prefix: prefix, queue: name)
            }
            let counts = SetCommands.run { try BullMQDepth.counts(of: keys, on: redis.connect()) }
            let sorted = counts.sorted { $0.key < $1.key }
            if json {
                var out = JSONObject()
                for (name, c) in sorted {
                    out[name] = .object([
                        "waiting": JSONValue(c.waiting), "prioritized": JSONValue(c.prioritized), "delayed": JSONValue(c.delayed),
                        "delayed_due": JSONValue(c.delayedDue), "active": JSONValue(c.active), "paused": JSONValue(c.paused),
                        "completed": JSONValue(c.completed), "failed": JSONValue(c.failed), "stalled": JSONValue(c.stalled), "ready": JSONValue(c.depth),
                    ])
                }
                print(JSONValue.object(out).text)
                return
            }
            let columns = ["QUEUE", "READY", "WAITING", "PRIORITIZED", "DELAYED", "DUE", "ACTIVE", "PAUSED", "COMPLETED", "FAILED", "STALLED"]
            let width = max(12, (sorted.map(\.key.count).max() ?? 0) + 2)
            print(SetCommands.pad(columns[0], width) + columns.dropFirst().map { SetCommands.pad($0, 12) }.joined())
            for (name, c) in sorted {
                let values = [c.depth, c.waiting, c.prioritized, c.delayed, c.delayedDue, c.active, c.paused, c.completed, c.failed, c.stalled]
                print(SetCommands.pad(name, width) + values.map { SetCommands.pad(String($0), 12) }.joined())
            }
        }
    }
}
