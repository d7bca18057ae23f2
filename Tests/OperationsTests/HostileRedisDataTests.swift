import ConveyorCore
import Foundation
import Operations
import Redis
import SidekiqQueue
import Testing

/// What another program (or a corrupt write) can leave in Redis for the operations side to read: heartbeats with
/// Int64.max busy counts and infinite beats, queued jobs with nanosecond or 1e308 timestamps, counters past Int64.
/// `conveyor stats`, the snapshot behind /metrics, the daily history and queue pages read them without trapping.
@Suite(.enabled(if: TestEnv.hasServers && TestEnv.binary != nil, "needs REDIS_URL, DATABASE_URL and CONVEYOR_BIN"))
struct HostileRedisDataTests {
    let namespace = TestEnv.unique("hostile-redis")
    var keys: QueueKeys { QueueKeys(namespace: namespace) }

    private func seed() throws {
        let r = try TestEnv.redis()
        let max = "9223372036854775807"
        var commands = [
            RedisCommand("SADD", keys.queues, "nanos", "huge", "negative", "fine"),
            RedisCommand("LPUSH", keys.queue("nanos"), #"{"class":"noop","args":[{}],"jid":"a1","enqueued_at":1796603000123456789}"#),
            RedisCommand("LPUSH", keys.queue("huge"), #"{"class":"noop","args":[{}],"jid":"a2","enqueued_at":1e308,"created_at":1e400}"#),
            RedisCommand("LPUSH", keys.queue("negative"), #"{"class":"noop","args":[{}],"jid":"a3","enqueued_at":-1e308}"#),
            RedisCommand("LPUSH", keys.queue("fine"), #"{"class":"noop","args":[{}],"jid":"a4","enqueued_at":\#(Date().timeIntervalSince1970 - 10)}"#),
            RedisCommand("SET", keys.processed, max),
            RedisCommand("SET", keys.failed, "99999999999999999999999"),
            RedisCommand("SADD", keys.processes, "h:1:a", "h:2:b", "h:3:c"),
        ]
        for (identity, beat) in [("h:1:a", "inf"), ("h:2:b", "1e308"), ("h:3:c", "nan")] {
            commands.append(RedisCommand(
                "HSET", keys.process(identity), "info",
                #"{"hostname":"h","pid":\#(max),"concurrency":\#(max),"queues":["fine"],"started_at":1e308}"#,
                "busy", max, "beat", beat, "quiet", "false", "rss", max))
        }
        let today = JobTime.day(Date().timeIntervalSince1970)
        commands.append(RedisCommand("SET", keys.processed(day: today), "-5"))
        commands.append(RedisCommand("SET", keys.failed(day: today), max))
        for reply in try r.pipeline(commands) { try reply.check() }
    }

    @Test func statsSnapshotHistoryAndPagesReadHostileDataWithoutTrapping() throws {
        try seed()
        for arguments in [["stats"], ["stats", "--json"]] {
            let r = try TestEnv.conveyor(arguments + ["--namespace", namespace])
            #expect(r.code == 0, "\(arguments): exit \(r.code)\n\(r.err.suffix(2000))")
            #expect(!r.err.contains("Fatal error"))
        }
        let snapshot = try QueueSnapshot.read(try TestEnv.redis(), keys: keys)
        for q in snapshot.queues {
            #expect(q.latency.isFinite && q.latency >= 0, "\(q.name): \(q.latency)")
        }
        #expect(snapshot.queues.first { $0.name == "fine" }.map { $0.latency > 5 && $0.latency < 60 } == true)
        #expect(snapshot.busy == Int.max, "sums saturate")
        #expect(snapshot.concurrency == Int.max)
        #expect(snapshot.processes.allSatisfy { $0.beat == nil && $0.startedAt == nil })

        // The gauges take the snapshot and render valid text.
        let metrics = ConveyorMetrics()
        metrics.update(from: snapshot)
        let text = String(decoding: metrics.render(), as: UTF8.self)
        #expect(!text.contains("inf") && !text.contains("NaN"), "\(text)")
        let check = try TestEnv.command(["promtool", "check", "metrics"], input: Array(text.utf8))
        #expect(check.code == 0, "promtool: \(check.out) \(check.err)")

        let history = try StatHistory.read(try TestEnv.redis(), keys: keys, days: Int.max)
        #expect(history.days.count == StatHistory.maximumDays)
        #expect(history.days.allSatisfy { $0.processed >= 0 && $0.failed >= 0 })

        let contents = QueueContents("fine", keys: keys, connection: try TestEnv.redis())
        #expect(try contents.page(offset: Int.max, count: Int.max).jobs.isEmpty)
        #expect(try contents.page(offset: Int.min, count: Int.min).jobs.count == 1)
    }
}
