import ConveyorCore
import Foundation
import Operations
import Redis
import SidekiqQueue
import Testing

/// A pause stops fetching at once: the fetch script and a blocking wait's hand-off both check the paused set, so no
/// job pushed after `pause` returned is run, however the worker was waiting at that moment.
@Suite(.enabled(if: TestEnv.hasServers && TestEnv.binary != nil, "needs REDIS_URL, DATABASE_URL and CONVEYOR_BIN"))
struct PauseTests {
    @Test func aPausedQueueTakesNoJobPushedAfterThePauseReturned() throws {
        let namespace = TestEnv.unique("pause")
        let keys = QueueKeys(namespace: namespace)
        let worker = try WorkerProcess(namespace: namespace, arguments: ["--queues", "p", "-c", "4"])
        try worker.waitUntilServing()
        let redis = try TestEnv.redis()
        let pauses = QueuePauses(keys: keys, connection: redis)
        _ = try redis.command("SADD", keys.queues, "p").check()
        func job(_ jid: String) -> String {
            JSONValue.object(JSONObject([
                ("class", "noop"), ("queue", "p"), ("jid", .string(jid)), ("args", .array([.object(JSONObject())])),
                ("created_at", JSONValue(Date().timeIntervalSince1970)), ("enqueued_at", JSONValue(Date().timeIntervalSince1970)),
            ])).text
        }
        let tries = 1000
        var taken: [Int] = []
        for i in 0..<tries {
            // The worker active on the queue: a job pushed and taken (it is then fetching or waiting again).
            try pauses.resume("p")
            _ = try redis.command("LPUSH", keys.queue("p"), job("warm\(i)")).check()
            let end = Date().addingTimeInterval(10)
            while try redis.command("LLEN", keys.queue("p")).check().int != 0, Date() < end { usleep(200) }
            // Paused; a job pushed after that must stay: take it back out ourselves (a worker holding it for a moment
            // before handing it back is allowed, so retry briefly).
            try pauses.pause("p")
            let late = job("late\(i)")
            _ = try redis.command("LPUSH", keys.queue("p"), late).check()
            var removed = false
            let give = Date().addingTimeInterval(0.5)
            repeat {
                removed = try redis.command("LREM", keys.queue("p"), 1, late).check().int == 1
                if !removed { usleep(200) }
            } while !removed && Date() < give
            if !removed { taken.append(i) }
        }
        #expect(taken.isEmpty, "jobs pushed after the pause were taken in tries \(taken.prefix(20)) (\(taken.count) of \(tries))")
        // Every warm-up ran and nothing else did (the last one may have been handed back by the pause: resume).
        try pauses.resume("p")
        let end = Date().addingTimeInterval(20)
        while (Int(try redis.command("GET", keys.processed).check().text ?? "0") ?? 0) < tries, Date() < end { usleep(20_000) }
        let processed = Int(try redis.command("GET", keys.processed).check().text ?? "0")
        let left = try redis.command("LLEN", keys.queue("p")).check().int
        #expect(processed == tries, "processed \(String(describing: processed)); \(String(describing: left)) left in the queue")
    }
}
