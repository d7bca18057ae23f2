import ArgumentParser
import ConveyorCore
import SidekiqQueue
import Foundation
import Telemetry
import Operations
import Redis

struct EnqueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue", abstract: "Push one job onto its queue (or the schedule) and print its jid.")

    @Argument(help: "Job class, e.g. noop, sleep, image.thumbnail.")
    var jobClass: String

    @Option(help: "The job's argument object, as JSON.")
    var args: String = "{}"

    @Option(help: "Queue (default: the class's own queue).")
    var queue: String?

    @Option(name: .customLong("in"), help: "Run after this delay: 30s, 5m, 2h.")
    var delay: DurationArgument?

    @Option(help: "Run at this time: Unix seconds or ISO 8601 (2026-11-22T10:00:00Z).")
    var at: String?

    @Option(help: "Retries after the first run (Sidekiq's retry field); default: the class's policy.")
    var retry: Int?

    @Option(help: "Refuse the push while a job with the same unique key is held, and hold it this many seconds (1...2592000).")
    var uniqueFor: Int?

    @Option(help: "With --unique-for: the unique key (default: a digest of class, queue and arguments).")
    var uniqueKey: String?

    @Option(help: "With --unique-for: hold the key until the job starts or finishes (start|finish, default finish).")
    var uniqueUntil: String?

    @OptionGroup var redis: RedisOptions

    /// Exit status when `--unique-for` found the key held: the holder's jid is printed on standard error.
    static let duplicateExitCode: Int32 = 5

    /// The largest `--retry`: more retries than this is a mistake (Sidekiq's default is 25).
    static let maximumRetry = 10_000

    func validate() throws {
        if delay != nil && at != nil { throw ValidationError("use --in or --at, not both") }
        try Self.checkName(jobClass, "job class")
        if let queue { try Self.checkName(queue, "--queue") }
        try delay?.checked("--in", 0...OperatorInput.maximumDuration)
        if let at { _ = try Self.time(at) }
        if let retry, !(0...Self.maximumRetry).contains(retry) {
            throw ValidationError("--retry \(retry): expected a whole number in 0...\(Self.maximumRetry)")
        }
        if uniqueFor == nil && (uniqueKey != nil || uniqueUntil != nil) {
            throw ValidationError("--unique-key and --unique-until need --unique-for")
        }
        _ = try uniqueJob()
    }

    /// The job's uniqueness as the worker will read it from the envelope (the same checks, so a push the worker
    /// would refuse is refused here), or nil without `--unique-for`.
    func uniqueJob() throws -> UniqueJob? {
        guard let uniqueFor else { return nil }
        var fields = JSONObject([("unique_for", JSONValue(uniqueFor))])
        if let uniqueKey { fields["unique_key"] = .string(uniqueKey) }
        if let uniqueUntil { fields["unique_until"] = .string(uniqueUntil) }
        do { return try UniqueJob(payload: fields) } catch { throw ValidationError("--unique-for: \(error.message)") }
    }

    /// The longest class or queue name, in UTF-8 bytes: the worker's envelope check refuses longer ones.
    static let maximumNameBytes = 256

    /// A class or queue name a worker accepts: not empty, at most `maximumNameBytes` bytes, no spaces or control
    /// characters (a worker would refuse the job as malformed).
    static func checkName(_ name: String, _ what: String) throws {
        guard !name.isEmpty, name.utf8.count <= Self.maximumNameBytes,
            name.unicodeScalars.allSatisfy({ $0.value > 0x20 && !(0x7f...0x9f).contains($0.value) })
        else {
            throw ValidationError("\(what) \(name.debugDescription.prefix(80)): expected 1 to \(Self.maximumNameBytes) bytes without spaces or control characters")
        }
    }

    /// `--at`: Unix seconds or ISO 8601, from 1970 to 9999.
    static func time(_ text: String) throws -> Double {
        let seconds: Double
        if let n = Double(text) {
            seconds = n
        } else if let date = ISO8601DateFormatter().date(from: text) {
            seconds = date.timeIntervalSince1970
        } else {
            throw ValidationError("--at must be Unix seconds or ISO 8601, got \(text)")
        }
        guard seconds.isFinite, (0...OperatorInput.latestTime).contains(seconds) else {
            throw ValidationError("--at \(text): expected a time from 1970 to 9999 (Unix seconds or ISO 8601)")
        }
        return seconds
    }

    /// The trace this command runs in, when it runs in one: OpenTelemetry's environment carrier (`TRACEPARENT`,
    /// `TRACESTATE`, as a traced script or CI step exports them), written at the top of the job as the Sidekiq
    /// instrumentation writes it. A value that is not a W3C header is left out with a warning.
    static func traceFields(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> JSONObject {
        guard let parent = environment["TRACEPARENT"] else { return JSONObject() }
        var carrier: JSONObject = ["traceparent": .string(parent)]
        if let state = environment["TRACESTATE"] { carrier["tracestate"] = .string(state) }
        guard let context = JobTraceContext(payload: carrier), W3CTraceparent.isValid(context.traceparent) else {
            FileHandle.standardError.write(Data("conveyor: warning: TRACEPARENT is not a W3C traceparent; the job is enqueued without it\n".utf8))
            return JSONObject()
        }
        var fields: JSONObject = ["traceparent": .string(context.traceparent)]
        if let state = context.tracestate { fields["tracestate"] = .string(state) }
        return fields
    }

    func run() async throws {
        let value: JSONValue
        do { value = try JSONValue(parsing: args) } catch { throw ValidationError("--args is not JSON: \(error)") }
        guard case .object(let arguments) = value else { throw ValidationError("--args must be a JSON object") }
        let known = Composition.classQueues[jobClass]
        if known == nil {
            FileHandle.standardError.write(Data("conveyor: warning: this build has no handler for \(jobClass); enqueuing anyway\n".utf8))
        }
        var runAt: Double?
        if let delay { runAt = JobTime.now() + delay.seconds }
        if let at { runAt = try Self.time(at) }
        let settings = try redis.settings()
        let thread = RedisThread(try RedisOptions.endpoint(settings), name: "conveyor-enqueue")
        defer { thread.stop() }
        let client = JobClient(
            redis: thread, keys: RedisOptions.keys(settings), replicas: try ReplicaWait(settings: settings))
        if let unique = try uniqueJob() {
            guard runAt == nil else { throw ValidationError("--unique-for pushes to the queue now: not with --in or --at") }
            let queue = queue ?? known ?? "default"
            var payload = Job.envelope(jobClass: jobClass, arguments: arguments, queue: queue, retry: retry.map { JSONValue($0) })
            payload["unique_for"] = JSONValue(unique.seconds)
            if let key = unique.key { payload["unique_key"] = .string(key) }
            payload["unique_until"] = .string(unique.until.rawValue)
            for (key, value) in Self.traceFields() { payload[key] = value }
            let locks = RedisUniqueLocks(redis: thread, keys: client.keys)
            if let holder = try await locks.push(payload, unique: unique, jobClass: jobClass, queue: queue, arguments: arguments) {
                FileHandle.standardError.write(Data("conveyor: duplicate: a \(jobClass) job with this unique key is held by \(holder); not pushed\n".utf8))
                throw ExitCode(Self.duplicateExitCode)
            }
            print(payload["jid"]!.stringValue!)
            return
        }
        let jid = try await client.enqueue(
            jobClass, arguments: arguments, queue: queue ?? known ?? "default", at: runAt,
            retry: retry.map { JSONValue($0) }, fields: Self.traceFields())
        print(jid)
    }
}
