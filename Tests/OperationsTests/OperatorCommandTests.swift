import ConveyorCore
import SidekiqQueue
import Foundation
import Operations
import Redis
import Testing

@Suite(.enabled(if: TestEnv.hasServers && TestEnv.binary != nil, "needs REDIS_URL, DATABASE_URL and CONVEYOR_BIN"))
struct OperatorCommandTests {
    let namespace = TestEnv.unique("ops")
    var keys: QueueKeys { QueueKeys(namespace: namespace) }

    private func deadJob(_ jid: String, cls: String = "image.thumbnail", queue: String = "media", error: String = "VipsError",
                         failedAt: Double = 1_763_780_000, retryCount: Int = 2) -> String {
        #"{"class":"\#(cls)","args":[{"source":"uploads/\#(jid).jpg"}],"queue":"\#(queue)","jid":"\#(jid)","retry":3,"created_at":1763779000.5,"enqueued_at":1763779000.5,"retry_count":\#(retryCount),"error_class":"\#(error)","error_message":"decode failed for \#(jid)","failed_at":\#(failedAt)}"#
    }

    private func seedDead(_ count: Int) throws -> Set<String> {
        let r = try TestEnv.redis()
        var jids = Set<String>()
        var commands: [RedisCommand] = []
        for i in 0..<count {
            let jid = String(format: "jid%06d", i)
            jids.insert(jid)
            commands.append(RedisCommand("ZADD", keys.dead, String(1_763_780_000 + i), deadJob(jid, failedAt: Double(1_763_780_000 + i))))
        }
        _ = try r.pipeline(commands)
        return jids
    }

    private func conveyor(_ args: [String]) throws -> (code: Int32, out: String, err: String) {
        try TestEnv.conveyor(args + ["--namespace", namespace])
    }

    @Test func queuePauseAndResumeAreSeenByStatsAndTheGauge() throws {
        let r = try TestEnv.redis()
        _ = try r.command("SADD", keys.queues, "media").check()
        let paused = try conveyor(["queue", "pause", "media"])
        #expect(paused.code == 0 && paused.out.contains("paused media"))
        #expect(try conveyor(["queue", "pause", "media"]).out.contains("already paused"))
        #expect(try conveyor(["queue", "paused", "--json"]).out.trimmingCharacters(in: .whitespacesAndNewlines) == #"["media"]"#)
        #expect(try conveyor(["stats", "--json"]).out.contains(#""name":"media","depth":0,"latency":0,"paused":true"#))
        #expect(try conveyor(["stats"]).out.contains("paused"))
        #expect(try conveyor(["queue", "pause", ""]).code == 64)
        let resumed = try conveyor(["queue", "resume", "media"])
        #expect(resumed.code == 0 && resumed.out.contains("resumed media"))
        #expect(try conveyor(["queue", "paused"]).out.contains("no queue is paused"))
        #expect(try r.command("EXISTS", keys.pausedQueues).check().int == 0)
    }

    @Test func processQuietAndStopSignalLiveProcessesOnly() throws {
        let r = try TestEnv.redis()
        let (a, b) = ("host-a:100:aaaa", "host-b:200:bbbb")
        _ = try r.command("SADD", keys.processes, a, b).check()
        let quiet = try conveyor(["process", "quiet", a])
        #expect(quiet.code == 0 && quiet.out.contains("sent quiet to \(a)"), "\(quiet)")
        #expect(try r.command("LRANGE", keys.signals(a), 0, -1).check().array?.compactMap(\.text) == ["TSTP"])
        #expect(try r.command("TTL", keys.signals(a)).check().int ?? 0 > 0, "an unread signal expires")

        let stop = try conveyor(["process", "stop", "--all"])
        #expect(stop.code == 0 && stop.out.contains("sent stop to \(a)") && stop.out.contains("sent stop to \(b)"), "\(stop)")
        #expect(try r.command("LRANGE", keys.signals(a), 0, -1).check().array?.compactMap(\.text) == ["TERM", "TSTP"])
        #expect(try r.command("LRANGE", keys.signals(b), 0, -1).check().array?.compactMap(\.text) == ["TERM"])

        // A process that is gone gets nothing and says so; naming nobody is a usage error.
        let gone = try conveyor(["process", "stop", b, "host-c:300:cccc"])
        #expect(gone.code == 4 && gone.err.contains("host-c:300:cccc"), "\(gone)")
        #expect(try r.command("EXISTS", keys.signals("host-c:300:cccc")).check().int == 0)
        #expect(try conveyor(["process", "quiet"]).code == 64)
        #expect(try conveyor(["process", "quiet", "--all", a]).code == 64)
    }

