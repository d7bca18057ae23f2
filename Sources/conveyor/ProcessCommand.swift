import ArgumentParser
import Operations

/// `conveyor process quiet|stop`: Sidekiq's signals to worker processes, what the dashboard's Busy buttons send.
struct ProcessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "process",
        abstract: "Quiet or stop worker processes (the dashboard's Busy buttons); `conveyor stats` lists their identities.",
        discussion: """
            quiet: the process stops fetching and finishes what it runs (before a deploy). stop: it shuts down \
            gracefully, as on SIGTERM. A process acts on its next heartbeat. Exit codes: 0 sent, 1 failed, \
            3 Redis unreachable, 4 no such live process, 64 bad usage.
            """,
        subcommands: [Quiet.self, Stop.self])

    struct Targets: ParsableArguments {
        @OptionGroup var redis: RedisOptions
        @Argument(help: "Process identities, as `conveyor stats` shows them.") var identities: [String] = []
        @Flag(help: "Every live process.") var all = false

        func validate() throws {
            if identities.isEmpty == !all { throw ValidationError("name the processes or pass --all, not both") }
        }

        func send(_ signal: ProcessSignals.Signal, _ verb: String) {
            let connection = redis.connect()
            let signals = ProcessSignals(keys: redis.keys, connection: connection)
            let targets = all ? SetCommands.run { try signals.live() } : identities
            var missing: [String] = []
            for identity in targets {
                if SetCommands.run({ try signals.send(signal, to: identity) }) {
                    CLIAudit.record("\(verb) process \(identity)", keys: redis.keys, connection: connection)
                    print("sent \(verb) to \(identity)")
                } else {
                    missing.append(identity)
                }
            }
            if all && targets.isEmpty { print("no live worker process") }
            if !missing.isEmpty { OperatorExit.fail("not a live process: \(missing.joined(separator: ", "))", code: .notFound) }
        }
    }

    struct Quiet: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop processes fetching; their running jobs finish.")
        @OptionGroup var targets: Targets
        func run() { targets.send(.quiet, "quiet") }
    }

    struct Stop: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Shut processes down gracefully (unfinished jobs go back).")
        @OptionGroup var targets: Targets
        func run() { targets.send(.stop, "stop") }
    }
}
