import ArgumentParser
import Operations

struct RetryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry",
        abstract: "Inspect, run now, or delete jobs waiting in the retry set.",
        discussion: "Exit codes: 0 done, 1 failed, 3 Redis unreachable, 4 --jid matched nothing, 64 bad usage.",
        subcommands: [List.self, Replay.self, Delete.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List jobs waiting to be retried, latest next-run first.")
        @OptionGroup var redis: RedisOptions
        @OptionGroup var filter: SetFilterOptions
        @Flag(help: "Print JSON.") var json = false
        func run() { SetCommands.list(.retry, redis, filter, json: json) }
    }

    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Push matching jobs to their queues now instead of at their retry time.")
        @OptionGroup var redis: RedisOptions
        @OptionGroup var filter: SetFilterOptions
        @OptionGroup var options: MoveOptions
        @Flag(help: "Drop retry_count so the job gets its full retry budget again.") var resetAttempts = false
        func run() { SetCommands.move(.retry, redis, filter, options, delete: false, resetAttempts: resetAttempts) }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete matching jobs from the retry set (they will not run again).")
        @OptionGroup var redis: RedisOptions
        @OptionGroup var filter: SetFilterOptions
        @OptionGroup var options: MoveOptions
        @Flag(help: "Allow deleting without any filter.") var all = false
        func validate() throws { try filter.requireFilter(orAll: all, "the retry set") }
        func run() { SetCommands.move(.retry, redis, filter, options, delete: true, resetAttempts: false) }
    }
}
