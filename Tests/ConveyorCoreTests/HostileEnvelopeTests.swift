import Foundation
import Redis
import Testing

@testable import ConveyorCore
import SidekiqQueue

/// Envelopes a hostile or careless producer writes: every number and string Conveyor reads is refused at parse when
/// out of range (`MalformedJob`, naming the field), and nothing computed from an accepted envelope can trap.
@Suite struct HostileEnvelopeTests {
    /// Numbers as JSON carries them (`1e400` parses to infinity, `1e-320` to a subnormal).
    static let extremeNumbers = [
        "0", "-1", "1", "-0", "0.5", "3.0", "9223372036854775807", "-9223372036854775808", "9223372036854775808",
        "1e308", "-1e308", "1e400", "-1e400", "1e19", "-1e19", "1796603000123456789", "1796603000123456", "1e-320",
        "1e11", "100000000001", "1e14", "100000000000001", "1e6", "1000000", "1000001", "999999", "1e15",
        "123456789012345678901234567890", "1" + String(repeating: "0", count: 400),
    ]
    static let extremeValues: [String] = extremeNumbers + [
        "true", "false", "null", "[]", "{}", "\"\"", "\"1\"", "\"\\u0000\"", "\"x\\ny\"",
        "\"" + String(repeating: "a", count: 257) + "\"", "\"" + String(repeating: "é", count: 40_000) + "\"",
        "\"" + String(repeating: "z", count: 1_000_000) + "\"",
    ]
    static let fields = [
        "class", "queue", "jid", "retry", "retry_count", "enqueued_at", "created_at", "at", "failed_at", "retried_at",
        "error_class", "error_message", "replayed_at", "unknown_field",
    ]

    /// A failure whose class (a long generic Swift type name, say) and message are longer than the envelope keeps.
    static let longFailure = JobFailure.transient(
        ErrorClass(rawValue: String(repeating: "Généric<", count: 100)), String(repeating: "ü", count: 100_000))

