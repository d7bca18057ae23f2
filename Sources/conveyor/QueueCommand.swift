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

    /// A queue to pause or resume, on the Redis of the options.
    struct Target: ParsableArguments {
        @OptionGroup var redis: RedisOptions
        @Argument(help: "The queue name.") var name: String

        func set(paused: Bool) {
            let pauses = QueuePauses(keys: redis.keys, connection: redis.connect())
            let changed = SetCommands.run { paused ? try pauses.pause(name) : try pauses.resume(name) }
            switch (paused, changed) {
            case (true, true): print("paused \(name)")
            case (true, false): print("\(name) was already paused")
            case (false, true): print("resumed \(name)")
            case (false, false): print("\(name) was not paused")
            }
        }
    }

    struct Pause: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop every worker fetching from a queue.")
        @OptionGroup var target: Target
        func run() { target.set(paused: true) }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let workers fetch from a paused queue again.")
        @OptionGroup var target: Target
        func run() { target.set(paused: false) }
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
