import Foundation
import Redis
import Synchronization
import Testing

@testable import ConveyorCore
import SidekiqQueue

/// The worker's contract, run over every backend (`BackendKind`: in memory, a single Redis in Sidekiq's layout, a Redis
/// Cluster in the cluster layout): fetch, ack, retries, dead set, priorities, limits, timeouts, shutdown, reaping. The
/// tests of what only Sidekiq's layout shows (its process hash, the bounded dead set) follow them.
@Suite struct WorkerTests {
    func registry(_ recorder: Recorder, _ extra: [JobClass] = []) -> JobRegistry {
        var registry = JobRegistry()
        BuiltinJobs.register(into: &registry)
        registry.register(
            JobClass(
                "record",
                handler: ClosureHandler { job in
                    recorder.start(job.jid, job.jobClass)
                    defer { recorder.end(job.jobClass) }
                    if let ms = job.arguments["ms"]?.intValue { try await Task.sleep(for: .milliseconds(ms)) }
                    return ["ok": true]
                }))
        for c in extra { registry.register(c) }
        return registry
    }

    @Test(arguments: BackendKind.available) func runsJobsAndAcksThem(_ kind: BackendKind) async throws {
        let world = try BackendWorld(kind)
        let recorder = Recorder()
        var jids: [String] = []
        for i in 0..<50 { jids.append(try await world.enqueue("record", arguments: ["n": JSONValue(i)])) }
        try await withWorker(world, registry: registry(recorder)) { worker in
            try await eventually("50 jobs processed") { try await world.processed() == 50 }
            #expect(Set(recorder.order) == Set(jids))
            #expect(try await world.queued().isEmpty)
            try await eventually("in-flight list empty") { try await world.inflight(worker.configuration.identity) == 0 }
            #expect(try await world.failed() == 0)
            if kind == .redis, let redis = world.redis {
                #expect(try await redis.int("GET", redis.keys.processed(day: JobTime.day(JobTime.now()))) == 50)
            }
        }
        try await world.clean()
    }

    @Test(arguments: BackendKind.available) func failingJobRetriesWithBackoffThenDies(_ kind: BackendKind) async throws {
        let world = try BackendWorld(kind)
        let calls = Mutex<[Double]>([])
        // A first retry a second away: long enough for the test to read it before the promoter takes it back, even on a busy machine.
        let policy = RetryPolicy(maxAttempts: 3, backoff: .exponential(base: 1, factor: 2, cap: 5, jitter: 0.25))
        let failing = JobClass(
            "flaky", retry: policy,
            handler: ClosureHandler { _ in
                calls.withLock { $0.append(JobTime.now()) }
                throw JobFailure.transient("UpstreamDown", "the upstream said no")
            })
        let jid = try await world.enqueue("flaky")
        try await withWorker(world, registry: registry(Recorder(), [failing])) { _ in
            // First failure: in the retry set, scored within the policy's bounds for retry 0.
            // Read once: the promoter takes the entry back out as soon as it is due (a few hundred ms).
            var seen: [(at: Double, job: JSONObject)] = []
            try await eventually("first failure in retry set") {
                seen = try await world.retries()
                return seen.count == 1
            }
            let first = calls.withLock { $0[0] }
            let (score, retried) = seen[0]
            let bounds = policy.delayBounds(retryCount: 0)
            #expect(score >= first + bounds.lowerBound - 0.05 && score <= first + bounds.upperBound + 0.2)
            #expect(retried["jid"]?.stringValue == jid)
            #expect(retried["retry_count"]?.intValue == 0)
            #expect(retried["error_class"]?.stringValue == "UpstreamDown")
            #expect(retried["failed_at"] != nil)

            try await eventually("dead after three runs") { try await world.dead().count == 1 }
            let times = calls.withLock { $0 }
            #expect(times.count == 3)
            // Each retry waited at least the lower bound of its backoff.
            #expect(times[1] - times[0] >= policy.delayBounds(retryCount: 0).lowerBound - 0.05)
            #expect(times[2] - times[1] >= policy.delayBounds(retryCount: 1).lowerBound - 0.05)
            let dead = try await world.dead()[0]
            #expect(dead["retry_count"]?.intValue == 2)
            #expect(dead["retried_at"] != nil)
            #expect(dead["error_message"]?.stringValue == "the upstream said no")
            #expect(try await world.retries().isEmpty)
            #expect(try await world.failed() == 3)
        }
        try await world.clean()
    }

