import Foundation
import Logging
import Redis
import Synchronization
import Testing

@testable import BullMQQueue
import ConveyorCore
import ConveyorTesting

/// What the test handlers saw.
final class HandlerLog: Sendable {
    let cancelledAt = Mutex<[String: ContinuousClock.Instant]>([:])
    let started = Mutex<[String]>([])
}

/// The handlers of the mix, written as the Python peer's processor (`bullmq_peer.py work`) behaves.
func testRegistry(_ log: HandlerLog) -> JobRegistry {
    var registry = JobRegistry()
    registry.register(JobClass("test.echo", handler: ClosureHandler { job in
        log.started.withLock { $0.append(job.jid) }
        return ["echo": .object(job.arguments)]
    }))
    registry.register(JobClass("test.fail", handler: ClosureHandler { job in
        log.started.withLock { $0.append(job.jid) }
        let message = job.arguments["message"]?.stringValue ?? "boom"
        if job.arguments["permanent"]?.boolValue == true { throw JobFailure.permanent(.invalidArguments, message) }
        if job.attempt < (job.arguments["succeed_on"]?.intValue ?? Int.max) { throw JobFailure.transient("Exception", message) }
        return ["echo": .object(job.arguments)]
    }))
    registry.register(JobClass("test.log", handler: ClosureHandler { job in
        log.started.withLock { $0.append(job.jid) }
        for i in 1...(job.arguments["lines"]?.intValue ?? 1) { await job.log("line \(i)") }
        if job.arguments["huge"]?.boolValue == true { await job.log(String(repeating: "x", count: 100_000)) }
        return .null
    }))
    // Makes Redis forget every script, as a restart does, just before its outcome's transaction.
    registry.register(JobClass("test.flush", handler: ClosureHandler { job in
        log.started.withLock { $0.append(job.jid) }
        let url = ProcessInfo.processInfo.environment["REDIS_URL"] ?? ""
        let connection = try RedisConnection(try RedisEndpoint(url: url))
        _ = try connection.command("SCRIPT", "FLUSH").check()
        return ["flushed": true]
    }))
    registry.register(JobClass("test.slow", handler: ClosureHandler { job in
        log.started.withLock { $0.append(job.jid) }
        do {
            try await Task.sleep(for: .seconds(60))
        } catch {
            log.cancelledAt.withLock { $0[job.jid] = .now }
            throw error
        }
        return .null
    }))
    return registry
}

/// An outcome journal that keeps what the worker hands it: each outcome's line is its jid.
final class JournalCollector: OutcomeJournal {
    let entries = Mutex<[(key: String, field: String, value: String)]>([])

    func journalValue(for outcome: JobOutcome) -> (value: [UInt8], record: JobResultRecord)? {
        guard let record = JobResultRecord(outcome) else { return nil }
        return (Array((outcome.jid + "\n").utf8), record)
    }

    func journaled(key: String, entries new: [JobTransitions.Move.JournalEntry]) {
        entries.withLock { $0 += new.map { (key, $0.field, String(decoding: $0.value, as: UTF8.self)) } }
    }
}

/// A Conveyor worker on BullMQ queues, in this process.
final class ConveyorBullWorker: Sendable {
    let worker: Worker
    let backend: BullMQBackend
    let task: Task<Void, any Error>
    /// Every run's outcome, by jid.
    let outcomes = OutcomeRecorder()

    init(_ peer: BullMQPeer, queues: [String], log: HandlerLog, options: BullMQOptions? = nil, concurrency: Int = 4, journal: JournalCollector? = nil) throws {
        let identity = WorkerConfiguration.newIdentity()
        var logger = Logger(label: "bullmq-test")
        logger.logLevel = .warning
        backend = try BullMQBackend(
            redis: peer.endpoint, scripts: try BullMQPeer.scripts(), queues: queues,
            options: options ?? BullMQOptions(prefix: peer.prefix), identity: identity,
            journal: journal.map { _ in "\(peer.prefix):conveyor:outcomes:\(identity)" }, logger: logger)
        let configuration = WorkerConfiguration(
            queues: try QueueSelection(parsing: queues.joined(separator: ",")), concurrency: concurrency, shutdownTimeout: .seconds(2), identity: identity)
        worker = Worker(
            backend: backend, registry: BullMQHandlers.wrap(testRegistry(log), backend: backend), configuration: configuration,
            observers: [outcomes], journal: journal, logger: logger)
        let worker = worker
        task = Task { try await worker.run() }
    }

