import ConveyorCore
import Foundation
import Redis
import SidekiqQueue
import Testing

/// `conveyor scheduled` as `retry` does it, and one exit code for an unknown `--jid` on every set command.
@Suite(.enabled(if: TestEnv.redisURL != nil && TestEnv.binary != nil, "needs REDIS_URL and CONVEYOR_BIN"))
struct ScheduledCommandTests {
    @Test func listReplayAndDeleteScheduledJobs() throws {
        let namespace = TestEnv.unique("scheduled")
        let keys = QueueKeys(namespace: namespace)
        let redis = try TestEnv.redis()
        let now = Date().timeIntervalSince1970
        for (jid, due, klass) in [("soon0000000000000000000a", now + 60, "noop"), ("later000000000000000000b", now + 86_400, "email.send")] {
            let job = "{\"class\":\"\(klass)\",\"queue\":\"low\",\"jid\":\"\(jid)\",\"args\":[{\"n\":1}],\"created_at\":\(now)}"
            _ = try redis.command("ZADD", keys.schedule, due, job).check()
        }
        let list = try TestEnv.conveyor(["scheduled", "list", "--namespace", namespace])
        #expect(list.code == 0, "\(list.err)")
        #expect(list.out.contains("DUE") && list.out.contains("ARGUMENTS") && list.out.contains("{\"n\":1}"), "\(list.out)")
        // --until matches when a job is due: only the one due within two hours.
        let json = try JSONValue(parsing: try TestEnv.conveyor(["scheduled", "list", "--json", "--until", String(Int(now + 7200)), "--namespace", namespace]).out)
        #expect(json["count"]?.intValue == 1 && json["jobs"]?[0]?["jid"]?.stringValue == "soon0000000000000000000a", "\(json.text)")
        let soon = try TestEnv.conveyor(["scheduled", "replay", "--class", "noop", "--namespace", namespace])
        #expect(soon.code == 0, "\(soon.err)")
        #expect(soon.out.contains("replayed 1 of 1 matching job from scheduled"), "singular: \(soon.out)")
        #expect(try redis.command("LLEN", keys.queue("low")).check().int == 1)
        let refused = try TestEnv.conveyor(["scheduled", "delete", "--namespace", namespace])
        #expect(refused.code == 64, "delete without a filter needs --all")
        let deleted = try TestEnv.conveyor(["scheduled", "delete", "--all", "--namespace", namespace])
        #expect(deleted.out.contains("deleted 1 of 1 matching job from scheduled"), "\(deleted.out)")
        #expect(try redis.command("ZCARD", keys.schedule).check().int == 0)
    }

    @Test func anUnknownJidExitsFourOnEverySetCommand() throws {
        let namespace = TestEnv.unique("unknownjid")
        let jid = "nosuchjob000000000000000"
        for command in [
            ["dead", "list"], ["dead", "show", jid], ["dead", "replay"], ["dead", "delete"], ["retry", "list"], ["retry", "replay"],
            ["retry", "delete"], ["scheduled", "list"], ["scheduled", "replay"], ["scheduled", "delete"],
        ] {
            let jidArguments = command[1] == "show" ? [] : ["--jid", jid]
            for json in [false, true] where !(json && command[1] == "show") {
                let r = try TestEnv.conveyor(command + jidArguments + ["--namespace", namespace] + (json ? ["--json"] : []))
                #expect(r.code == 4, "\(command) json=\(json): \(r.code) \(r.err)")
                if !json { #expect(r.err.hasPrefix("conveyor: no job \(jid)"), "\(command): \(r.err)") }
            }
        }
    }
}