    @Test func twoConcurrentReplaysMoveEveryJobExactlyOnce() async throws {
        let jids = try seedDead(3000)
        // Two operators replay the same set at the same moment; workers are not running, so the queue must end
        // with each job exactly once.
        async let a = Task.detached { try conveyor(["dead", "replay", "--json"]) }.value
        async let b = Task.detached { try conveyor(["dead", "replay", "--json"]) }.value
        let (ra, rb) = try await (a, b)
        #expect(ra.code == 0, "\(ra.err)")
        #expect(rb.code == 0, "\(rb.err)")
        let ja = try JSONValue(parsing: ra.out), jb = try JSONValue(parsing: rb.out)
        #expect((ja["replayed"]?.intValue ?? 0) + (jb["replayed"]?.intValue ?? 0) == 3000)

        let r = try TestEnv.redis()
        #expect(try r.command("ZCARD", keys.dead).int == 0)
        let queued = try r.command("LRANGE", keys.queue("media"), "0", "-1").array ?? []
        #expect(queued.count == 3000)
        let queuedJIDs = queued.compactMap { try? JSONValue(parsing: $0.bytes ?? [])["jid"]?.stringValue }
        #expect(Set(queuedJIDs) == jids)
        #expect(try r.command("SISMEMBER", keys.queues, "media").int == 1)
        // Original metadata is kept; retry_count stays without --reset-attempts.
        let one = try JSONValue(parsing: queued[0].bytes ?? [])
        #expect(one["error_class"] == "VipsError")
        #expect(one["retry_count"] == 2)
        #expect(one["created_at"] == .number("1763779000.5"))
        #expect(one["args"]?[0]?["source"]?.stringValue?.hasPrefix("uploads/") == true)
    }

    @Test func filtersDryRunResetAttemptsAndDelete() throws {
        let r = try TestEnv.redis()
        _ = try r.pipeline([
            RedisCommand("ZADD", keys.dead, "100", deadJob("a", cls: "mail.send", queue: "mail", error: "SMTPError", failedAt: 1_763_000_000)),
            RedisCommand("ZADD", keys.dead, "200", deadJob("b", cls: "image.thumbnail", error: "VipsError", failedAt: 1_763_500_000)),
            RedisCommand("ZADD", keys.dead, "300", deadJob("c", cls: "image.thumbnail", error: "Timeout", failedAt: 1_763_900_000)),
            RedisCommand("ZADD", keys.dead, "400", "not json at all"),
        ])
        let list = try conveyor(["dead", "list", "--class", "image.thumbnail", "--json"])
        #expect(list.code == 0)
        let listed = try JSONValue(parsing: list.out)
        #expect(listed["jobs"]?.arrayValue?.compactMap { $0["jid"]?.stringValue } == ["c", "b"])

        let byError = try JSONValue(parsing: try conveyor(["dead", "list", "--error", "^Vips|SMTP", "--json"]).out)
        #expect(byError["count"] == 2)
        let byTime = try JSONValue(parsing: try conveyor(["dead", "list", "--since", "1763400000", "--until", "2025-11-23T00:00:00Z", "--json"]).out)
        #expect(byTime["jobs"]?.arrayValue?.compactMap { $0["jid"]?.stringValue } == ["b"])

        let dry = try JSONValue(parsing: try conveyor(["dead", "replay", "--jid", "b", "--dry-run", "--json"]).out)
        #expect(dry["matched"] == 1)
        #expect(dry["replayed"] == 0)
        #expect(try r.command("ZCARD", keys.dead).int == 4)

        let replay = try conveyor(["dead", "replay", "--jid", "b", "--reset-attempts", "--rate", "100/s"])
        #expect(replay.code == 0)
        #expect(replay.out.contains("replayed 1 of 1"))
        let pushed = try JSONValue(parsing: try r.command("LPOP", keys.queue("media")).bytes ?? [])
        #expect(pushed["jid"] == "b")
        #expect(pushed["retry_count"] == nil)
        #expect(pushed["error_message"] == "decode failed for b")

        let show = try conveyor(["dead", "show", "c"])
        #expect(show.code == 0)
        #expect(try JSONValue(parsing: show.out)["error_class"] == "Timeout")
        #expect(try conveyor(["dead", "show", "nope"]).code == 4)

        // Delete refuses to run without a filter; with one it removes only the match.
        #expect(try conveyor(["dead", "delete"]).code == 64)
        let deleted = try JSONValue(parsing: try conveyor(["dead", "delete", "--queue", "mail", "--json"]).out)
        #expect(deleted["deleted"] == 1)
        #expect(try r.command("ZCARD", keys.dead).int == 2)
        // The garbage member is listed but not replayable.
        let rest = try JSONValue(parsing: try conveyor(["dead", "replay", "--json"]).out)
        #expect(rest["replayed"] == 1)
        #expect(rest["unreplayable"] == 1)
        #expect(try conveyor(["dead", "list", "--since", "yesterday-ish"]).code == 64)
    }

