import ArgumentParser
import ConveyorCore
import Operations

/// `conveyor queue pause|resume|paused`: stop and restart fetching from a queue on every worker.
struct QueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Pause or resume a queue on every worker (jobs keep arriving and wait while it is paused).",
        discussion: "Workers stop fetching from a paused queue within a second. Exit codes: 0 done, 1 failed, 3 Redis unreachable, 64 bad usage.",
        subcommands: [Pause.self, Resume.self, Paused.self])

    struct Pause: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop every worker fetching from a queue.")
        @OptionGroup var redis: RedisOptions
        @Argument(help: "The queue name.") var name: String
        func run() {
            let changed = SetCommands.run { try QueuePauses(keys: redis.keys, connection: redis.connect()).pause(name) }
            print(changed ? "paused \(name)" : "\(name) was already paused")
        }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let workers fetch from a paused queue again.")
        @OptionGroup var redis: RedisOptions
        @Argument(help: "The queue name.") var name: String
        func run() {
            let changed = SetCommands.run { try QueuePauses(keys: redis.keys, connection: redis.connect()).resume(name) }
            print(changed ? "resumed \(name)" : "\(name) was not paused")
        }
    }

    struct Paused: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the paused queues.")
        @OptionGroup var redis: RedisOptions
        @Flag(help: "Print JSON.") var json = false
        func run() {
            let names = SetCommands.run { try QueuePauses(keys: redis.keys, connection: redis.connect()).paused() }.sorted()
            if json {
                print(JSONValue.array(names.map { .string($0) }).text)
            } else {
                print(names.isEmpty ? "no queue is paused" : names.joined(separator: "\n"))
            }
        }
    }
}