    @Test(arguments: BackendKind.available) func permanentErrorsSkipRetries(_ kind: BackendKind) async throws {
        let world = try BackendWorld(kind)
        let calls = Atomic<Int>(0)
        let bad = JobClass(
            "picky",
            handler: ClosureHandler { job in
                calls.add(1, ordering: .relaxed)
                _ = try job.string("source")
                return nil
            })
        try await world.enqueue("picky", arguments: ["source": 42])
        try await withWorker(world, registry: registry(Recorder(), [bad])) { _ in
            try await eventually("dead") { try await world.dead().count == 1 }
            let dead = try await world.dead()[0]
            #expect(dead["error_class"]?.stringValue == "InvalidArguments")
            #expect(dead["error_message"]?.stringValue == "source must be a string, got number")
            #expect(calls.load(ordering: .relaxed) == 1)
            #expect(try await world.retries().isEmpty)
        }
        try await world.clean()
    }

    @Test(arguments: BackendKind.available) func garbageAndUnknownClassesLandInDeadWithTheirBytes(_ kind: BackendKind) async throws {
        let world = try BackendWorld(kind)
        try await world.push(raw: Array("not json at all {".utf8))
        try await world.push(raw: [0xFF, 0xFE, 0x00, 0x41])
        try await world.push(raw: Array(#"{"args":[]}"#.utf8))
        try await world.push(raw: Array(#"{"class":"noop","args":"nope"}"#.utf8))
        try await world.push(raw: Array(#"{"class":"noop","args":[1,2]}"#.utf8))
        let unknown = try await world.enqueue("does.not.exist")
        try await world.enqueue("noop")
        try await withWorker(world, registry: registry(Recorder())) { _ in
            try await eventually("6 dead") { try await world.dead().count == 6 }
            try await eventually("noop ran") { try await world.processed() == 7 }
            let dead = try await world.dead()
            let byRaw = Dictionary(dead.compactMap { d in d["raw"]?.stringValue.map { ($0, d) } }, uniquingKeysWith: { a, _ in a })
            #expect(byRaw["not json at all {"]?["error_class"]?.stringValue == "MalformedJob")
            #expect(byRaw[#"{"args":[]}"#]?["error_message"]?.stringValue == #"payload has no "class" string"#)
            #expect(byRaw[#"{"class":"noop","args":"nope"}"#]?["error_message"]?.stringValue == "args must be an array, got string")
            #expect(byRaw[#"{"class":"noop","args":[1,2]}"#]?["error_class"]?.stringValue == "InvalidArguments")
            #expect(dead.contains { $0["raw_base64"]?.stringValue == "//4AQQ==" })
            let lost = try #require(dead.first { $0["jid"]?.stringValue == unknown })
            #expect(lost["error_class"]?.stringValue == "UnknownJobClass")
            #expect(lost["class"]?.stringValue == "does.not.exist")
        }
        try await world.clean()
    }

    /// A job without a usable jid gets one before it runs: its payload is rewritten in the in-flight store, and the
    /// receipt of the rewritten payload is the one its ack carries.
    @Test(arguments: BackendKind.available) func aJobWithoutAJidGetsOneAndIsAckedByItsNewReceipt(_ kind: BackendKind) async throws {
        let world = try BackendWorld(kind)
        let recorder = Recorder()
        try await world.push(raw: Array(#"{"class":"record","args":[],"queue":"default"}"#.utf8))
        try await world.push(raw: Array(#"{"class":"record","args":[],"queue":"default","jid":""}"#.utf8))
        try await withWorker(world, registry: registry(recorder)) { worker in
            try await eventually("both ran") { try await world.processed() == 2 }
            #expect(Set(recorder.order).count == 2 && recorder.order.allSatisfy { $0.utf8.count == 24 }, "\(recorder.order)")
            try await eventually("nothing left in flight") { try await world.inflight(worker.configuration.identity) == 0 }
            #expect(try await world.queued().isEmpty)
        }
        try await world.clean()
    }

    @Test(arguments: BackendKind.available) func scheduledJobsRunWhenDue(_ kind: BackendKind) async throws {
        let world = try BackendWorld(kind)
        let recorder = Recorder()
        let at = JobTime.now() + 1.0
        let jid = try await world.enqueue("record", at: at)
        #expect(try await world.scheduled() == 1)
        try await withWorker(world, registry: registry(recorder)) { _ in
            try await eventually("scheduled job ran") { !recorder.starts(jid).isEmpty }
            #expect(recorder.starts(jid)[0] >= at)
            #expect(try await world.scheduled() == 0)
        }
        try await world.clean()
    }

    @Test(arguments: BackendKind.available) func strictPriorityDrainsHigherQueuesFirst(_ kind: BackendKind) async throws {
        let world = try BackendWorld(kind)
        let recorder = Recorder()
        var low: [String] = []
        var critical: [String] = []
        for _ in 0..<20 { low.append(try await world.enqueue("record", queue: "low")) }
        for _ in 0..<20 { critical.append(try await world.enqueue("record", queue: "critical")) }
        try await withWorker(world, registry: registry(recorder), queues: "critical,default,low", concurrency: 1) { _ in
            // Forty jobs one at a time beside the target's other workers: on a loaded two-core machine a job's round
            // trip reaches a quarter of a second. The order is what is asserted, not the speed.
            try await eventually("all ran", timeout: .seconds(90)) { recorder.order.count == 40 }
            #expect(Set(recorder.order.prefix(20)) == Set(critical))
            #expect(Array(recorder.order.prefix(20)) == critical, "FIFO within a queue")
        }
        try await world.clean()
    }

    @Test func weightedOrderFollowsWeights() throws {
        let selection = try QueueSelection(parsing: "critical:6,default:3,low:1")
        #expect(selection.mode == .weighted)
        var g = SystemRandomNumberGenerator()
        var firsts: [String: Int] = [:]
        for _ in 0..<10_000 {
            let order = selection.order(using: &g)
            #expect(Set(order) == ["critical", "default", "low"])
            firsts[order[0], default: 0] += 1
        }
        #expect((5_600...6_400).contains(firsts["critical"]!))
        #expect((2_600...3_400).contains(firsts["default"]!))
        #expect((700...1_300).contains(firsts["low"]!))
        #expect(try QueueSelection(parsing: "a,b").order(using: &g) == ["a", "b"])
        #expect(throws: JobFailure.self) { try QueueSelection(parsing: "a:0") }
        #expect(throws: JobFailure.self) { try QueueSelection(parsing: "a,a") }
    }

    @Test(arguments: BackendKind.available) func perClassConcurrencyLimitLetsOtherClassesRun(_ kind: BackendKind) async throws {
        let world = try BackendWorld(kind)
        let recorder = Recorder()
        let gate = AsyncEvent()
        let slow = JobClass(
            "slow", concurrency: 1,
            handler: ClosureHandler { job in
                recorder.start(job.jid, job.jobClass)
                defer { recorder.end(job.jobClass) }
                await gate.wait()
                return nil
            })
        for _ in 0..<5 { try await world.enqueue("slow") }
        var fast: [String] = []
        for _ in 0..<30 { fast.append(try await world.enqueue("record", arguments: ["ms": 50])) }
        try await withWorker(world, registry: registry(recorder, [slow]), concurrency: 8) { _ in
            // Every fast job finishes while the one running slow job holds its class's only slot.
            try await eventually("fast jobs done while slow blocked") { Set(recorder.order).isSuperset(of: fast) }
            #expect(recorder.running("slow") == 1)
            gate.set()
            try await eventually("all done") { try await world.processed() == 35 }
            #expect(recorder.maxRunning("slow") == 1)
            #expect(recorder.maxRunning("record") > 1)
        }
        try await world.clean()
    }

    @Test(arguments: BackendKind.available) func hardTimeoutStopsAJobThatIgnoresCancellation(_ kind: BackendKind) async throws {
        let world = try BackendWorld(kind)
        let handlerReturned = Atomic<Bool>(false)
        let stuck = JobClass(
            "stuck", retry: RetryPolicy(maxAttempts: 1), timeout: .milliseconds(300),
            handler: ClosureHandler { _ in
                // Ignores cancellation, like a blocking native call without a deadline.
                try await BlockingPool.shared.run { Thread.sleep(forTimeInterval: 15) }
                handlerReturned.store(true, ordering: .sequentiallyConsistent)
                return nil
            })
        try await world.enqueue("stuck")
        try await world.enqueue("noop")
        try await withWorker(world, registry: registry(Recorder(), [stuck]), concurrency: 1) { _ in
            try await eventually("timed out into dead") { try await world.dead().count == 1 }
            let returnedBeforeDeadline = handlerReturned.load(ordering: .sequentiallyConsistent)
            #expect(!returnedBeforeDeadline, "failed at its deadline, not when the handler returned")
            let dead = try await world.dead()[0]
            #expect(dead["error_class"]?.stringValue == "JobTimeout")
            // Its slot went to the next job while the stuck handler still runs.
            try await eventually("next job ran") { try await world.processed() == 2 }
            let returnedBeforeNext = handlerReturned.load(ordering: .sequentiallyConsistent)
            #expect(!returnedBeforeNext)
        }
        try await world.clean()
    }

    @Test(arguments: BackendKind.available) func shutdownPushesUnfinishedJobsBackWithoutSpendingAnAttempt(_ kind: BackendKind) async throws {
        let world = try BackendWorld(kind)
        let recorder = Recorder()
        let long = try await world.enqueue("sleep", arguments: ["ms": 30_000])
        let short = try await world.enqueue("record", arguments: ["ms": 300])
        let identity = WorkerConfiguration.newIdentity()
        try await withWorker(world, registry: registry(recorder), concurrency: 4, shutdownTimeout: .seconds(2), identity: identity) { _ in
            try await eventually("both started") { try await world.inflight(identity) == 2 && !recorder.starts(short).isEmpty }
        }
        // run() returned: the short job finished during the drain, the long one is back at the head of its queue.
        let queued = try await world.queued()
        #expect(queued.count == 1)
        #expect(queued[0]["jid"]?.stringValue == long)
        #expect(queued[0]["retry_count"] == nil)
        #expect(try await world.processed() == 1)
        #expect(try await world.inflight(identity) == 0)
        #expect(try await !world.knows(process: identity))
        if let redis = world.redis {
            #expect(try await redis.int("SISMEMBER", redis.keys.processes, identity) == 0)
            #expect(try await redis.int("EXISTS", redis.keys.heartbeat(identity)) == 0)
        }
        try await world.clean()
    }

    @Test(arguments: BackendKind.available) func reaperReturnsADeadProcessesJobsCountingAnAttempt(_ kind: BackendKind) async throws {
        let world = try BackendWorld(kind)
        let recorder = Recorder()
        // A process that died: registered, in-flight jobs, no heartbeat.
        let ghost = "ghost:1:\(Job.newJID().prefix(6))"
        let lost = Job.envelope(jobClass: "record", arguments: [:], queue: "default")
        var poisoned = Job.envelope(jobClass: "record", arguments: [:], queue: "low")
        poisoned["retry_count"] = 1  // two runs already lost: the third loss is the last
        try await world.plantDeadProcess(ghost, holding: [lost, poisoned])
        try await withWorker(world, registry: registry(recorder), queues: "default,low") { _ in
            try await eventually("lost job ran again") { !recorder.starts(lost["jid"]!.stringValue!).isEmpty }
            try await eventually("poison pill dead") { try await world.dead().count == 1 }
            let dead = try await world.dead()[0]
            #expect(dead["jid"] == poisoned["jid"])
            #expect(dead["error_class"]?.stringValue == "WorkerLost")
            #expect(dead["retry_count"]?.intValue == 2)
            #expect(recorder.starts(poisoned["jid"]!.stringValue!).isEmpty)
            #expect(try await world.inflight(ghost) == 0)
            try await eventually("the ghost forgotten") { try await !world.knows(process: ghost) }
        }
        try await world.clean()
    }

    /// Fetches whose reply is lost after the backend applied them (a connection cut mid-reply) leave jobs in the
    /// in-flight store that nobody runs: the worker returns them to their queues by their receipts and each runs once.
    @Test(arguments: BackendKind.available) func jobsOfAFetchWhoseReplyWasLostRunOnce(_ kind: BackendKind) async throws {
        let world = try BackendWorld(kind)
        let recorder = Recorder()
        var jids: [String] = []
        for i in 0..<20 { jids.append(try await world.enqueue("record", arguments: ["n": JSONValue(i)], queue: i % 2 == 0 ? "default" : "low")) }
        let configuration = WorkerConfiguration(
            queues: try QueueSelection(parsing: "default,low"), concurrency: 4, heartbeatInterval: .milliseconds(200),
            pollInterval: .milliseconds(50))
        let backend = LosingFetchReplies(world.backend(configuration), losing: 2)
        let worker = Worker(backend: backend, registry: registry(recorder), configuration: configuration)
        let running = Task { try await worker.run() }
        defer { worker.shutdown() }
        try await eventually("20 jobs processed") { try await world.processed() == 20 }
        #expect(backend.lost.load(ordering: .relaxed) == 2)
        #expect(recorder.order.count == 20 && Set(recorder.order) == Set(jids), "each job ran once")
        try await eventually("nothing left in flight") { try await world.inflight(configuration.identity) == 0 }
        worker.shutdown()
        try await running.value
        try await world.clean()
    }

    // MARK: Sidekiq's layout only

    @Test func deadSetIsBoundedLikeSidekiqs() async throws {
        let redis = try TestRedis()
        var jids: [String] = []
        for _ in 0..<8 { jids.append(try await redis.client.enqueue("does.not.exist")) }
        try await withWorker(redis, registry: registry(Recorder()), concurrency: 1, deadSet: DeadSetLimits(maxJobs: 3)) { _ in
            try await eventually("all eight failed") { try await redis.int("GET", redis.keys.failed) == 8 }
            try await eventually("acks written") { try await redis.int("LLEN", redis.keys.queue("default")) == 0 }
            #expect(try await redis.int("ZCARD", redis.keys.dead) == 3)
        }
        try await redis.clean()
    }

    @Test func heartbeatPublishesSidekiqProcessInfo() async throws {
        let redis = try TestRedis()
        let identity = WorkerConfiguration.newIdentity()
        try await withWorker(redis, registry: registry(Recorder()), queues: "critical,default", concurrency: 7, identity: identity) { _ in
            try await eventually("registered") { try await redis.int("SISMEMBER", redis.keys.processes, identity) == 1 }
            let info = try await redis.command("HGET", redis.keys.process(identity), "info")
            let parsed = try JSONValue(parsing: info.bytes!)
            #expect(parsed["concurrency"]?.intValue == 7)
            #expect(parsed["queues"] == ["critical", "default"])
            #expect(parsed["identity"]?.stringValue == identity)
            #expect(try await redis.int("TTL", redis.keys.heartbeat(identity)) > 0)
            // Sidekiq's Web UI "quiet" signal stops fetching.
            try await redis.command("LPUSH", redis.keys.signals(identity), "TSTP")
            try await eventually("quiet") { try await redis.command("HGET", redis.keys.process(identity), "quiet").text == "true" }
        }
        try await redis.clean()
    }
}

/// A backend whose first `losing` non-empty fetches apply and then fail, as when the connection drops with the reply.
final class LosingFetchReplies: QueueBackend {
    struct ReplyLost: Error {}
    let inner: any QueueBackend
    let losing: Int
    let lost = Atomic<Int>(0)

    init(_ inner: any QueueBackend, losing: Int) {
        self.inner = inner
        self.losing = losing
    }

    var identity: String { inner.identity }
    var journalName: String { inner.journalName }

    func fetch(from order: [String], count: Int) async throws -> [FetchedJob] {
        let jobs = try await inner.fetch(from: order, count: count)
        if !jobs.isEmpty, lost.load(ordering: .relaxed) < losing {
            lost.add(1, ordering: .relaxed)
            throw ReplyLost()
        }
        return jobs
    }

    func waitForJob(on queue: String, timeout: Double) async throws -> FetchedJob? { try await inner.waitForJob(on: queue, timeout: timeout) }
    func complete(_ moves: [JobTransitions.Move], batch: UInt64, resent: Bool) async throws -> Bool {
        try await inner.complete(moves, batch: batch, resent: resent)
    }
    func apply(_ moves: [JobTransitions.Move], fromInflightOf process: String, journalField: String) async throws -> [Bool] {
        try await inner.apply(moves, fromInflightOf: process, journalField: journalField)
    }
    func journal(for receipt: DeliveryReceipt) -> String { inner.journal(for: receipt) }
    func inflightJobs(of process: String, limit: Int?) async throws -> [FetchedJob] { try await inner.inflightJobs(of: process, limit: limit) }
    func heartbeat(_ beat: ProcessBeat) async throws -> ProcessSignal? { try await inner.heartbeat(beat) }
    func deadProcesses() async throws -> [String] { try await inner.deadProcesses() }
    func claim(deadProcess process: String) async throws -> Bool { try await inner.claim(deadProcess: process) }
    func forget(deadProcess process: String) async throws { try await inner.forget(deadProcess: process) }
    func deregister() async throws { try await inner.deregister() }
    func promoteDueJobs() async throws { try await inner.promoteDueJobs() }
    func close() { inner.close() }
}