    /// A jid looked up without its score: Redis searches the set in chunks and sends only candidates; a job whose
    /// arguments merely mention the jid is a candidate, not the answer.
    @Test func findsAJidDeepInALargeSetAndNotAJobThatMentionsIt() throws {
        _ = try seedDead(25_000)
        let r = try TestEnv.redis()
        // Newer than every seeded job, so the search meets it first: its arguments and error name jid001234.
        let decoy = #"{"class":"x","args":["jid001234"],"queue":"media","jid":"decoy","error_message":"after jid001234"}"#
        _ = try r.command("ZADD", keys.dead, "1763800000", decoy)
        let set = JobSet(.dead, keys: keys, connection: r)
        let found = try #require(try set.find(jid: "jid001234", score: nil))
        #expect(found.jid == "jid001234")
        #expect(found.score == 1_763_781_234)
        let oldest = try #require(try set.find(jid: "jid000000", score: nil), "the last chunk is searched too")
        #expect(oldest.jid == "jid000000")
        #expect(try set.find(jid: "jid999999", score: nil) == nil)
        #expect(try set.find(jid: "decoy", score: nil)?.jobClass == "x")
        #expect(try set.find(jid: "jid002000", score: 1_763_782_000)?.jid == "jid002000")
    }

    @Test func retryReplayRunsWaitingJobsNow() throws {
        let r = try TestEnv.redis()
        _ = try r.pipeline([
            RedisCommand("ZADD", keys.retry, "9999999999", deadJob("r1", queue: "low")),
            RedisCommand("ZADD", keys.retry, "9999999999", deadJob("r2", queue: "low", error: "Other")),
        ])
        let listed = try JSONValue(parsing: try conveyor(["retry", "list", "--json"]).out)
        #expect(listed["count"] == 2)
        let replay = try JSONValue(parsing: try conveyor(["retry", "replay", "--error", "Vips", "--json"]).out)
        #expect(replay["replayed"] == 1)
        #expect(try r.command("LLEN", keys.queue("low")).int == 1)
        #expect(try r.command("ZCARD", keys.retry).int == 1)
        #expect(try JSONValue(parsing: try conveyor(["retry", "delete", "--all", "--json"]).out)["deleted"] == 1)
    }

    @Test func statsPrintsSnapshotAsJSON() throws {
        let r = try TestEnv.redis()
        _ = try r.pipeline([
            RedisCommand("SADD", keys.queues, "default"),
            RedisCommand("LPUSH", keys.queue("default"), #"{"class":"noop","args":[{}],"jid":"s1","enqueued_at":1}"#),
            RedisCommand("ZADD", keys.schedule, "1", "x"),
            RedisCommand("SET", keys.failed, "5"),
        ])
        let out = try conveyor(["stats", "--json"])
        #expect(out.code == 0)
        let s = try JSONValue(parsing: out.out)
        #expect(s["queues"]?[0]?["name"] == "default")
        #expect(s["queues"]?[0]?["depth"] == 1)
        #expect((s["queues"]?[0]?["latency"]?.doubleValue ?? 0) > 1_000_000)
        #expect(s["scheduled"] == 1)
        #expect(s["failed"] == 5)
        #expect(s["processes"] == [])
        let text = try conveyor(["stats"])
        #expect(text.out.contains("default"))
        #expect(try TestEnv.conveyor(["stats", "--redis-url", "redis://127.0.0.1:1"]).code == 3)
    }
}
