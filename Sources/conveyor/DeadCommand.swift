import ArgumentParser
import ConveyorCore
import Foundation
import Operations
import Redis
import SidekiqQueue

struct DeadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead",
        abstract: "Inspect, replay or delete jobs in the dead set.",
        discussion: "Exit codes: 0 done, 1 failed, 3 Redis unreachable, 4 no such job (show, or --jid matched nothing), 64 bad usage.",
        subcommands: [List.self, Show.self, Replay.self, Delete.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead jobs, newest first.")
        @OptionGroup var redis: RedisOptions
        @OptionGroup var filter: SetFilterOptions
        @Flag(help: "Print JSON.") var json = false
        func run() { SetCommands.list(.dead, redis, filter, json: json) }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a dead job's full JSON.")
        @OptionGroup var redis: RedisOptions
        @Argument(help: "The job id.") var jid: String
        func run() { SetCommands.show(.dead, redis, jid: jid) }
    }

    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Push matching dead jobs back to their queues (each exactly once, even with concurrent replays).")
        @OptionGroup var redis: RedisOptions
        @OptionGroup var filter: SetFilterOptions
        @OptionGroup var options: MoveOptions
        @Flag(help: "Drop retry_count so the job gets its full retry budget again.") var resetAttempts = false
        func run() { SetCommands.move(.dead, redis, filter, options, delete: false, resetAttempts: resetAttempts) }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete matching dead jobs.")
        @OptionGroup var redis: RedisOptions
        @OptionGroup var filter: SetFilterOptions
        @OptionGroup var options: MoveOptions
        @Flag(help: "Allow deleting without any filter.") var all = false
        func validate() throws { try filter.requireFilter(orAll: all, "the dead set") }
        func run() { SetCommands.move(.dead, redis, filter, options, delete: true, resetAttempts: false) }
    }
}