    static func envelope(_ field: String, _ literal: String) -> [UInt8] {
        var parts = [
            ("class", "\"noop\""), ("args", "[{}]"), ("queue", "\"default\""), ("jid", "\"0123456789abcdef01234567\""),
            ("retry", "true"), ("created_at", "1796603000.5"), ("enqueued_at", "1796603000.5"),
        ]
        parts.removeAll { $0.0 == field }
        parts.append((field, literal))
        return Array(("{" + parts.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}").utf8)
    }

    /// Every field × every extreme value: accepted with in-range values, or refused as `MalformedJob` naming the
    /// field; and everything the worker computes from an accepted job stays finite and in range.
    /// Seconds of CPU in a debug build: each case yields, so the cooperative pool's two threads still serve the
    /// timing-sensitive worker suites running beside it.
    @Test func extremeValuesInEveryFieldAreAcceptedInRangeOrRefused() async throws {
        let now = JobTime.now()
        let policies = [
            RetryPolicy.default, RetryPolicy(maxAttempts: Int.max), RetryPolicy(maxAttempts: Int.max, backoff: .exponential(base: 0, factor: 1e308)),
            RetryPolicy(maxAttempts: Int.max, backoff: .exponential(base: 1e308, factor: 1e308, cap: .infinity, jitter: 1)),
            RetryPolicy(maxAttempts: Int.min, backoff: .exponential(base: -1e308, factor: -1e308, cap: -.infinity, jitter: -5)),
        ]
        var accepted = 0
        var refused = 0
        for field in Self.fields {
            for literal in Self.extremeValues {
                await Task.yield()
                let raw = Self.envelope(field, literal)
                let job: Job
                do {
                    job = try Job(raw: raw, fetchedFrom: "default")
                } catch {
                    refused += 1
                    #expect(error.errorClass == "MalformedJob", "\(field)=\(literal.prefix(40))")
                    #expect(error.isPermanent)
                    #expect(error.message.contains("\"\(field)\""), "the message names the field: \(error.message.prefix(200))")
                    #expect(error.message.utf8.count < 400, "the message quotes the value cut: \(error.message.utf8.count) bytes")
                    continue
                }
                accepted += 1
                #expect(JobEnvelope.retryCountRange.contains(job.previousFailures - 1) || job.previousFailures == 0)
                #expect(job.jobClass.utf8.count <= JobEnvelope.maxNameBytes && job.queue.utf8.count <= JobEnvelope.maxNameBytes)
                #expect(job.jid.utf8.count <= 128)
                for t in [job.enqueuedAt, job.createdAt].compactMap({ $0 }) { #expect(t.isFinite && t >= 0 && t <= 1e11) }
                for name in JobEnvelope.timestampFields {
                    if let value = job.payload[name], value != .null { #expect(JobTime.seconds(value) != nil, "\(name) in range") }
                }
                for policy in policies {
                    for failure in [JobFailure.transient("Boom", "x"), .permanent("Bad", "y"), Self.longFailure] {
                        for random in [0, 0.5, 0.999_999_999, 1, -1, .nan, .infinity] {
                            let (payload, destination) = JobTransitions.failed(job, failure: failure, policy: policy, now: now, random: random)
                            if case .retry(let at) = destination {
                                #expect(at.isFinite && at >= now && at <= now + RetryPolicy.maxDelay, "\(field)=\(literal.prefix(40))")
                            }
                            #expect(payload["retry_count"]?.intValue != nil)
                            if random == 0 {
                                // What the worker writes back reads again as a job when it returns from the retry set.
                                #expect(throws: Never.self, "\(field)=\(literal.prefix(40))") { try Job(raw: payload.bytes) }
                            }
                            if random == 0 {
                                _ = JobTransitions.enqueued(payload, now: now).bytes
                                _ = JobTransitions.replayed(payload, queue: job.queue, resetAttempts: false, now: now).bytes
                            }
                        }
                    }
                    _ = JobTransitions.reaped(job, identity: "ghost", policy: policy, now: now)
                }
                _ = JobTime.value(now, like: job.payload)
                _ = JobTime.day(job.enqueuedAt ?? now)
            }
        }
        #expect(accepted > 100 && refused > 100, "both sides exercised: \(accepted) accepted, \(refused) refused")
    }

    /// The issue's examples, each refused with the field and its range named.
    @Test(arguments: [
        ("enqueued_at", "1796603000123456789", "milliseconds (at most 1e14)"),
        ("enqueued_at", "1e308", "milliseconds (at most 1e14)"),
        ("created_at", "-1", "not negative"),
        ("at", "1e400", "milliseconds (at most 1e14)"),
        ("retry", "9223372036854775807", "0...1000000"),
        ("retry", "2.5", "0...1000000"),
        ("retry", "\"5\"", "0...1000000"),
        ("retry_count", "9223372036854775807", "-1...1000000"),
        ("retry_count", "-2", "-1...1000000"),
        ("retry_count", "1000001", "-1...1000000"),
        ("class", "\"" + String(repeating: "x", count: 257) + "\"", "at most 256 bytes"),
        ("queue", "\"\"", "must not be empty"),
        ("queue", "7", "must be a string"),
        ("queue", "\"a\\nb\"", "must not contain control characters"),
        ("class", "\"noop\\u001b[2J\"", "must not contain control characters"),
        ("class", "\"noop\\u0085\"", "must not contain control characters"),
        ("error_message", "\"" + String(repeating: "m", count: 65_537) + "\"", "at most 65536 bytes"),
    ])
    func namedRefusals(field: String, literal: String, range: String) throws {
        #expect {
            try Job(raw: Self.envelope(field, literal))
        } throws: { error in
            guard let failure = error as? JobFailure else { return false }
            return failure.errorClass == "MalformedJob" && failure.message.hasPrefix("\"\(field)\" is ") && failure.message.contains(range)
        }
    }

    @Test func inRangeValuesStillParse() throws {
        for (field, literal) in [
            ("enqueued_at", "1796603000123"), ("enqueued_at", "1796603000.123"), ("enqueued_at", "0"), ("at", "1e14"),
            ("retry", "1000000"), ("retry", "0"), ("retry", "false"), ("retry", "null"), ("retry_count", "-1"),
            ("retry_count", "1000000"), ("retry_count", "3.0"), ("class", "\"" + String(repeating: "x", count: 256) + "\""),
        ] {
            _ = try Job(raw: Self.envelope(field, literal))
        }
    }

    /// The machine-readable contract states the same ranges as the code.
    @Test func theEnvelopeSchemaStatesTheseRanges() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Jobs/envelope.schema.json")
        let schema = try JSONValue(parsing: Array(try Data(contentsOf: url)))
        let properties = try #require(schema["properties"])
        #expect(properties["retry"]?["oneOf"]?[1]?["maximum"]?.intValue == JobEnvelope.retryRange.upperBound)
        #expect(properties["retry_count"]?["minimum"]?.intValue == JobEnvelope.retryCountRange.lowerBound)
        #expect(properties["retry_count"]?["maximum"]?.intValue == JobEnvelope.retryCountRange.upperBound)
        #expect(properties["class"]?["maxLength"]?.intValue == JobEnvelope.maxNameBytes)
        #expect(properties["queue"]?["maxLength"]?.intValue == JobEnvelope.maxNameBytes)
        #expect(properties["error_class"]?["maxLength"]?.intValue == JobEnvelope.maxErrorClassBytes)
        #expect(properties["error_message"]?["maxLength"]?.intValue == JobEnvelope.maxErrorMessageBytes)
        #expect(schema["$defs"]?["timestamp"]?["minimum"]?.doubleValue == JobEnvelope.timestampRange.lowerBound)
        #expect(schema["$defs"]?["timestamp"]?["maximum"]?.doubleValue == JobEnvelope.timestampRange.upperBound)
    }

    @Test func retryDelaySaturates() {
        let policies = [
            RetryPolicy.default, RetryPolicy(maxAttempts: 5, backoff: .exponential(base: 0, factor: 1e308)),
            RetryPolicy(maxAttempts: 5, backoff: .exponential(base: 1e308, factor: 1e308, cap: .infinity, jitter: 1e308)),
            RetryPolicy(maxAttempts: 5, backoff: .exponential(base: -1, factor: 2, cap: 10, jitter: 0.5)),
        ]
        for policy in policies {
            for count in [Int.min, -1, 0, 1, 55_108, 1_000_000, Int.max] {
                for random in [0, 0.5, 1, 2, -1, .nan, .infinity, -.infinity] {
                    let d = policy.delay(retryCount: count, random: random)
                    #expect(d.isFinite && d >= 0 && d <= RetryPolicy.maxDelay, "\(policy) \(count) \(random): \(d)")
                }
            }
        }
        #expect(RetryPolicy.default.delay(retryCount: 1_000_000, random: 0) == RetryPolicy.maxDelay)
        #expect(RetryPolicy.default.delay(retryCount: 3, random: 0) == 96, "Sidekiq's back-off below the cap")
        #expect(RetryPolicy.default.maxAttempts(jobRetryField: .number("9223372036854775807")) == Int.max)
    }

    @Test func timeConversionsNeverTrap() {
        for seconds in [0, -1, 1e308, -1e308, .infinity, -.infinity, .nan, 1e-320, 9.3e18, -9.3e18, 1796603000.5] {
            let day = JobTime.day(seconds)
            #expect(day.wholeMatch(of: /\d{4}-\d\d-\d\d/) != nil, "\(seconds): \(day)")
            _ = JobTime.value(seconds, like: ["created_at": 1796603000123])
            _ = JobTime.value(seconds, like: ["created_at": 1796603000.5])
        }
        #expect(JobTime.day(.nan) == "1970-01-01")
        #expect(JobTime.day(1e308) == JobTime.day(1e11))
        #expect(Saturating.int(.nan) == 0 && Saturating.int(1e19) == .max && Saturating.int(-1e19) == .min)
        #expect(Saturating.int(Double(Int.max)) == .max && Saturating.int(-9_223_372_036_854_775_808) == .min)
        #expect(Saturating.add(.max, 1) == .max && Saturating.add(.min, -1) == .min && Saturating.add(2, 3) == 5)
        #expect(Saturating.multiply(.max, 2) == .max && Saturating.multiply(.max, -2) == .min && Saturating.multiply(-3, 4) == -12)
    }

    @Test func queueWeightsCannotOverflow() throws {
        #expect(throws: JobFailure.self) { try QueueSelection(parsing: "a:9223372036854775807,b:1") }
        #expect(throws: JobFailure.self) { try QueueSelection(parsing: "a:1000001") }
        var g = SystemRandomNumberGenerator()
        #expect(try QueueSelection(parsing: "q:1000000,r:1000000").order(using: &g).count == 2)
    }

    /// A schedule time JSON cannot carry (infinity is written as null: the job would run now) or a worker would refuse
    /// is refused by the client before anything is pushed.
    @Test func theClientRefusesAScheduleTimeOutOfRange() async throws {
        let redis = try TestRedis()
        for at in [Double.infinity, -.infinity, .nan, 1e300, -1, 1e12] {
            await #expect(throws: JobFailure.self) { try await redis.client.enqueue("noop", at: at) }
        }
        #expect(try await redis.int("ZCARD", redis.keys.schedule) == 0)
        #expect(try await redis.int("LLEN", redis.keys.queue("default")) == 0)
        try await redis.client.enqueue("noop", at: JobTime.now() + 3600)
        #expect(try await redis.int("ZCARD", redis.keys.schedule) == 1)
        try await redis.clean()
    }

    @Test func deadSetLimitsCannotReachTheScriptOutOfRange() {
        #expect(DeadSetLimits(maxJobs: -5, maxAge: .nan) == DeadSetLimits(maxJobs: 0))
        #expect(DeadSetLimits(maxJobs: .max, maxAge: .infinity).maxAge == 1e11)
        #expect(DeadSetLimits(maxAge: -1e308).maxAge == 0)
    }

    // MARK: Through a real worker

    static let fastHeartbeat = ["--heartbeat-interval", "300ms", "--heartbeat-ttl", "2s", "--poll-interval", "200ms"]

    static func redisURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["REDIS_URL"] else { throw TestSetupError("REDIS_URL is not set") }
        return url
    }

