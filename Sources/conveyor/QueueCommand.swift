import ArgumentParser
import ConveyorCore
import Foundation
import Operations

/// `conveyor queue pause|resume|paused`: stop and restart fetching from a queue on every worker.
struct QueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Pause or resume a queue on every worker (jobs keep arriving and wait while it is paused).",
        discussion: """
            Workers stop fetching from a paused queue at once (on a Redis Cluster, within a second). clear deletes a \
            queue's ready jobs (they get no outcome rows). Exit codes: 0 done, 1 failed, 3 Redis unreachable, 64 bad usage.
            """,
        subcommands: [Pause.self, Resume.self, Paused.self, Clear.self])

    /// A queue to pause or resume, on the Redis of the options.
    struct Target: ParsableArguments {
        @OptionGroup var redis: RedisOptions
        @Argument(help: "The queue name.") var name: String

        func set(paused: Bool) {
            let connection = redis.connect()
            let pauses = QueuePauses(keys: redis.keys, connection: connection)
            let changed = SetCommands.run { paused ? try pauses.pause(name) : try pauses.resume(name) }
            QueueCommand.warnIfUnknown(name, pauses)
            if changed { CLIAudit.record("\(paused ? "pause" : "resume") queue \(name)", keys: redis.keys, connection: connection) }
            switch (paused, changed) {
            case (true, true): print("paused \(name)")
            case (true, false): print("\(name) was already paused")
            case (false, true): print("resumed \(name)")
            case (false, false): print("\(name) was not paused")
            }
        }
    }

    /// A queue no producer pushed to and no live worker serves is likely a typo: said on stderr, with the nearest
    /// known name. The command still does what it was asked (a queue can be paused before it is first used).
    static func warnIfUnknown(_ name: String, _ pauses: QueuePauses) {
        guard let known = try? pauses.known(), !known.contains(name) else { return }
        var line = "conveyor: warning: no job was ever pushed to queue \(name) and no live worker serves it"
        if let near = SettingsReader.nearest(name, among: known.sorted()) { line += " (did you mean \(near)?)" }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    struct Clear: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete every ready job of a queue (asks for --yes).")
        @OptionGroup var redis: RedisOptions
        @Argument(help: "The queue name.") var name: String
        @Flag(help: "Really delete them.") var yes = false

        func run() {
            let connection = redis.connect()
            let contents = QueueContents(name, keys: redis.keys, connection: connection)
            guard yes else {
                let depth = SetCommands.run { try connection.command("LLEN", redis.keys.queue(name)).check().int ?? 0 }
                OperatorExit.fail("queue \(name) holds \(depth) job\(depth == 1 ? "" : "s"); pass --yes to delete them", code: .usage)
            }
            let deleted = SetCommands.run { try contents.clear() }
            CLIAudit.record("clear queue \(name) (\(deleted) job\(deleted == 1 ? "" : "s"))", keys: redis.keys, connection: connection)
            print("deleted \(deleted) job\(deleted == 1 ? "" : "s") from \(name)")
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