    func stop() async throws {
        worker.shutdown()
        try await task.value
    }
}

extension JSONValue {
    subscript(path: String...) -> JSONValue? {
        var v: JSONValue? = self
        for p in path { v = v?[p] }
        return v
    }
}

@Suite(.serialized) struct BullMQBackendTests {
    static let mix: [JSONValue] = [
        ["name": "test.echo", "data": ["n": 1]],
        ["name": "test.echo", "data": ["n": 2], "opts": ["delay": 300]],
        ["name": "test.echo", "data": ["n": 3], "opts": ["priority": 5]],
        ["name": "test.fail", "data": ["succeed_on": 3, "message": "flaky"], "opts": ["attempts": 3, "backoff": ["type": "exponential", "delay": 60]]],
        ["name": "test.fail", "data": ["message": "nope"], "opts": ["attempts": 2, "backoff": 50]],
        ["name": "test.fail", "data": ["permanent": true, "message": "bad input"], "opts": ["attempts": 5]],
        ["name": "test.echo", "data": ["n": 7], "opts": ["deduplication": ["id": "d1"]]],
        ["name": "test.echo", "data": ["n": 8], "opts": ["deduplication": ["id": "d1"]]],
        ["name": "test.echo", "data": ["n": 9], "opts": ["removeOnComplete": true]],
    ]

    /// Jobs a BullMQ producer queued end as BullMQ decides, with Conveyor's handlers.
    @Test func bullMQJobsCompleteRetryAndFailAsBullMQDecides() async throws {
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        let ids = try peer.add("q", Self.mix + [["name": "no.such.class", "data": [:]], ["name": "test.echo", "data": "not an object"]])
        #expect(ids.count == 11)
        let log = HandlerLog()
        let worker = try ConveyorBullWorker(peer, queues: ["q"], log: log)
        try await eventually(20, "every job finished") {
            let completed = try await peer.command("ZCARD", "\(peer.prefix):q:completed").int ?? 0
            let failed = try await peer.command("ZCARD", "\(peer.prefix):q:failed").int ?? 0
            return completed == 5 && failed == 4
        }
        try await worker.stop()
        let state = try peer.state("q")
        let jobs = state["jobs"]
        #expect(jobs?["1", "returnvalue"] == #"{"echo":{"n":1}}"#)
        #expect(jobs?["4", "atm"] == "3")
        #expect(jobs?["4", "returnvalue"] == #"{"echo":{"succeed_on":3,"message":"flaky"}}"#)
        #expect(jobs?["5", "failedReason"] == "nope")
        #expect(jobs?["5", "atm"] == "2")
        #expect(jobs?["5", "stacktrace"] == 2)
        // A permanent Conveyor failure is BullMQ's UnrecoverableError: failed after one attempt of five.
        #expect(jobs?["6", "failedReason"] == "bad input")
        #expect(jobs?["6", "atm"] == "1")
        #expect(jobs?["8"] == nil, "the second job of a deduplication id is never created")
        #expect(jobs?["9"] == nil, "removeOnComplete: true removes the job")
        #expect(jobs?["10", "failedReason"]?.stringValue?.hasPrefix("no handler for class no.such.class") == true)
        #expect(jobs?["11", "failedReason"]?.stringValue?.contains("args must hold one JSON object") == true)
        #expect(state["events", "5"] == ["added", "waiting", "active", "delayed", "waiting", "active", "failed", "retries-exhausted"] || state["events", "5"] == ["added", "waiting", "active", "delayed", "waiting", "active", "retries-exhausted", "failed"])
        #expect(state["locks"] == [])
        #expect(state["active"] == [])
        // The handlers saw the jobs by their BullMQ key.
        #expect(log.started.withLock { $0 }.contains("\(peer.prefix):q:1"))
    }

