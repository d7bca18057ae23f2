import ArgumentParser
import Operations

/// `conveyor scheduled list|replay|delete`: the jobs pushed to run later (`perform_in`, `enqueue --in`), as `retry`
/// handles the retry set. `--since`/`--until` match when a job is due.
struct ScheduledCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduled",
        abstract: "Inspect, run now, or delete jobs scheduled to run later.",
        discussion: "--since and --until match when a job is due. Exit codes: 0 done, 1 failed, 3 Redis unreachable, 4 --jid matched nothing, 64 bad usage.",
        subcommands: [List.self, Replay.self, Delete.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List scheduled jobs, latest due first.")
        @OptionGroup var redis: RedisOptions
        @OptionGroup var filter: SetFilterOptions
        @Flag(help: "Print JSON.") var json = false
        func run() { SetCommands.list(.scheduled, redis, filter, json: json) }
    }

    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Push matching jobs to their queues now instead of when they are due.")
        @OptionGroup var redis: RedisOptions
        @OptionGroup var filter: SetFilterOptions
        @OptionGroup var options: MoveOptions
        func run() { SetCommands.move(.scheduled, redis, filter, options, delete: false, resetAttempts: false) }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete matching scheduled jobs (they will not run).")
        @OptionGroup var redis: RedisOptions
        @OptionGroup var filter: SetFilterOptions
        @OptionGroup var options: MoveOptions
        @Flag(help: "Allow deleting without any filter.") var all = false
        func validate() throws { try filter.requireFilter(orAll: all, "the scheduled set") }
        func run() { SetCommands.move(.scheduled, redis, filter, options, delete: true, resetAttempts: false) }
    }
}
