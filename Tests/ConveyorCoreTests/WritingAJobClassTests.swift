import Foundation
import Synchronization
import Testing

@testable import ConveyorCore
import ConveyorTesting
import SidekiqQueue

// The complete example of docs/writing-a-job-class.md: a handler, its class, and its test against a real Redis.

/// `text.count_words` `{"text": "..."}` -> `{"words": N}`.
struct CountWordsHandler: JobHandler {
    func perform(_ job: JobContext) async throws -> JSONValue {
        let text = try job.string("text")  // missing or not a string: permanent InvalidArguments, straight to dead
        guard text.utf8.count <= 1_000_000 else { throw JobFailure.invalidArguments("text is longer than 1 MB") }
        let words = text.split(whereSeparator: { $0.isWhitespace }).count
        job.logger.debug("counted", metadata: ["words": "\(words)"])
        return ["words": JSONValue(words)]
    }
}

extension JobClass {
    static let countWords = JobClass("text.count_words", queue: "default", timeout: .seconds(10), handler: CountWordsHandler())
}

enum TextJobs: JobFamilyDefinition {
    static let queue = "default"
    static let classNames = ["text.count_words"]
    static func family(_ context: FamilyContext) -> JobFamily { JobFamily(classes: [.countWords]) }
}

/// Collects the outcomes the worker reports.
final class Outcomes: JobObserver {
    private let seen = Mutex<[String: JobOutcome]>([:])
    func jobFinished(_ outcome: JobOutcome) { seen.withLock { $0[outcome.jid] = outcome } }
    subscript(jid: String) -> JobOutcome? { seen.withLock { $0[jid] } }
}

@Suite struct WritingAJobClassTests {
    /// The handler alone: no worker, no Redis.
    @Test func theHandlerCountsWords() async throws {
        let handler = CountWordsHandler()
        #expect(try await handler.perform(.testing("text.count_words", arguments: ["text": "the quick brown fox"])) == ["words": 4])
        let refused = await #expect(throws: JobFailure.self) { try await handler.perform(.testing("text.count_words", arguments: ["text": 42])) }
        #expect(refused?.errorClass == "InvalidArguments" && refused?.isPermanent == true)
    }

    /// Through a worker on the in-memory backend: retries, dead ends and outcomes as with Redis, without it.
    @Test func aWorkerRunsItWithoutRedis() async throws {
        var registry = JobRegistry()
        registry.register(.countWords)
        let configuration = WorkerConfiguration(queues: try QueueSelection(parsing: "default"), pollInterval: .milliseconds(20))
        let backend = MemoryBackend(identity: configuration.identity)
        let outcomes = OutcomeRecorder()
        let worker = Worker(backend: backend, registry: registry, configuration: configuration, observers: [outcomes])
        let ok = Job.envelope(jobClass: "text.count_words", arguments: ["text": "one two"], queue: "default")
        let bad = Job.envelope(jobClass: "text.count_words", arguments: ["text": 42], queue: "default")
        backend.push(ok)
        backend.push(bad)
        let running = Task { try await worker.run() }
        try await waitUntil("both finished") { outcomes.count == 2 }
        worker.shutdown()
        try await running.value
        #expect(outcomes[ok["jid"]!.stringValue!]?.result == ["words": 2])
        #expect(outcomes[bad["jid"]!.stringValue!]?.status == .dead)
        #expect(backend.store.withLock { $0.dead.count } == 1)
    }

    @Test func countsWordsAndRefusesBadArguments() async throws {
        let redis = try TestRedis()
        var registry = JobRegistry()
        registry.register(.countWords)
        let outcomes = Outcomes()
        let worker = Worker(
            redis: redis.endpoint, keys: redis.keys, registry: registry,
            configuration: WorkerConfiguration(queues: try QueueSelection(parsing: "default")),
            observers: [outcomes])
        let running = Task { try await worker.run() }
        let ok = try await redis.client.enqueue("text.count_words", arguments: ["text": "the quick brown fox"])
        let bad = try await redis.client.enqueue("text.count_words", arguments: ["text": 42])
        try await eventually("both finished") { outcomes[ok] != nil && outcomes[bad] != nil }
        worker.shutdown()
        try await running.value
        #expect(outcomes[ok]?.status == .succeeded)
        #expect(outcomes[ok]?.result == ["words": 4])
        #expect(outcomes[bad]?.status == .dead)
        #expect(outcomes[bad]?.failure?.errorClass == "InvalidArguments")
        #expect(try await redis.int("ZCARD", redis.keys.dead) == 1)
        try await redis.clean()
    }

    @Test func theFamilyBuildsWhatItNames() {
        let family = TextJobs.family(FamilyContext(environment: [:]))
        #expect(family.classes.map(\.name) == TextJobs.classNames)
        #expect(family.classes.allSatisfy { $0.queue == TextJobs.queue })
    }
}
