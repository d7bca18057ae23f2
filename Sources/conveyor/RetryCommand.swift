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
        @Flag(help: "Show what would be replayed; change nothing.") var dryRun = false
        @Option(help: "At most this many jobs per second (N/s, N/m, N/h).") var rate: String?
        @Flag(help: "Drop retry_count so the job gets its full retry budget again.") var resetAttempts = false
        @Flag(help: "Print JSON.") var json = false
        func run() {
            SetCommands.move(.retry, redis, filter, delete: false, dryRun: dryRun, rate: rate, resetAttempts: resetAttempts, json: json)
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete matching jobs from the retry set (they will not run again).")
        @OptionGroup var redis: RedisOptions
        @OptionGroup var filter: SetFilterOptions
        @Flag(help: "Show what would be deleted; change nothing.") var dryRun = false
        @Option(help: "At most this many jobs per second (N/s, N/m, N/h).") var rate: String?
        @Flag(help: "Allow deleting without any filter.") var all = false
        @Flag(help: "Print JSON.") var json = false
        func validate() throws {
            if filter.isEmpty && !all {
                throw ValidationError("no filter given: pass --all to delete every job in the retry set")
            }
        }
        func run() { SetCommands.move(.retry, redis, filter, delete: true, dryRun: dryRun, rate: rate, resetAttempts: false, json: json) }
    }
}