    /// The outcome transaction: the script and the journal entry together, in field `a<n>b`; when Redis has lost the
    /// scripts (restart, SCRIPT FLUSH) they are loaded and the moves run again, once, with the same entry.
    @Test func outcomesAreJournaledWithTheirScriptEvenWhenRedisLostTheScripts() async throws {
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        let ids = try peer.add("jr", [["name": "test.flush", "data": [:]], ["name": "test.echo", "data": ["n": 2]]])
        let journal = JournalCollector()
        let worker = try ConveyorBullWorker(peer, queues: ["jr"], log: HandlerLog(), concurrency: 1, journal: journal)
        try await eventually(20, "both completed") { try await peer.command("ZCARD", "\(peer.prefix):jr:completed").int == 2 }
        try await worker.stop()
        let handed = journal.entries.withLock { $0 }
        #expect(Set(handed.map(\.value)) == Set(ids.map { "\(peer.prefix):jr:\($0)\n" }))
        #expect(handed.allSatisfy { $0.field.hasPrefix("a") && $0.field.hasSuffix("b") }, "\(handed)")
        #expect(handed.allSatisfy { $0.key == "\(peer.prefix):conveyor:outcomes:\(worker.backend.identity)" })
        // In Redis, each batch's field holds its lines (nothing removes them here: the collector stores nothing).
        let stored = try await peer.command("HVALS", handed[0].key).array?.compactMap(\.text).joined() ?? ""
        for id in ids { #expect(stored.contains("\(peer.prefix):jr:\(id)\n")) }
        #expect(try await peer.command("HGET", "\(peer.prefix):jr:\(ids[0])", "returnvalue").text == #"{"flushed":true}"#)
    }

    /// `moveToActive`'s options, put together from parts encoded once, are the bytes the whole map encodes to.
    @Test func activeOptionsAreTheWholeMapsEncoding() async throws {
        let peer = try BullMQPeer()
        let cases: [(Int, String, BullMQOptions.Limiter?)] = [
            (30_000, "host:1:abc", nil), (1, "", nil), (2_147_483_647, String(repeating: "é", count: 300), nil),
            (30_000, "host:1:abc", .init(max: 5, duration: 1000)), (1, "", .init(max: 1_000_000, duration: 86_400_000)),
        ]
        for (lock, identity, limiter) in cases {
            let options = BullMQOptions(prefix: peer.prefix, lockDuration: lock, limiter: limiter)
            let backend = try BullMQBackend(redis: peer.endpoint, scripts: try BullMQPeer.scripts(), queues: ["q"], options: options, identity: identity)
            defer { backend.close() }
            for token in ["", "w:1", String(repeating: "t", count: 40_000)] {
                var pairs: [(String, MessagePack)] = [("token", .string(token)), ("lockDuration", .int(options.lockDuration)), ("name", .string(identity))]
                if let limiter { pairs.append(("limiter", .map([("max", .int(limiter.max)), ("duration", .int(limiter.duration))]))) }
                let whole = MessagePack.map(pairs).encoded()
                #expect(backend.activeOptions(token: token) == whole)
            }
        }
    }

    /// `moveToFinished`'s options, written from parts encoded once, are the bytes the whole map encodes to, whatever
    /// the job's own keep option, attempts and flow flags, and the worker's keep settings.
    @Test func finishOptionsAreTheWholeMapsEncoding() async throws {
        let peer = try BullMQPeer()
        let jobOptions: [JSONObject] = [
            [:], ["attempts": 5, "fpof": true], ["removeOnComplete": true, "removeOnFail": 10, "idof": true, "rdof": false],
            ["removeOnComplete": ["age": 3600, "count": 7], "removeOnFail": false, "cpof": true, "attempts": 2_147_483_647],
            ["removeOnComplete": -5, "attempts": -1],
        ]
        for (keepDone, keepFailed) in [(nil, nil), (JSONValue.bool(true), JSONValue(100)), (["age": 60], nil)] as [(JSONValue?, JSONValue?)] {
            let options = BullMQOptions(prefix: peer.prefix, lockDuration: 12_345, removeOnComplete: keepDone, removeOnFail: keepFailed)
            let backend = try BullMQBackend(redis: peer.endpoint, scripts: try BullMQPeer.scripts(), queues: ["q"], options: options, identity: "h:1:é")
            defer { backend.close() }
            for opts in jobOptions {
                for (attemptsMade, token) in [(0, "w:1"), (70_000, String(repeating: "t", count: 300))] {
                    let held = BullMQBackend.Held(
                        keys: BullMQKeys(prefix: peer.prefix, queue: "q"), id: "42", token: token, raw: [], opts: opts, attemptsMade: attemptsMade,
                        stacktrace: [], deferredFailure: nil)
                    for target in ["completed", "failed"] {
                        #expect(backend.finishOptions(held, target: target) == backend.finishOptionsMap(held, target: target), "\(opts) \(target)")
                    }
                }
            }
        }
    }

    /// A handler's `log` lines are the job's BullMQ log, as `getJobLogs` (and bull-board's Logs tab) read it; the
    /// job's `keepLogs` trims it, and a huge line is cut to 4 KB.
    @Test func handlerLogLinesAreTheJobsBullMQLog() async throws {
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        let ids = try peer.add("lg", [
            ["name": "test.log", "data": ["lines": 3]], ["name": "test.log", "data": ["lines": 5], "opts": ["keepLogs": 2]],
            ["name": "test.log", "data": ["lines": 1, "huge": true]],
        ])
        let worker = try ConveyorBullWorker(peer, queues: ["lg"], log: HandlerLog())
        try await eventually(20, "every job finished") { try await peer.command("ZCARD", "\(peer.prefix):lg:completed").int == 3 }
        try await worker.stop()
        let first = try peer.logs("lg", id: ids[0])
        #expect(first["logs"] == ["line 1", "line 2", "line 3"] && first["count"] == 3)
        let trimmed = try peer.logs("lg", id: ids[1])
        #expect(trimmed["logs"] == ["line 4", "line 5"] && trimmed["count"] == 2)
        let huge = try peer.logs("lg", id: ids[2])["logs"]?.arrayValue ?? []
        #expect(huge.count == 2 && huge[1].stringValue?.utf8.count == JobContext.maxLogLine - 3 + "…".utf8.count)
    }

    /// The same mix through BullMQ's own (Python) worker and through Conveyor ends in the same Redis state, modulo
    /// timestamps, tokens and worker names, with the same events in the same order per job.
    @Test func differentialAgainstBullMQsOwnWorker() async throws {
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        try peer.add("py", Self.mix)
        try peer.add("cv", Self.mix)
        try peer.work("py", count: 8)
        let log = HandlerLog()
        let worker = try ConveyorBullWorker(peer, queues: ["cv"], log: log, concurrency: 1)
        try await eventually(20, "the Conveyor run finished") {
            let completed = try await peer.command("ZCARD", "\(peer.prefix):cv:completed").int ?? 0
            let failed = try await peer.command("ZCARD", "\(peer.prefix):cv:failed").int ?? 0
            return completed == 5 && failed == 2
        }
        try await worker.stop()
        let python = try peer.state("py")
        let conveyor = try peer.state("cv")
        for part in ["completed", "failed", "delayed", "prioritized", "wait", "active", "locks"] {
            #expect(python[part] == conveyor[part], "\(part): python \(python[part] ?? .null) conveyor \(conveyor[part] ?? .null)")
        }
        for id in (python["jobs"]?.objectValue?.keys ?? []) {
            #expect(python["jobs", id] == conveyor["jobs", id], "job \(id): python \(python["jobs", id] ?? .null) conveyor \(conveyor["jobs", id] ?? .null)")
            #expect(python["events", id] == conveyor["events", id], "events of \(id)")
        }
        #expect(python["jobs"]?.objectValue?.keys.sorted() == conveyor["jobs"]?.objectValue?.keys.sorted())
    }

    /// A lock taken away mid-job (another worker, an operator, a stalled check after a long pause) cancels the handler
    /// within a second, and the outcome of the cancelled run is not written over the new lock holder's.
    @Test func aLockTakenAwayCancelsTheHandlerWithinASecond() async throws {
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        try peer.add("lk", [["name": "test.slow", "data": [:], "opts": ["attempts": 3]]])
        let log = HandlerLog()
        let worker = try ConveyorBullWorker(peer, queues: ["lk"], log: log)
        let jid = "\(peer.prefix):lk:1"
        try await eventually(10, "the job started") { log.started.withLock { $0.contains(jid) } }
        try await peer.command("SET", "\(jid):lock", "another-worker:1", "PX", 30000)
        let taken = ContinuousClock.now
        try await eventually(5, "the handler cancelled") { log.cancelledAt.withLock { $0[jid] != nil } }
        let after = log.cancelledAt.withLock { $0[jid]! } - taken
        #expect(after < .seconds(1), "cancelled \(after) after the lock was taken")
        try await worker.stop()
        // The other holder's lock stands, and the job is not failed or retried by the cancelled run.
        #expect(try await peer.command("GET", "\(jid):lock").text == "another-worker:1")
        #expect(try await peer.command("ZCARD", "\(peer.prefix):lk:failed").int == 0)
        #expect(try await peer.command("ZCARD", "\(peer.prefix):lk:delayed").int == 0)
        #expect(try await peer.command("HGET", jid, "atm").isNull)
    }

    /// An `every` job scheduler made by BullMQ's Queue keeps firing when Conveyor takes its jobs: each job taken creates
    /// the next iteration, as BullMQ's worker does.
    /// An `every` scheduler (the script computes the time) and cron patterns (Conveyor computes it: six fields with
    /// seconds first, and a zone) keep firing when Conveyor takes their jobs.
    @Test(arguments: [#"{"every": 300}"#, #"{"pattern": "* * * * * *"}"#, #"{"pattern": "*/1 * * * * *", "tz": "Europe/Berlin"}"#])
    func everySchedulerIsAdvancedByTheWorkerThatTakesItsJob(repeatOptions: String) async throws {
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        try BullMQPeer.run(["schedule", peer.url, peer.prefix, "sq", "tick", repeatOptions, "test.echo", #"{"k": 1}"#])
        let log = HandlerLog()
        let worker = try ConveyorBullWorker(peer, queues: ["sq"], log: log)
        try await eventually(20, "three iterations completed") {
            try await peer.command("ZCARD", "\(peer.prefix):sq:completed").int ?? 0 >= 3
        }
        try await worker.stop()
        let completed = try await peer.command("ZRANGE", "\(peer.prefix):sq:completed", 0, -1).array?.compactMap(\.text) ?? []
        #expect(completed.allSatisfy { $0.hasPrefix("repeat:tick:") }, "\(completed)")
        let iterations = try await peer.command("HGET", "\(peer.prefix):sq:repeat:tick", "ic").int ?? 0
        #expect(iterations >= 3)
        // The next iteration is waiting in the delayed set (or already due): the schedule did not stop.
        let pending = (try await peer.command("ZCARD", "\(peer.prefix):sq:delayed").int ?? 0) + (try await peer.command("LLEN", "\(peer.prefix):sq:wait").int ?? 0)
        // One iteration waits for its time; one taken when the worker stopped may be back in wait.
        #expect((1...2).contains(pending))
        #expect(try await peer.command("LLEN", "\(peer.prefix):sq:active").int == 0)
        let state = try peer.state("sq")
        for id in completed { #expect(state["jobs", id, "returnvalue"] == #"{"echo":{"k":1}}"#, "\(id)") }
        if repeatOptions.contains("pattern") {
            // Each iteration's time is a whole second (the pattern's), one after another.
            let times = completed.compactMap { Int($0.split(separator: ":").last ?? "") }.sorted()
            #expect(times.allSatisfy { $0 % 1000 == 0 }, "\(times)")
            #expect(Set(times).count == times.count)
        }
    }

    /// BullMQ's default repeat strategy for cron patterns: the next fire strictly after the later of now and the
    /// previous iteration, not before `startDate`, in `tz`; refused patterns give none.
    @Test func cronNextIsBullMQsDefaultRepeatStrategy() {
        let now = 1_796_601_600_500  // 2026-12-07T00:00:00.500Z
        #expect(BullMQBackend.cronNext(pattern: "* * * * * *", tz: nil, opts: [:], repeatOptions: [:], now: now) == 1_796_601_601_000)
        #expect(BullMQBackend.cronNext(pattern: "0 * * * *", tz: nil, opts: [:], repeatOptions: [:], now: now) == 1_796_605_200_000)
        // 09:30 in Berlin (UTC+1 in December) is 08:30Z.
        #expect(BullMQBackend.cronNext(pattern: "30 9 * * *", tz: "Europe/Berlin", opts: [:], repeatOptions: [:], now: now) == 1_796_632_200_000)
        #expect(BullMQBackend.cronNext(pattern: "0 * * * *", tz: nil, opts: ["prevMillis": JSONValue(1_796_605_200_000)], repeatOptions: [:], now: now)
                == 1_796_608_800_000)
        #expect(BullMQBackend.cronNext(pattern: "0 * * * *", tz: nil, opts: [:], repeatOptions: ["startDate": JSONValue(1_796_700_000_000)], now: now)
                == 1_796_702_400_000)
        for bad in ["0 0 L * *", "0 0 ? * 1#2", "61 * * * *", String(repeating: "*", count: 1000)] {
            #expect(BullMQBackend.cronNext(pattern: bad, tz: nil, opts: [:], repeatOptions: [:], now: now) == nil, "\(bad)")
        }
        #expect(BullMQBackend.cronNext(pattern: "* * * * *", tz: "Mars/Olympus", opts: [:], repeatOptions: [:], now: now) == nil)
        #expect(BullMQBackend.cronNext(pattern: "0 0 30 2 *", tz: nil, opts: [:], repeatOptions: [:], now: now) == nil, "never fires")
        #expect(BullMQBackend.cronNext(pattern: "* * * * *", tz: nil, opts: ["prevMillis": .number("1e400")], repeatOptions: [:], now: now) != nil)
    }

    /// A job BullMQ's stalled check marked (`defa`: stalled more than `maxStalledCount` times) fails without running,
    /// with BullMQ's reason, as BullMQ's worker fails it.
    @Test func aJobStalledTooOftenFailsWithoutRunning() async throws {
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        try peer.add("dq", [["name": "test.echo", "data": ["n": 1], "opts": ["attempts": 3]]])
        try await peer.command("HSET", "\(peer.prefix):dq:1", "defa", "job stalled more than allowable limit")
        let log = HandlerLog()
        let worker = try ConveyorBullWorker(peer, queues: ["dq"], log: log)
        try await eventually(20, "the job failed") {
            try await peer.command("ZCARD", "\(peer.prefix):dq:failed").int == 1
        }
        try await worker.stop()
        #expect(try peer.state("dq")["jobs", "1", "failedReason"] == "job stalled more than allowable limit")
        #expect(log.started.withLock { $0 }.isEmpty, "the handler never ran")
    }

    /// A three-child flow from BullMQ's FlowProducer: Conveyor runs the children, the last child's completion moves
    /// the parent out of waiting-children (BullMQ's moveToFinished does it), and Conveyor runs the parent.
    @Test func aFlowsChildrenThenItsParentRun() async throws {
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        let tree = #"{"name": "test.echo", "queueName": "fp", "data": {"role": "parent"}, "children": [{"name": "test.echo", "queueName": "fc", "data": {"c": 1}}, {"name": "test.echo", "queueName": "fc", "data": {"c": 2}}, {"name": "test.echo", "queueName": "fc", "data": {"c": 3}}]}"#
        let out = try BullMQPeer.run(["flow", peer.url, peer.prefix, "-", tree])
        let ids = try JSONValue(parsing: Array(out.utf8))
        let parent = try #require(ids["parent"]?.stringValue)
        #expect(try await peer.command("ZCARD", "\(peer.prefix):fp:waiting-children").int == 1)
        let log = HandlerLog()
        let worker = try ConveyorBullWorker(peer, queues: ["fp", "fc"], log: log)
        try await eventually(20, "the parent completed") {
            try await peer.command("ZSCORE", "\(peer.prefix):fp:completed", parent).isNull == false
        }
        try await worker.stop()
        #expect(try await peer.command("ZCARD", "\(peer.prefix):fc:completed").int == 3)
        #expect(try await peer.command("HLEN", "\(peer.prefix):fp:\(parent):processed").int == 3)
        let started = log.started.withLock { $0 }
        #expect(started.last == "\(peer.prefix):fp:\(parent)", "the parent runs after its children: \(started)")
    }

    /// The four failure policies of a flow's child, one flow each, a child failing for good beside one that succeeds:
    /// BullMQ's `moveToFinished` moves the parent, and Conveyor does what BullMQ's worker does with it.
    /// - `failParentOnFailure`: the parent fails with BullMQ's "child … failed" reason and never runs;
    /// - `continueParentOnFailure`, `ignoreDependencyOnFailure`: the parent runs, the failure kept in its `:failed` hash;
    /// - `removeDependencyOnFailure`: the parent runs, the failed child forgotten.
    @Test func aFailingChildMovesItsParentByItsPolicy() async throws {
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        var parents: [String: (parent: String, failing: String)] = [:]
        for policy in ["failParentOnFailure", "continueParentOnFailure", "ignoreDependencyOnFailure", "removeDependencyOnFailure"] {
            let tree: JSONValue = [
                "name": "test.echo", "queueName": "pp", "data": ["policy": .string(policy)],
                "children": [
                    ["name": "test.fail", "queueName": "pc", "data": ["permanent": true, "message": "bad input"], "opts": [policy: true]],
                    ["name": "test.echo", "queueName": "pc", "data": ["ok": true]],
                ],
            ]
            let out = try BullMQPeer.run(["flow", peer.url, peer.prefix, "-", tree.text])
            let ids = try JSONValue(parsing: Array(out.utf8))
            parents[policy] = (try #require(ids["parent"]?.stringValue), try #require(ids["children"]?[0]?.stringValue))
        }
        let log = HandlerLog()
        let worker = try ConveyorBullWorker(peer, queues: ["pp", "pc"], log: log)
        try await eventually(20, "every parent finished") {
            let done = try await peer.command("ZCARD", "\(peer.prefix):pp:completed").int ?? 0
            let failed = try await peer.command("ZCARD", "\(peer.prefix):pp:failed").int ?? 0
            return done + failed == 4
        }
        try await worker.stop()
        let started = log.started.withLock { $0 }
        func key(_ id: String, _ suffix: String = "") -> String { "\(peer.prefix):pp:\(id)\(suffix)" }
        let child = { (policy: String) in "\(peer.prefix):pc:\(parents[policy]!.failing)" }

        let fpof = parents["failParentOnFailure"]!.parent
        #expect(try await peer.command("ZSCORE", "\(peer.prefix):pp:failed", fpof).isNull == false)
        #expect(try await peer.command("HGET", key(fpof), "failedReason").text == "child \(child("failParentOnFailure")) failed")
        #expect(!started.contains(key(fpof)), "a parent failed by its child never runs")
        #expect(worker.outcomes[key(fpof)]?.failure?.errorClass == "BullMQChildFailed")

        for policy in ["continueParentOnFailure", "ignoreDependencyOnFailure"] {
            let parent = parents[policy]!.parent
            #expect(try await peer.command("ZSCORE", "\(peer.prefix):pp:completed", parent).isNull == false, "\(policy)")
            #expect(started.contains(key(parent)), "\(policy): the parent ran")
            #expect(try await peer.command("HGET", key(parent, ":failed"), child(policy)).text == "bad input", "\(policy)")
        }
        let rdof = parents["removeDependencyOnFailure"]!.parent
        #expect(try await peer.command("ZSCORE", "\(peer.prefix):pp:completed", rdof).isNull == false)
        #expect(started.contains(key(rdof)))
        #expect(try await peer.command("EXISTS", key(rdof, ":failed")).int == 0, "a removed dependency leaves no failure behind")
        #expect(try await peer.command("SCARD", key(rdof, ":dependencies")).int == 0)
        // Every failing child failed once, for good.
        for (policy, ids) in parents {
            #expect(try await peer.command("HGET", "\(peer.prefix):pc:\(ids.failing)", "atm").text == "1", "\(policy)")
        }
    }

    @Test func backoffAsBullMQComputesIt() {
        func d(_ b: JSONValue?, _ n: Int, _ r: Double = 0.5) -> Int? { try? BullMQBackoff.delay(b, attemptsMade: n, random: r).get() }
        #expect(d(nil, 1) == 0)
        #expect(d(1000, 3) == 1000)
        #expect(d(["type": "fixed", "delay": 500], 2) == 500)
        #expect(d(["type": "exponential", "delay": 1000], 1) == 1000)
        #expect(d(["type": "exponential", "delay": 1000], 4) == 8000)
        // Jitter: floor(random * raw * jitter + raw * (1 - jitter)).
        #expect(d(["type": "exponential", "delay": 1000, "jitter": 0.5], 2, 0) == 1000)
        #expect(d(["type": "exponential", "delay": 1000, "jitter": 0.5], 2, 0.999_999) == 1999)
        #expect(d(["type": "fixed", "delay": 1000, "jitter": 1], 1, 0) == 0)
        // Extremes saturate at ten years instead of trapping.
        #expect(d(["type": "exponential", "delay": 1e308], 5000) == BullMQBackoff.maxDelay)
        #expect(d(["type": "exponential", "delay": 1], Int.max) == BullMQBackoff.maxDelay)
        #expect(d(["type": "polynomial", "delay": 10], 3) == 90)
        #expect(d(["type": "linear", "delay": 10], 3) == 30)
        #expect((try? BullMQBackoff.delay(["type": "exponential", "delay": -1], attemptsMade: 1, random: 0).get()) == nil)
        #expect((try? BullMQBackoff.delay(["type": "custom"], attemptsMade: 1, random: 0).get()) == nil)
        #expect((try? BullMQBackoff.delay("soon", attemptsMade: 1, random: 0).get()) == nil)
    }

    @Test func queueAndPrefixNamesAreCheckedAtTheBorder() throws {
        let endpoint = try RedisEndpoint(url: "redis://127.0.0.1:1")
        let scripts = try BullMQPeer.scripts()
        for (queue, prefix) in [("", "bull"), ("a:b", "bull"), ("q", ""), ("q", "a:b"), (String(repeating: "q", count: 201), "bull"), ("q\n", "bull")] {
            #expect(throws: JobFailure.self) {
                try BullMQBackend(redis: endpoint, scripts: scripts, queues: [queue], options: BullMQOptions(prefix: prefix), identity: "t")
            }
        }
        #expect(BullMQBackend.keepJobs(.bool(true)) == .map([("count", .int(0))]))
        #expect(BullMQBackend.keepJobs(nil) == .map([("count", .int(-1))]))
        #expect(BullMQBackend.keepJobs(JSONValue(Int.max)) == .map([("count", .int(Int(Int32.max)))]))
        #expect(BullMQBackend.keepJobs(["age": 60]) == .map([("age", .int(60))]))
    }
}