    /// The poison envelopes that used to trap the worker (and with it every running job).
    static let poisons: [(field: String, json: String)] = [
        ("enqueued_at", #"{"class":"noop","args":[{}],"queue":"default","jid":"poison-nanoseconds","enqueued_at":1796603000123456789}"#),
        ("enqueued_at", #"{"class":"noop","args":[{}],"queue":"default","jid":"poison-1e308","enqueued_at":1e308}"#),
        ("retry", #"{"class":"sleep","args":[{"ms":-1}],"queue":"default","jid":"poison-retry","retry":9223372036854775807}"#),
        ("retry_count", #"{"class":"sleep","args":[{"ms":-1}],"queue":"default","jid":"poison-count","retry_count":9223372036854775807}"#),
        ("retry_count", #"{"class":"sleep","args":[{"ms":60000}],"queue":"default","jid":"poison-backoff","retry":1000000,"retry_count":100000000}"#),
    ]

    /// A long but in-range retry history with a transient failure: the back-off saturates instead of overflowing.
    static let longHistory =
        #"{"class":"sleep","args":[{"ms":60000}],"queue":"default","jid":"long-history","retry":1000000,"retry_count":999990}"#

    /// Checks the dead set holds each poison once, as `MalformedJob` naming its field, its bytes kept verbatim.
    static func expectPoisonsDead(_ redis: TestRedis) async throws {
        let dead = try await redis.jobs(inSet: redis.keys.dead)
        for (field, json) in poisons {
            let entry = dead.first { $0["raw"]?.stringValue == json }
            #expect(entry != nil, "\(json) is in the dead set with its bytes")
            #expect(entry?["error_class"] == "MalformedJob")
            #expect(entry?["error_message"]?.stringValue?.hasPrefix("\"\(field)\" is ") == true, "\(String(describing: entry?["error_message"]))")
        }
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["CONVEYOR_BIN"] != nil, "needs the conveyor binary"))
    func poisonEnvelopesGoDeadAndTheWorkerKeepsServing() async throws {
        let redis = try TestRedis()
        for (_, json) in Self.poisons + [("", Self.longHistory)] { try await redis.command("LPUSH", redis.keys.queue("default"), json) }
        // One more, due in the retry set: the promoter buries it instead of moving it.
        let dueRetry = #"{"class":"noop","args":[{}],"queue":"default","jid":"poison-due","retry_count":9223372036854775807}"#
        try await redis.command("ZADD", redis.keys.retry, JobTime.now() - 1, dueRetry)
        let worker = try WorkerProcess(
            redisURL: try Self.redisURL(), namespace: redis.namespace,
            arguments: ["--queues", "default", "--class-timeout", "sleep=200ms"] + Self.fastHeartbeat)
        try await eventually("poisons dead", timeout: .seconds(30)) { try await redis.int("ZCARD", redis.keys.dead) == Self.poisons.count + 1 }
        let promoted = try await redis.jobs(inSet: redis.keys.dead).first { $0["raw"]?.stringValue == dueRetry }
        #expect(promoted?["error_class"] == "MalformedJob")
        #expect(promoted?["error_message"]?.stringValue?.contains(#""retry_count" is 9223372036854775807"#) == true)
        let good = try await redis.client.enqueue("noop")
        try await eventually("the job after them served", timeout: .seconds(30)) { worker.succeeded.contains(good) }
        try await eventually("the long history retried", timeout: .seconds(30)) { try await redis.int("ZCARD", redis.keys.retry) == 1 }
        try await Self.expectPoisonsDead(redis)
        // Retry number 999,991: Sidekiq's back-off is 10¹⁹ s, which used to overflow; it saturates at ten years.
        let scored = try await redis.command("ZRANGE", redis.keys.retry, 0, -1, "WITHSCORES").array ?? []
        let at = Double(scored.last?.text ?? "") ?? 0
        #expect(abs(at - (JobTime.now() + RetryPolicy.maxDelay)) < 120, "retry score \(at)")
        #expect(worker.process.isRunning, "the worker survived every poison")
        #expect(try await worker.terminate() == 0)
        #expect(!worker.log.contains("Fatal error"))
        try await redis.clean()
    }

    /// A poison job in a dead worker's in-flight list is reaped to the dead set; the reaper and its peers live on.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["CONVEYOR_BIN"] != nil, "needs the conveyor binary"))
    func aWorkerThatReapsAPoisonJobSurvivesIt() async throws {
        let redis = try TestRedis()
        let ghost = "ghost-host:4242:deadbeef0000"
        let good = Job.envelope(jobClass: "noop", arguments: [:], queue: "default")
        try await redis.command("SADD", redis.keys.conveyorProcesses, ghost)
        for json in Self.poisons.map(\.json) + [Self.longHistory, String(decoding: good.bytes, as: UTF8.self)] {
            try await redis.command("LPUSH", redis.keys.inflight(ghost), json)
        }
        let args = ["--queues", "default", "--class-timeout", "sleep=200ms"] + Self.fastHeartbeat
        let a = try WorkerProcess(redisURL: try Self.redisURL(), namespace: redis.namespace, arguments: args)
        let b = try WorkerProcess(redisURL: try Self.redisURL(), namespace: redis.namespace, arguments: args)
        try await eventually("poisons reaped to dead", timeout: .seconds(30)) {
            try await redis.int("ZCARD", redis.keys.dead) == Self.poisons.count
        }
        try await eventually("the ghost forgotten", timeout: .seconds(30)) {
            let held = try await redis.int("EXISTS", redis.keys.inflight(ghost))
            let known = try await redis.int("SISMEMBER", redis.keys.conveyorProcesses, ghost)
            return held == 0 && known == 0
        }
        let goodJID = good["jid"]!.stringValue!
        try await eventually("the good job requeued and served", timeout: .seconds(30)) {
            a.succeeded.contains(goodJID) || b.succeeded.contains(goodJID)
        }
        try await eventually("the long history requeued, run and retried", timeout: .seconds(30)) {
            try await redis.int("ZCARD", redis.keys.retry) == 1
        }
        try await Self.expectPoisonsDead(redis)
        #expect(a.log.contains("reaped the jobs of a dead worker process") || b.log.contains("reaped the jobs of a dead worker process"))
        #expect(a.process.isRunning && b.process.isRunning, "both workers survived the reap")
        // A stop that does not exit 0 says why in its log (exit 75: completions not written by the deadline).
        let (codeA, codeB) = (try await a.terminate(), try await b.terminate())
        #expect(codeA == 0, "worker a exited \(codeA): \(a.log.suffix(3000))")
        #expect(codeB == 0, "worker b exited \(codeB): \(b.log.suffix(3000))")
        try await redis.clean()
    }

    /// SIGTERM with Redis gone: the finished job's completion cannot be written, and the stop still ends by its deadline
    /// (`--shutdown-timeout` + `Worker.stopWriteAllowance`), logs the count and exits 75; the job stays in flight.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["CONVEYOR_BIN"] != nil, "needs the conveyor binary"))
    func sigtermWithRedisGoneEndsByTheDeadline() async throws {
        let server = try PrivateRedis()
        let keys = QueueKeys(namespace: nil)
        let thread = RedisThread(try RedisEndpoint(url: server.url), name: "test-private-redis")
        defer { thread.stop() }
        let jid = try await JobClient(redis: thread, keys: keys).enqueue("sleep", arguments: ["ms": 1500])
        let worker = try WorkerProcess(
            redisURL: server.url, namespace: nil, arguments: ["--queues", "default", "--shutdown-timeout", "2s"] + Self.fastHeartbeat)
        try await eventually("the job running", timeout: .seconds(30)) {
            try await thread.run { c in
                var held = 0
                for list in try c.command("KEYS", keys.conveyor("inflight:*")).check().array ?? [] {
                    held += try c.command("LLEN", list.bytes ?? []).check().int ?? 0
                }
                return held
            } == 1
        }
        kill(server.pid!, SIGKILL)
        kill(worker.pid, SIGTERM)
        // Bounded wait: a stop that hangs fails here (and the worker is killed when the test lets go of it).
        try await eventually("the worker exits by the stop's deadline", timeout: .seconds(2) + Worker.stopWriteAllowance + .seconds(3)) {
            !worker.process.isRunning
        }
        try await worker.waitForExit()
        let status = worker.process.terminationStatus
        #expect(status == 75, "exit status \(status); log:\n\(worker.log.suffix(3000))")
        #expect(worker.log.contains("unwritten_completions=1"), "the count is logged")
        #expect(worker.log.contains("job succeeded") && worker.log.contains(jid), "the job finished before the stop gave up")
        // Redis back on its data: the job whose completion was dropped is still in flight, for a reaper to run again.
        try server.start()
        let c = try RedisConnection(RedisEndpoint(url: server.url))
        let lists = try c.command("KEYS", keys.conveyor("inflight:*")).check().array ?? []
        #expect(lists.count == 1)
        let held = try c.command("LRANGE", lists.first?.bytes ?? [], 0, -1).check().array ?? []
        #expect(held.count == 1 && held.first.flatMap(\.bytes).map { String(decoding: $0, as: UTF8.self).contains(jid) } == true)
    }
}
