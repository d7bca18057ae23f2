import ArgumentParser
import ConveyorCore
import Foundation
import Operations

/// `conveyor cancel JID…`: stops jobs wherever they are (queued, scheduled, retrying or running on any process).
struct CancelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel jobs by jid: a waiting one never starts, a running one stops within a second.",
        discussion: """
            Each job ends with one outcome row, status cancelled (error class JobCancelled), and is not retried. \
            The flag is Sidekiq 7.3's (it-<jid> with cancelled), so Sidekiq::Client#cancel! cancels Conveyor's running \
            jobs too. A dead job is left alone. Exit codes: 0 every job cancelled, 1 failed, 3 Redis unreachable, \
            4 a jid was not found (flagged anyway: it never starts if it shows up), 64 bad usage.
            """)

    @OptionGroup var redis: RedisOptions
    @Argument(help: "Job ids.") var jids: [String]
    @Flag(help: "Print one JSON object per job.") var json = false

    func validate() throws {
        if jids.isEmpty { throw ValidationError("name at least one jid") }
        if jids.count > 10_000 { throw ValidationError("at most 10000 jids at once") }
        for jid in jids where !JobCancellation.isPlausibleJID(jid) {
            throw ValidationError("\(jid.prefix(80)): not a jid (1-128 letters, digits, - or _)")
        }
    }

    func run() {
        let connection = redis.connect()
        let cancellation = JobCancellation(keys: redis.keys, connection: connection)
        let who = "\(ActionLog.cliUser) via conveyor cancel"
        var missing: [String] = []
        var dead: [String] = []
        for jid in jids {
            let place = SetCommands.run { try cancellation.cancel(jid, by: who) }
            if json {
                var o = JSONObject()
                o["jid"] = .string(jid)
                o["was"] = .string(place.word)
                if case .queued(let queue) = place { o["queue"] = .string(queue) }
                if case .taken(let identity) = place { o["process"] = .string(identity) }
                o["cancelled"] = .bool(place != .dead && place != .unknown)
                print(JSONValue.object(o).text)
            } else {
                switch place {
                case .taken: print("\(jid): cancelling (\(place)); it stops within a second, or never starts")
                case .dead: print("\(jid): dead already; left as it is")
                case .unknown: print("\(jid): not found; flagged, so it never starts if it shows up")
                default: print("\(jid): cancelled (was \(place))")
                }
            }
            CLIAudit.record("cancel job \(jid) (\(place))", keys: redis.keys, connection: connection)
            if place == .unknown { missing.append(jid) }
            if place == .dead { dead.append(jid) }
        }
        if !missing.isEmpty { OperatorExit.fail("no such job: \(missing.prefix(20).joined(separator: ", "))", code: .notFound) }
        if !dead.isEmpty { OperatorExit.fail("dead already: \(dead.prefix(20).joined(separator: ", "))", code: .notFound) }
    }
}
