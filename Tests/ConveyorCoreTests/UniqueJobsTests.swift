import Foundation
import Redis
import Synchronization
import Testing

@testable import ConveyorCore
import SidekiqQueue

/// Unique jobs through the worker over Redis: duplicates end `skipped` with `DuplicateJob` naming the holder, the key
/// is given up by the holder's success, and the envelope's fields are checked at the border.
@Suite struct UniqueJobsTests {
    final class Outcomes: JobObserver {
        let seen = Mutex<[JobOutcome]>([])
        /// Kept apart so the 100 waiting holders read it without scanning `seen` (they would load the whole test
        /// process, and the tests running beside this one, for nothing).
        let skipped = Atomic<Int>(0)
        func jobFinished(_ outcome: JobOutcome) {
            seen.withLock { $0.append(outcome) }
            if outcome.status == .skipped { skipped.add(1, ordering: .relaxed) }
        }
        func count(_ status: JobStatus) -> Int {
            if status == .skipped { return skipped.load(ordering: .relaxed) }
            return seen.withLock { $0.filter { $0.status == status }.count }
        }
    }

    static func envelope(key: Int) -> JSONObject {
        var payload = Job.envelope(jobClass: "unique.work", arguments: JSONObject([("item", JSONValue(key))]), queue: "default")
        payload["unique_for"] = JSONValue(600)
        return payload
    }

    /// Scaled down 10x from 1,000 keys (the ratio kept): 100 keys pushed ten times each by ten concurrent producers.
    /// Holders wait until every duplicate has ended, so every duplicate meets a held key: 100 runs, 900 skipped.
    @Test func duplicatesAreSkippedNamingTheHolderAndSuccessReleases() async throws {
        let redis = try TestRedis()
        try await redis.clean()
        let keys = 100, copies = 10
        try await withThrowingTaskGroup(of: Void.self) { group in
            for producer in 0..<copies {
                group.addTask {
                    let thread = RedisThread(redis.endpoint, name: "producer-\(producer)")
                    defer { thread.stop() }
                    let client = JobClient(redis: thread, keys: redis.keys)
                    try await client.push((0..<keys).map { Self.envelope(key: $0) })
                }
            }
            try await group.waitForAll()
        }
        let outcomes = Outcomes()
        let runs = Mutex<[Int: Int]>([:])
        var registry = JobRegistry()
        registry.register(JobClass("unique.work", handler: ClosureHandler { job in
            runs.withLock { $0[job.arguments["item"]!.intValue!, default: 0] += 1 }
            // Every 100 ms, not eventually's 20: a hundred holders wait at once.
            let deadline = ContinuousClock.now + .seconds(60)
            while outcomes.count(.skipped) < keys * (copies - 1), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
            return ["done": true]
        }))
        let configuration = WorkerConfiguration(
            queues: try QueueSelection(parsing: "default"), concurrency: keys + 20, heartbeatInterval: .milliseconds(200),
            pollInterval: .milliseconds(20))
        let backend = SidekiqBackend(redis: redis.endpoint, keys: redis.keys, identity: configuration.identity, queues: ["default"])
        let worker = Worker(
            backend: backend, registry: registry, configuration: configuration, observers: [outcomes],
            middleware: [UniqueJobsMiddleware(locks: RedisUniqueLocks(redis: redis.thread, keys: redis.keys))])
        let running = Task { try await worker.run() }
        defer { worker.shutdown() }
        try await eventually("all jobs ended", timeout: .seconds(90)) { outcomes.seen.withLock { $0.count } >= keys * copies }
        #expect(outcomes.count(.succeeded) == keys)
        #expect(outcomes.count(.skipped) == keys * (copies - 1))
        #expect(runs.withLock { $0.count == keys && $0.values.allSatisfy { $0 == 1 } })
        let holders = Set(outcomes.seen.withLock { $0.filter { $0.status == .succeeded }.map(\.jid) })
        for skipped in outcomes.seen.withLock({ $0.filter { $0.status == .skipped } }) {
            #expect(skipped.failure?.errorClass == "DuplicateJob")
            let named = holders.contains { skipped.failure?.message.contains($0) == true }
            #expect(named, "a skipped job names its holder: \(skipped.failure?.message ?? "-")")
        }
        // Success released every key: none is left, and the same job pushed again runs.
        try await eventually("locks released") {
            (try await redis.command("KEYS", redis.keys.prefix + "{conveyor:unique}:*").array ?? []).isEmpty
        }
        try await redis.client.push([Self.envelope(key: 0)])
        try await eventually("the key's job ran again") { runs.withLock { $0[0] == 2 } }
        worker.shutdown()
        try await running.value
    }

    @Test func fieldsAreCheckedAtTheBorder() throws {
        func parse(_ fields: [(String, JSONValue)]) throws(JobFailure) -> UniqueJob? { try UniqueJob(payload: JSONObject(fields)) }
        #expect(try parse([]) == nil)
        #expect(try parse([("unique_for", .number("60"))])?.until == .finish)
        #expect(try parse([("unique_for", .number("2592000")), ("unique_until", .string("start"))])?.until == .start)
        for bad in ["0", "-1", "2592001", "1e400", "1e308", "-1e308", "1.5", "9223372036854775807", "-9223372036854775808"] {
            #expect(throws: JobFailure.self, "unique_for \(bad)") { try parse([("unique_for", .number(bad))]) }
        }
        #expect(throws: JobFailure.self) { try parse([("unique_for", .string("60"))]) }
        #expect(throws: JobFailure.self) { try parse([("unique_for", .number("60")), ("unique_key", .string(""))]) }
        #expect(throws: JobFailure.self) { try parse([("unique_for", .number("60")), ("unique_key", .string(String(repeating: "k", count: 257)))]) }
        #expect(throws: JobFailure.self) { try parse([("unique_for", .number("60")), ("unique_key", .string("a\u{0}b"))]) }
        #expect(throws: JobFailure.self) { try parse([("unique_for", .number("60")), ("unique_until", .string("later"))]) }
        #expect(throws: JobFailure.self) { try parse([("unique_key", .string("k"))]) }
        // Argument order does not change the default key.
        let a = UniqueJob.defaultKeyMaterial(jobClass: "c", queue: "q", arguments: JSONObject([("a", 1), ("b", ["y": 1, "x": 2])]))
        let b = UniqueJob.defaultKeyMaterial(jobClass: "c", queue: "q", arguments: JSONObject([("b", ["x": 2, "y": 1]), ("a", 1)]))
        #expect(a == b)
    }
}
