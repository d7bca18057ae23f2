public import ConveyorCore
import Digest
import Foundation
public import Logging
import Schedules
public import Redis
import Synchronization

/// A queue backend over BullMQ queues, running BullMQ's own Lua scripts (`BullMQScripts`), so a BullMQ producer,
/// `QueueEvents` listeners and bull-board see a Conveyor worker as a BullMQ worker.
///
/// A fetched job (`moveToActive`, with the marker wait when idle) reaches the worker as a Sidekiq-shaped envelope:
/// `class` is the BullMQ job's `name`, `args` its `data`, `jid` `<prefix>:<queue>:<id>`, `retry` its `attempts` - 1 and
/// `retry_count` its `attemptsMade` - 1, so the worker's retry-or-dead decision is BullMQ's (`attemptsMade + 1 <
/// attempts`, a permanent failure ending it at once as `UnrecoverableError` does). This backend then applies it as
/// BullMQ's worker does: `moveToFinished` (completed with `returnvalue`, or failed with `failedReason` and
/// `stacktrace`), or a retry with the job's own back-off (`moveToDelayed` / `retryJob`). Locks are renewed with
/// `extendLocks`, checked twice a second, and a job whose lock is lost has its handler cancelled (`BullMQHandlers`);
/// the queue's shared stalled check (`moveStalledJobsToWait`) runs every `stalledInterval`.
public final class BullMQBackend: QueueBackend {
    public let identity: String
    public let options: BullMQOptions
    public let scripts: BullMQScripts
    public var journalName: String { journal ?? "conveyor:outcomes:\(identity)" }

    /// A BullMQ batch's entries go to the batch's field plus `b` (see `journalField(_:)`).
    public func journalField(_ batchField: String, for receipt: DeliveryReceipt) -> String { Self.journalField(batchField) }
    /// The queues served, by name.
    public let queues: [String: BullMQKeys]
    /// This worker's id in its lock tokens (`<workerId>:<n>`, as BullMQ's worker writes them).
    public let workerID: String
    /// `moveToActive`'s options without their token, encoded once: the map's header and `token` key, then what follows
    /// the token (`lockDuration`, `name`). Byte for byte what encoding the whole map gives (`activeOptions(token:)`).
    private let heads: [String: CallHeads]
    private let finishOptionsParts: FinishOptionsParts
    /// `keepJobs` for a job that sets none: the worker's keep settings, encoded once.
    private let defaultKeepCompleted: [UInt8]
    private let defaultKeepFailed: [UInt8]
    private let activeOptionsHead: [UInt8]
    private let activeOptionsTail: [UInt8]

    private let logger: Logger
    private let endpoint: RedisEndpoint
    private let fetchRedis: RedisThread
    private let ackRedis: RedisThread
    private let lockRedis: RedisThread
    private let waiters = Mutex<[String: RedisThread]>([:])
    /// The process's outcome journal (the Sidekiq side's hash, on the same Redis): a batch's entries go to its field
    /// plus `b` (`journalField`) in the transaction that runs the batch's scripts. Nil: outcomes are not journaled.
    let journal: String?
    /// Served queues with a global concurrency (`readGlobalConcurrency`).
    private let cappedQueues = Mutex<Set<String>>([])
    /// The worker's way to stop a running job (`setJobStopper`).
    private let stopper = Mutex<(@Sendable (String, JobFailure) -> Void)?>(nil)
    private let tokenCounter = Atomic<UInt64>(0)
    private let state = Mutex(State())
    private let maintenance = Mutex<Task<Void, Never>?>(nil)
    private let lockOutage = OutageLog("renewing BullMQ job locks")
    /// Next iterations of `every` job schedulers to create, for jobs just taken.
    private let pendingIterations = Mutex<[RedisCommand]>([])
    /// Job schedulers already reported as not advanced by this worker.
    private let unadvancedSchedulers = Mutex<Set<String>>([])

    /// A job this process holds: what its outcome's script needs, and who to tell when its lock is lost.
    struct Held: Sendable {
        var keys: BullMQKeys
        var id: String
        var token: String
        var raw: [UInt8]
        var opts: JSONObject
        var attemptsMade: Int
        var stacktrace: [JSONValue]
        var deferredFailure: String?
        var lost = false
        /// Its outcome's script is on its way: the script itself releases the lock, so the lock checks leave it
        /// alone (a check that read the lock gone after the script ran would call a finished job lost).
        var finishing = false
        var result: JSONValue?
    }

    struct State {
        var held: [String: Held] = [:]
        /// When each queue's next delayed job is due (Unix ms), from `moveToActive`'s reply or the marker.
        var nextDelayed: [String: Int] = [:]
    }

    /// - Parameter queues: the BullMQ queue names this process serves (each checked by `BullMQOptions.validate`).
    public init(
        redis endpoint: RedisEndpoint, scripts: BullMQScripts, queues: [String], options: BullMQOptions = BullMQOptions(), identity: String,
        journal: String? = nil, logger: Logger = Logger(label: "conveyor.bullmq")
    ) throws(JobFailure) {
        self.journal = journal
        try BullMQOptions.validate(name: options.prefix, as: "prefix")
        var keys: [String: BullMQKeys] = [:]
        for queue in queues {
            try BullMQOptions.validate(name: queue, as: "queue name")
            keys[queue] = BullMQKeys(prefix: options.prefix, queue: queue)
        }
        self.endpoint = endpoint
        self.scripts = scripts
        self.options = options
        self.queues = keys
        self.identity = identity
        self.logger = logger
        self.workerID = Job.newJID() + Job.newJID().prefix(8)
        // A fixmap's header is one byte: the pairs after it can be cut out of a smaller map's encoding.
        var rest: [(String, MessagePack)] = [("lockDuration", .int(options.lockDuration)), ("name", .string(identity))]
        if let limiter = options.limiter {
            rest.append(("limiter", .map([("max", .int(limiter.max)), ("duration", .int(limiter.duration))])))
        }
        let key = MessagePack.map([("token", .string(""))]).encoded()
        activeOptionsHead = [0x80 | UInt8(1 + rest.count)] + key.dropFirst().dropLast()
        activeOptionsTail = Array(MessagePack.map(rest).encoded().dropFirst())
        heads = keys.mapValues { CallHeads($0, scripts: scripts) }
        finishOptionsParts = FinishOptionsParts(lockDuration: options.lockDuration, identity: identity)
        defaultKeepCompleted = Self.keepJobs(options.removeOnComplete).encoded()
        defaultKeepFailed = Self.keepJobs(options.removeOnFail).encoded()
        fetchRedis = RedisThread(endpoint, name: "conveyor-bullmq-fetch")
        ackRedis = RedisThread(endpoint, name: "conveyor-bullmq-ack")
        lockRedis = RedisThread(endpoint, name: "conveyor-bullmq-locks")
    }

    deinit { close() }

    public func close() {
        maintenance.withLock { task in
            task?.cancel()
            task = nil
        }
        fetchRedis.stop()
        ackRedis.stop()
        lockRedis.stop()
        let all = waiters.withLock { w in
            defer { w.removeAll() }
            return Array(w.values)
        }
        for redis in all { redis.stop() }
    }

    /// Starts lock renewal and the stalled check (once; the first fetch does it too).
    public func start() {
        maintenance.withLock { task in
            guard task == nil else { return }
            task = Task.detached { [weak self] in await self?.maintain() }
        }
    }

    /// Checks that every served queue is a BullMQ queue: an old Bull (v3/v4) queue has `meta-paused` or a `priority`
    /// set and no events stream, and uses another protocol.
    public func checkQueues() async throws {
        let keys = Array(queues.values)
        let replies = try await fetchRedis.run { connection in
            try connection.pipeline(keys.flatMap { k in
                [RedisCommand("EXISTS", k.key("meta-paused")), RedisCommand("TYPE", k.key("priority")), RedisCommand("EXISTS", k.events),
                 RedisCommand("TYPE", k.key("wait"))]
            })
        }
        for (i, k) in keys.enumerated() {
            let metaPaused = try replies[4 * i].check().int ?? 0
            let priority = try replies[4 * i + 1].check().text ?? "none"
            let events = try replies[4 * i + 2].check().int ?? 0
            let wait = try replies[4 * i + 3].check().text ?? "none"
            if events == 0 && (metaPaused == 1 || priority == "zset" || wait == "list") && (metaPaused == 1 || priority == "zset") {
                throw JobFailure.permanent(
                    .invalidConfiguration,
                    "queue \(k.queue) under prefix \(k.prefix) is an old Bull (v3/v4) queue (\(metaPaused == 1 ? "meta-paused" : "priority set"), no events stream): Conveyor runs BullMQ's protocol only; move its producers to BullMQ (https://docs.bullmq.io/guide/migrations/bull-to-bullmq)")
            }
        }
    }

    // MARK: Jobs held

    /// The reason BullMQ's stalled check gave to fail `jid` without running it (`defa`), if any.
    public func deferredFailure(jid: String) -> String? { state.withLock { $0.held[jid]?.deferredFailure } }

    /// Keeps a handler's result as the job's `returnvalue`.
    public func recordResult(_ value: JSONValue, jid: String) {
        state.withLock { s in s.held[jid]?.result = value }
    }

    /// BullMQ's own progress for a job this process holds: `updateProgress` (the job hash's `progress` field and a
    /// `progress` event on the queue's stream, what `job.progress`, QueueEvents and bull-board read), with the percent
    /// as a number; the detail stays in Conveyor's hash. False when `jid` is not a BullMQ job held here.
    public func writeBullMQProgress(jid: String, fields: [(String, String)]) async throws -> Bool {
        guard let held = state.withLock({ $0.held[jid] }) else { return false }
        guard let text = fields.first(where: { $0.0 == "progress" })?.1, let percent = Double(text), percent.isFinite else { return true }
        let command = scripts.command(
            .updateProgress, keys: [held.keys.job(held.id), held.keys.events, held.keys.meta], arguments: [held.id, JSONValue(percent).text])
        let scripts = scripts
        _ = try await lockRedis.run { connection in try scripts.pipeline([command], on: connection)[0].check() }
        return true
    }

    /// `job.log(line)` for a job this process holds: BullMQ's `addLog` (an RPUSH onto `<job>:logs`, trimmed to the
    /// job's `keepLogs` when it set one), what `getJobLogs` and bull-board's Logs tab read.
    public func appendJobLog(jid: String, line: String) async throws {
        guard let held = state.withLock({ $0.held[jid] }) else { return }
        let keep = (held.opts["kl"] ?? held.opts["keepLogs"])?.intValue.map { String(min(max($0, 1), Int(Int32.max))) } ?? ""
        let command = scripts.command(
            .addLog, keys: [held.keys.job(held.id), held.keys.job(held.id) + ":logs"], arguments: [held.id, line, keep])
        let scripts = scripts
        _ = try await lockRedis.run { connection in try scripts.pipeline([command], on: connection)[0].check() }
    }

    /// Whether `jid` is a BullMQ job this backend holds.
    public func holds(jid: String) -> Bool { state.withLock { $0.held[jid] != nil } }

    /// Marks jobs whose lock is gone and has the worker stop their handlers (`BullMQLockLost`): another worker may
    /// run them now. A job marked before its handler started fails when it starts (`BullMQHandlers`).
    private func lost(_ jids: [String]) {
        let marked = state.withLock { s -> [String] in
            var marked: [String] = []
            for jid in jids {
                guard var h = s.held[jid], !h.lost, !h.finishing else { continue }
                h.lost = true
                s.held[jid] = h
                marked.append(jid)
            }
            return marked
        }
        guard !marked.isEmpty else { return }
        logger.warning("BullMQ job lock lost: its handler is cancelled", metadata: ["jobs": "\(marked)"])
        let stop = stopper.withLock { $0 }
        for jid in marked { stop?(jid, Self.lockLost) }
    }

    /// The failure of a run whose lock was lost.
    static let lockLost = JobFailure.transient(
        .bullMQLockLost, "the job's BullMQ lock was lost while it ran (another worker may run it): its handler was cancelled")

    public func setJobStopper(_ stop: @escaping @Sendable (_ jid: String, _ failure: JobFailure) -> Void) {
        stopper.withLock { $0 = stop }
    }

    /// Whether `jid`'s lock was lost (the job must not run).
    public func lockLost(jid: String) -> Bool { state.withLock { $0.held[jid]?.lost == true } }

    // MARK: Fetching

    private func newToken() -> String { "\(workerID):\(tokenCounter.add(1, ordering: .relaxed).newValue)" }

    private func moveToActive(_ keys: BullMQKeys, token: String) -> RedisCommand {
        guard let head = heads[keys.queue] else {
            return scripts.command(.moveToActive, keys: CallHeads.activeKeys(keys), arguments: [keys.base, Self.nowMS(), activeOptions(token: token)])
        }
        var arguments = head.active
        arguments.append(Self.nowMS())
        arguments.append(activeOptions(token: token))
        return RedisCommand(arguments)
    }

    /// The fixed start of each queue's two per-job script calls, as bytes built once: `EVALSHA <sha> <numkeys>`, then
    /// `moveToActive`'s keys and queue key prefix, or `moveToFinished`'s keys before the job's own.
    struct CallHeads: Sendable {
        let active: [any RedisArgument]
        let completed: [any RedisArgument]
        let failed: [any RedisArgument]
        let metricsCompleted: [UInt8]
        let metricsFailed: [UInt8]
        let marker: [UInt8]

        static func activeKeys(_ k: BullMQKeys) -> [String] {
            [k.wait, k.active, k.prioritized, k.events, k.stalled, k.limiter, k.delayed, k.paused, k.meta, k.pc, k.marker]
        }

        static func finishedKeys(_ k: BullMQKeys, target: String) -> [String] {
            [k.wait, k.active, k.prioritized, k.events, k.stalled, k.limiter, k.delayed, k.paused, k.meta, k.pc, target == "completed" ? k.completed : k.failed]
        }

        init(_ k: BullMQKeys, scripts: BullMQScripts) {
            func bytes(_ strings: [String]) -> [any RedisArgument] { strings.map { Array($0.utf8) as any RedisArgument } }
            let active = Self.activeKeys(k)
            self.active = ["EVALSHA", scripts.sha(.moveToActive), active.count] + bytes(active) + [Array(k.base.utf8)]
            // moveToFinished takes 14 keys: these 11, then the job's, its metrics key and the marker.
            completed = ["EVALSHA", scripts.sha(.moveToFinished), 14] + bytes(Self.finishedKeys(k, target: "completed"))
            failed = ["EVALSHA", scripts.sha(.moveToFinished), 14] + bytes(Self.finishedKeys(k, target: "failed"))
            metricsCompleted = Array(k.metricsCompleted.utf8)
            metricsFailed = Array(k.metricsFailed.utf8)
            marker = Array(k.marker.utf8)
        }
    }

    /// `moveToActive`'s msgpack options (`token`, `lockDuration`, `name`), from the parts encoded once.
    func activeOptions(token: String) -> [UInt8] {
        activeOptionsHead + MessagePack.string(token).encoded() + activeOptionsTail
    }

    static func nowMS() -> Int { Saturating.int((Date().timeIntervalSince1970 * 1000).rounded()) }

    public func fetch(from order: [String], count: Int) async throws -> [FetchedJob] {
        start()
        var jobs: [FetchedJob] = []
        for queue in order where jobs.count < count {
            guard let keys = queues[queue] else { continue }
            let tokens = (0..<(count - jobs.count)).map { _ in newToken() }
            let commands = tokens.map { moveToActive(keys, token: $0) }
            let scripts = scripts
            let replies = try await fetchRedis.run { connection in try scripts.pipeline(commands, on: connection) }
            for (token, reply) in zip(tokens, replies) {
                if let job = try accept(reply, keys: keys, token: token) { jobs.append(job) }
            }
        }
        try await advanceSchedulers(on: fetchRedis)
        return jobs
    }

    /// A `moveToActive` reply: the job (now held), or nil (nothing to take; its next delayed time noted).
    private func accept(_ reply: RedisReply, keys: BullMQKeys, token: String) throws -> FetchedJob? {
        let items = try reply.check().array ?? []
        guard items.count >= 4 else { return nil }
        guard case .array(let hash) = items[0], let id = items[1].text else {
            if let next = items[3].int, next > 0 { state.withLock { $0.nextDelayed[keys.queue] = next } }
            // Rate limited (the worker's `limiter` or the queue's global limit): nothing can be taken until the window
            // ends, and the marker the wait consumed is not put back, so the wait wakes itself then (as BullMQ's
            // worker waits out `limitUntil`).
            if let ttl = items[2].int, ttl > 0 { state.withLock { $0.nextDelayed[keys.queue] = Saturating.add(Self.nowMS(), ttl) } }
            return nil
        }
        var fields: [String: [UInt8]] = [:]
        var i = 0
        while i + 1 < hash.count {
            if let k = hash[i].text { fields[k] = hash[i + 1].bytes ?? [] }
            i += 2
        }
        if let scheduler = fields["rjk"].map({ String(decoding: $0, as: UTF8.self) }),
            let advance = nextIteration(fields: fields, id: id, keys: keys, scheduler: scheduler)
        {
            pendingIterations.withLock { $0.append(advance) }
        } else if let scheduler = fields["rjk"].map({ String(decoding: $0, as: UTF8.self) }),
            unadvancedSchedulers.withLock({ $0.insert("\(keys.queue)\u{0}\(scheduler)").inserted })
        {
            // Past its limit or end date, or a cron pattern this worker cannot read: said once per scheduler.
            logger.warning(
                "a BullMQ job scheduler's job was taken and no next iteration is created (limit or end date reached, or a cron pattern Conveyor does not read: L, W, # and ? are not supported)",
                metadata: ["queue": "\(keys.queue)", "scheduler": "\(scheduler)"])
        }
        let (held, jid, payload) = Self.envelope(fields: fields, id: id, keys: keys, token: token)
        state.withLock { $0.held[jid] = held }
        return FetchedJob(raw: held.raw, receipt: DeliveryReceipt(queue: keys.queue, member: Array(jid.utf8), token: token), envelope: payload)
    }

    /// BullMQ's worker creates a job scheduler's next iteration when it takes the current one
    /// (`upsertJobScheduler(..., override: false, producerId: job.id)`): `updateJobScheduler`, which for an `every`
    /// scheduler computes the next time itself and for a cron `pattern` (5 or 6 fields, seconds first, in `tz`) is
    /// given it, computed as BullMQ's default repeat strategy does (the next fire strictly after the later of now and
    /// the previous iteration, not before `startDate`). Nil for a scheduler past its `limit` or `endDate`, or a
    /// pattern `CronExpression` refuses.
    private func nextIteration(fields: [String: [UInt8]], id: String, keys: BullMQKeys, scheduler: String) -> RedisCommand? {
        guard let opts = fields["opts"].flatMap({ try? JSONValue(parsing: $0) })?.objectValue,
            let repeatOpts = opts["repeat"]?.objectValue
        else { return nil }
        let now = Self.nowMS()
        let count = Saturating.add(repeatOpts["count"]?.intValue ?? 0, 1)
        if let limit = repeatOpts["limit"]?.intValue, count > limit { return nil }
        if let end = repeatOpts["endDate"]?.intValue, now > end { return nil }
        // `every`: the script computes the time; a cron pattern: computed here.
        var nextMillis = now
        var delay = 0
        if let pattern = repeatOpts["pattern"]?.stringValue {
            guard repeatOpts["every"] == nil, let fire = Self.cronNext(pattern: pattern, tz: repeatOpts["tz"]?.stringValue, opts: opts, repeatOptions: repeatOpts, now: now)
            else { return nil }
            nextMillis = fire
            delay = max(0, fire - now)
        } else if repeatOpts["every"]?.doubleValue == nil {
            return nil
        }
        var repeatNext = repeatOpts
        repeatNext["count"] = JSONValue(count)
        var next = opts
        next["jobId"] = .string("repeat:\(scheduler):\(nextMillis)")
        next["delay"] = JSONValue(delay)
        next["timestamp"] = JSONValue(now)
        next["prevMillis"] = JSONValue(nextMillis)
        next["repeatJobKey"] = .string(scheduler)
        next["repeat"] = .object(repeatNext)
        let data = fields["data"] ?? Array("{}".utf8)
        return scripts.command(
            .updateJobScheduler,
            keys: [
                keys.repeatKey, keys.delayed, keys.wait, keys.paused, keys.meta, keys.prioritized, keys.marker, keys.key("id"), keys.events, keys.pc,
                keys.job(id), keys.active,
            ],
            arguments: [nextMillis, scheduler, data, MessagePack(.object(next)).encoded(), now, keys.base, id])
    }

    /// The cron pattern's next fire (Unix ms) after the later of `now` and the previous iteration's time, not before
    /// `startDate`; nil when the pattern or zone is refused or nothing fires within eight years.
    static func cronNext(pattern: String, tz: String?, opts: JSONObject, repeatOptions: JSONObject, now: Int, years: Int = 8) -> Int? {
        guard pattern.utf8.count <= CronExpression.maximumLength else { return nil }
        let line = tz.map { pattern + " " + $0 } ?? pattern
        guard let cron = try? CronExpression(line) else { return nil }
        var base = max(now, opts["prevMillis"]?.intValue ?? 0)
        if let start = repeatOptions["startDate"]?.intValue, start > base { base = start }
        // `next(after:)` is strictly after a whole second; BullMQ's strategy is strictly after the millisecond, the same
        // second for any base within it.
        guard let fire = cron.next(after: Int64(base / 1000), years: years) else { return nil }
        return Saturating.int(Double(fire) * 1000)
    }

    /// Creates the next iterations of the schedulers whose jobs were just taken.
    private func advanceSchedulers(on redis: RedisThread) async throws {
        let commands = pendingIterations.withLock { p in
            defer { p.removeAll() }
            return p
        }
        if commands.isEmpty { return }
        let scripts = scripts
        let replies = try await redis.run { connection in try scripts.pipeline(commands, on: connection) }
        for reply in replies {
            if case .error(let message) = reply { logger.error("could not create a BullMQ job scheduler's next iteration", metadata: ["error": "\(message)"]) }
        }
    }

    /// The worker's envelope for a BullMQ job hash, and what this backend keeps of it.
    static func envelope(fields: [String: [UInt8]], id: String, keys: BullMQKeys, token: String) -> (Held, String, JSONObject) {
        func text(_ k: String) -> String? { fields[k].map { String(decoding: $0, as: UTF8.self) } }
        func int(_ k: String) -> Int? { text(k).flatMap { Int($0) } }
        let opts = (fields["opts"].flatMap { try? JSONValue(parsing: $0) }?.objectValue) ?? JSONObject()
        let attemptsMade = min(max(int("atm") ?? int("attemptsMade") ?? 0, 0), JobEnvelope.retryRange.upperBound)
        let attempts = opts["attempts"]?.intValue ?? 1
        var jid = keys.job(id)
        if !Job.isValidJID(.string(jid)) { jid = "bullmq:" + SHA1Digest.hash(Array(jid.utf8)).hex }
        var payload = JSONObject()
        payload["class"] = .string(text("name") ?? "")
        let data: JSONValue
        if let bytes = fields["data"], let parsed = try? JSONValue(parsing: bytes) {
            data = parsed
        } else {
            data = .string(text("data") ?? "")
        }
        payload["args"] = .array([data])
        payload["queue"] = .string(keys.queue)
        payload["jid"] = .string(jid)
        payload["retry"] = JSONValue(min(max(attempts - 1, 0), JobEnvelope.retryRange.upperBound))
        if attemptsMade > 0 { payload["retry_count"] = JSONValue(attemptsMade - 1) }
        if let ts = int("timestamp"), JobEnvelope.timestampRange.contains(Double(ts)), ts > 0 {
            payload["created_at"] = JSONValue(ts)
            let delay = max(0, int("delay") ?? 0)
            let enqueued = Saturating.add(ts, delay)
            if JobEnvelope.timestampRange.contains(Double(enqueued)) { payload["enqueued_at"] = JSONValue(enqueued) }
        }
        // BullMQ's `telemetry` option puts the producer's trace context in `opts.tm` (a JSON text of the injected
        // headers): moved to the top of the envelope, where Sidekiq jobs carry it (checked there by the tracing).
        if let tm = opts["tm"]?.stringValue, tm.utf8.count <= 4096, let headers = try? JSONValue(parsing: Array(tm.utf8)),
            let carrier = headers.objectValue
        {
            for key in ["traceparent", "tracestate"] { if case .string(let v)? = carrier[key] { payload[key] = .string(v) } }
        }
        var bull = JSONObject()
        bull["id"] = .string(id)
        bull["prefix"] = .string(keys.prefix)
        bull["attemptsMade"] = JSONValue(attemptsMade)
        if let defa = text("defa") { bull["deferredFailure"] = .string(defa) }
        payload["bullmq"] = .object(bull)
        let stacktrace = fields["stacktrace"].flatMap { try? JSONValue(parsing: $0) }?.arrayValue ?? []
        let held = Held(
            keys: keys, id: id, token: token, raw: payload.bytes, opts: opts, attemptsMade: attemptsMade, stacktrace: stacktrace,
            deferredFailure: text("defa"))
        return (held, jid, payload)
    }

    /// Waits on the queue's marker (`BZPOPMIN`), as BullMQ's worker does, then takes a job.
    public func waitForJob(on queue: String, timeout: Double) async throws -> FetchedJob? {
        start()
        guard let keys = queues[queue] else {
            try? await Task.sleep(for: .seconds(max(0.01, min(timeout, 5))))
            return nil
        }
        let redis = waiters.withLock { w in
            if let existing = w[queue] { return existing }
            let made = RedisThread(endpoint, name: "conveyor-bullmq-block-\(queue)", commandTimeout: timeout + 10)
            w[queue] = made
            return made
        }
        let name = "\(keys.prefix):\(Data(queue.utf8).base64EncodedString()):w:conveyor-\(workerID.prefix(12))"
        let deadline = Date().timeIntervalSince1970 + max(0.01, timeout)
        while true {
            let now = Date().timeIntervalSince1970
            let left = deadline - now
            if left <= 0 { return nil }
            var block = left
            if let next = state.withLock({ $0.nextDelayed[queue] }) {
                let due = Double(next) / 1000 - now
                if due <= 0 {
                    state.withLock { _ = $0.nextDelayed.removeValue(forKey: queue) }
                    block = 0
                } else {
                    block = min(block, due)
                }
            }
            var ready = block == 0
            if !ready {
                let wait = max(0.01, block)
                let marker = keys.marker
                let replies = try await redis.run { connection in
                    try connection.pipeline([RedisCommand("CLIENT", "SETNAME", name), RedisCommand("BZPOPMIN", marker, wait)])
                }
                let popped = try replies[1].check().array ?? []
                if popped.count >= 3 {
                    let score = popped[2].int ?? Saturating.int(popped[2].text.flatMap(Double.init) ?? 0)
                    if score > Self.nowMS() {
                        state.withLock { $0.nextDelayed[queue] = score }
                        continue
                    }
                    ready = true
                } else {
                    // Timed out: try once anyway, as BullMQ's worker does. A queue at its global concurrency gets no
                    // marker when a slot frees (the job's finishing worker takes the next one itself), and a
                    // rate-limited window's end or a due delayed job may have come meanwhile.
                    ready = true
                }
            }
            if ready {
                let token = newToken()
                let command = moveToActive(keys, token: token)
                let scripts = scripts
                let reply = try await redis.run { connection in try scripts.pipeline([command], on: connection)[0] }
                if let job = try accept(reply, keys: keys, token: token) {
                    try await advanceSchedulers(on: redis)
                    return job
                }
            }
        }
    }

    // MARK: Outcomes

    /// One script call per move, pipelined. A move whose job this process no longer holds (a resent batch) or whose
    /// lock was lost (the job went back to wait, or another worker has it) is dropped: BullMQ's state is the lock
    /// holder's.
    public func complete(_ moves: [JobTransitions.Move], batch: UInt64, resent: Bool) async throws -> Bool {
        _ = try await run(moves, journalField: Self.journalField(JobTransitions.ackJournalField(batch)))
        return true
    }

    public func apply(_ moves: [JobTransitions.Move], fromInflightOf process: String, journalField: String) async throws -> [Bool] {
        guard process == identity else { return moves.map { _ in false } }
        return try await run(moves, journalField: Self.journalField(journalField))
    }

    /// The journal field of a batch's BullMQ entries: the batch's own plus `b`.
    public static func journalField(_ batchField: String) -> String { batchField + "b" }

    /// The scripts of a batch and, when it has journal entries, the `HSET` of them, in one `MULTI`/`EXEC`: an outcome
    /// is in the journal exactly when its script ran, so a kill before the row reaches PostgreSQL loses nothing
    /// (the result store's recovery writes it). Entries are kept for every move of the batch, as the Sidekiq side
    /// keeps them: a script that found the job taken over leaves an outcome that the later run's row replaces (rows
    /// are one per jid). The replies of the scripts, in order.
    private func runScripts(_ commands: [RedisCommand], journalLines: [UInt8], field: String, after extra: [RedisCommand] = []) async throws -> [RedisReply] {
        let scripts = scripts
        guard let journal, !journalLines.isEmpty else {
            return try await ackRedis.run { connection in Array(try scripts.pipeline(commands + extra, on: connection).prefix(commands.count)) }
        }
        let transaction = [RedisCommand("MULTI")] + commands + extra + [RedisCommand("HSET", journal, field, journalLines), RedisCommand("EXEC")]
        return try await ackRedis.run { connection in
            func exec() throws(RedisError) -> [RedisReply] {
                let replies = try connection.pipeline(transaction)
                guard let results = try replies.last?.check().array, results.count == commands.count + extra.count + 1 else {
                    throw RedisError.server("BullMQ outcome transaction aborted: \(replies.last.map { "\($0)" } ?? "no reply")")
                }
                return Array(results.prefix(commands.count))
            }
            var results = try exec()
            // Redis lost the scripts (a restart, SCRIPT FLUSH): nothing of those ran. Load them and run those again,
            // with the same entries (an HSET of the same field and value).
            let missing = results.indices.filter { if case .error(let m) = results[$0] { m.hasPrefix("NOSCRIPT") } else { false } }
            if !missing.isEmpty {
                try scripts.load(on: connection)
                let redo = [RedisCommand("MULTI")] + missing.map { commands[$0] } + [RedisCommand("HSET", journal, field, journalLines), RedisCommand("EXEC")]
                let replies = try connection.pipeline(redo)
                guard let again = try replies.last?.check().array, again.count == missing.count + 1 else {
                    throw RedisError.server("BullMQ outcome transaction aborted: \(replies.last.map { "\($0)" } ?? "no reply")")
                }
                for (i, reply) in zip(missing, again) { results[i] = reply }
            }
            return results
        }
    }

    private func run(_ moves: [JobTransitions.Move], journalField: String) async throws -> [Bool] {
        var commands: [RedisCommand] = []
        var owners: [(index: Int, jid: String)] = []
        var lines: [UInt8] = []
        let now = Self.nowMS()
        for move in moves { if let entry = move.journal { lines += entry.value } }
        for (index, move) in moves.enumerated() {
            let jid = String(decoding: move.receipt.member, as: UTF8.self)
            guard let held = state.withLock({ $0.held[jid] }) else { continue }
            guard let command = command(for: move.target, held: held, now: now) else {
                // A payload rewrite: nothing to do in BullMQ's keys.
                continue
            }
            commands.append(command)
            owners.append((index, jid))
        }
        var applied = [Bool](repeating: false, count: moves.count)
        if commands.isEmpty {
            // Nothing of the batch is held here any more (a resent batch that applied): its entries were written then.
            return applied
        }
        state.withLock { s in for owner in owners { s.held[owner.jid]?.finishing = true } }
        // A queue under a global concurrency gets no marker from BullMQ's scripts when a slot frees (BullMQ's worker
        // fetches its next job in the same script): one here wakes the workers waiting on it, this one's included.
        let capped = cappedQueues.withLock { $0 }
        var wake: [RedisCommand] = []
        if !capped.isEmpty {
            let finishing = state.withLock { s in Set(owners.compactMap { owner in s.held[owner.jid]?.keys.queue }) }
            wake = finishing.intersection(capped).compactMap { queues[$0] }.map { RedisCommand("ZADD", $0.marker, 0, "0") }
        }
        let replies: [RedisReply]
        do {
            replies = try await runScripts(commands, journalLines: lines, field: journalField, after: wake)
        } catch {
            // Not written (sent again later): the locks are this worker's to keep renewing meanwhile.
            state.withLock { s in for owner in owners { s.held[owner.jid]?.finishing = false } }
            throw error
        }
        var dropped: [String] = []
        for (owner, reply) in zip(owners, replies) {
            switch reply {
            case .error(let message) where RedisError.server(message).isTransient:
                state.withLock { s in for owner in owners { s.held[owner.jid]?.finishing = false } }
                throw RedisError.server(message)
            case .error(let message):
                logger.error("BullMQ script refused a job's outcome", metadata: ["job.id": "\(owner.jid)", "error": "\(message)"])
            case .integer(let code) where code < 0:
                dropped.append("\(owner.jid) (\(Self.describe(code)))")
            default:
                applied[owner.index] = true
            }
            state.withLock { _ = $0.held.removeValue(forKey: owner.jid) }
        }
        if !dropped.isEmpty {
            logger.warning("BullMQ outcome not written: this worker no longer held the job", metadata: ["jobs": "\(dropped)"])
        }
        return applied
    }

    static func describe(_ code: Int) -> String {
        switch code {
        case -1: "missing job"
        case -2: "missing lock"
        case -3: "not active"
        case -4: "pending children"
        case -6: "lock owned by another worker"
        case -9: "failed children"
        default: "code \(code)"
        }
    }

    /// The script applying one move of a held job.
    private func command(for target: JobTransitions.Move.Target, held: Held, now: Int) -> RedisCommand? {
        switch target {
        case .ack:
            let value = held.result ?? .null
            return finish(held, target: "completed", value: value.bytes, fields: nil, now: now)
        case .dead(let payload):
            let (reason, fields) = failureFields(held, payload: payload)
            return finish(held, target: "failed", value: Array(reason.utf8), fields: fields, now: now)
        case .retry(let payload, _):
            let (reason, fields) = failureFields(held, payload: payload)
            switch BullMQBackoff.delay(held.opts["backoff"], attemptsMade: Saturating.add(held.attemptsMade, 1), random: Double.random(in: 0..<1)) {
            case .failure(let failure):
                let (why, more) = failureFields(held, reason: failure.message, errorClass: failure.errorClass)
                return finish(held, target: "failed", value: Array(why.utf8), fields: more, now: now)
            case .success(let delay) where delay > 0:
                let k = held.keys
                return scripts.command(
                    .moveToDelayed,
                    keys: [k.marker, k.active, k.prioritized, k.delayed, k.job(held.id), k.events, k.meta, k.stalled, k.wait, k.limiter, k.pc],
                    arguments: [k.base, String(now), held.id, held.token, delay, "0", fields, "0"])
            case .success:
                _ = reason
                let k = held.keys
                let push = held.opts["lifo"]?.boolValue == true ? "RPUSH" : "LPUSH"
                return scripts.command(
                    .retryJob,
                    keys: [k.active, k.wait, k.paused, k.job(held.id), k.meta, k.events, k.delayed, k.prioritized, k.pc, k.marker, k.stalled],
                    arguments: [k.base, now, push, held.id, held.token, fields])
            }
        case .queue:
            let k = held.keys
            return scripts.command(
                .moveJobFromActiveToWait, keys: [k.active, k.wait, k.stalled, k.paused, k.meta, k.limiter, k.prioritized, k.marker, k.events],
                arguments: [held.id, held.token, k.job(held.id)])
        case .replace:
            return nil
        }
    }

    /// `failedReason` and the msgpacked fields BullMQ's worker writes with a failure (`failedReason`, `stacktrace`).
    private func failureFields(_ held: Held, payload: [UInt8]) -> (String, [UInt8]) {
        let object = (try? JSONValue(parsing: payload))?.objectValue ?? JSONObject()
        return failureFields(
            held, reason: object["error_message"]?.stringValue ?? "failed", errorClass: object["error_class"]?.stringValue ?? "Error")
    }

    private func failureFields(_ held: Held, reason: String, errorClass: String) -> (String, [UInt8]) {
        var trace = held.stacktrace
        trace.append(.string("\(errorClass): \(reason)"))
        if let limit = held.opts["stackTraceLimit"]?.intValue {
            trace = limit <= 0 ? [] : Array(trace.suffix(limit))
        }
        let fields = MessagePack.array([
            .string("failedReason"), .string(reason), .string("stacktrace"), .string(String(decoding: JSONValue.array(trace).bytes, as: UTF8.self)),
        ])
        return (reason, fields.encoded())
    }

    private func finish(_ held: Held, target: String, value: [UInt8], fields: [UInt8]?, now: Int) -> RedisCommand {
        let k = held.keys
        let completed = target == "completed"
        guard let head = heads[k.queue] else {
            var arguments: [any RedisArgument] = [
                held.id, now, completed ? "returnvalue" : "failedReason", value, target, "", k.base, finishOptions(held, target: target),
            ]
            if let fields { arguments.append(fields) }
            return scripts.command(
                .moveToFinished,
                keys: CallHeads.finishedKeys(k, target: target) + [k.job(held.id), completed ? k.metricsCompleted : k.metricsFailed, k.marker],
                arguments: arguments)
        }
        var arguments = completed ? head.completed : head.failed
        arguments.reserveCapacity(arguments.count + 12)
        arguments.append(k.job(held.id))
        arguments.append(completed ? head.metricsCompleted : head.metricsFailed)
        arguments.append(head.marker)
        arguments.append(held.id)
        arguments.append(now)
        arguments.append(completed ? "returnvalue" : "failedReason")
        arguments.append(value)
        arguments.append(target)
        arguments.append("")
        arguments.append(k.base)
        arguments.append(finishOptions(held, target: target))
        if let fields { arguments.append(fields) }
        return RedisCommand(arguments)
    }

    /// `moveToFinished`'s msgpack options (BullMQ's worker sends the same map): token, keepJobs, lockDuration,
    /// attempts, attemptsMade, maxMetricsSize, the four flow failure flags and name, written straight into bytes from
    /// keys encoded once. Byte for byte what encoding the whole map gives (`finishOptionsMap`, the test's reference).
    func finishOptions(_ held: Held, target: String) -> [UInt8] {
        let completed = target == "completed"
        let own = held.opts[completed ? "removeOnComplete" : "removeOnFail"]
        let keep = own == nil ? (completed ? defaultKeepCompleted : defaultKeepFailed) : Self.keepJobs(own).encoded()
        var out: [UInt8] = []
        out.reserveCapacity(finishOptionsParts.fixedCount + held.token.utf8.count + keep.count + 16)
        out += finishOptionsParts.head
        out += MessagePack.string(held.token).encoded()
        out += finishOptionsParts.keepJobs
        out += keep
        out += finishOptionsParts.lockDurationThenAttempts
        out += MessagePack.int(held.opts["attempts"]?.intValue ?? 1).encoded()
        out += finishOptionsParts.attemptsMade
        out += MessagePack.int(held.attemptsMade).encoded()
        out += finishOptionsParts.maxMetricsSize
        for (key, name) in zip(finishOptionsParts.flags, ["fpof", "cpof", "idof", "rdof"]) {
            out += key
            out.append(held.opts[name]?.boolValue == true ? 0xC3 : 0xC2)
        }
        out += finishOptionsParts.name
        return out
    }

    /// The same options as one `MessagePack` map, encoded whole.
    func finishOptionsMap(_ held: Held, target: String) -> [UInt8] {
        let keep = Self.keepJobs(held.opts[target == "completed" ? "removeOnComplete" : "removeOnFail"] ?? (target == "completed" ? options.removeOnComplete : options.removeOnFail))
        func flag(_ key: String) -> MessagePack { .bool(held.opts[key]?.boolValue ?? false) }
        return MessagePack.map([
            ("token", .string(held.token)), ("keepJobs", keep), ("lockDuration", .int(options.lockDuration)),
            ("attempts", .int(held.opts["attempts"]?.intValue ?? 1)), ("attemptsMade", .int(held.attemptsMade)),
            ("maxMetricsSize", .string("")), ("fpof", flag("fpof")), ("cpof", flag("cpof")), ("idof", flag("idof")), ("rdof", flag("rdof")),
            ("name", .string(identity)),
        ]).encoded()
    }

    /// The constant pieces of `finishOptions`, encoded at start-up.
    struct FinishOptionsParts: Sendable {
        var head: [UInt8]
        var keepJobs: [UInt8]
        var lockDurationThenAttempts: [UInt8]
        var attemptsMade: [UInt8]
        var maxMetricsSize: [UInt8]
        var flags: [[UInt8]]
        var name: [UInt8]
        var fixedCount: Int { head.count + keepJobs.count + lockDurationThenAttempts.count + attemptsMade.count + maxMetricsSize.count + 4 * 6 + name.count }

        init(lockDuration: Int, identity: String) {
            func key(_ k: String) -> [UInt8] { MessagePack.string(k).encoded() }
            head = [0x8B] + key("token")
            keepJobs = key("keepJobs")
            lockDurationThenAttempts = key("lockDuration") + MessagePack.int(lockDuration).encoded() + key("attempts")
            attemptsMade = key("attemptsMade")
            maxMetricsSize = key("maxMetricsSize") + MessagePack.string("").encoded()
            flags = ["fpof", "cpof", "idof", "rdof"].map(key)
            name = key("name") + MessagePack.string(identity).encoded()
        }
    }

    /// BullMQ's `getKeepJobs`: `true` keeps none, `false`/absent keeps all, a number keeps that many, `{age, count}` as is.
    static func keepJobs(_ value: JSONValue?) -> MessagePack {
        switch value {
        case .bool(true)?: return .map([("count", .int(0))])
        case .number?:
            return .map([("count", .int(min(max(value?.intValue ?? -1, -1), Int(Int32.max))))])
        case .object(let o)?:
            var pairs: [(String, MessagePack)] = []
            for key in ["age", "count", "limit"] {
                if let n = o[key]?.intValue { pairs.append((key, .int(min(max(n, -1), Int(Int32.max))))) }
            }
            return .map(pairs.isEmpty ? [("count", .int(-1))] : pairs)
        default: return .map([("count", .int(-1))])
        }
    }

    // MARK: In flight

    public func inflightJobs(of process: String, limit: Int?) async throws -> [FetchedJob] {
        guard process == identity else { return [] }
        let all = state.withLock { s in s.held.map { ($0.key, $0.value) } }
        var jobs = all.map { jid, h in
            FetchedJob(raw: h.raw, receipt: DeliveryReceipt(queue: h.keys.queue, member: Array(jid.utf8), token: h.token))
        }
        if let limit { jobs = Array(jobs.prefix(max(0, limit))) }
        return jobs
    }

    // MARK: Liveness: BullMQ's locks and stalled check stand for Sidekiq's heartbeat and reaper.

    public func heartbeat(_ beat: ProcessBeat) async throws -> ProcessSignal? {
        start()
        _ = try await lockRedis.run { connection in try connection.command("PING").check() }
        return nil
    }

    public func deadProcesses() async throws -> [String] { [] }
    public func claim(deadProcess process: String) async throws -> Bool { false }
    public func forget(deadProcess process: String) async throws {}
    public func deregister() async throws {}
    public func promoteDueJobs() async throws {}

    /// Renews held locks every `lockDuration / 2`, checks them twice a second, runs the stalled check every
    /// `stalledInterval`.
    private func maintain() async {
        var nextRenew = ContinuousClock.now
        var nextStalled = ContinuousClock.now
        while !Task.isCancelled {
            let now = ContinuousClock.now
            do {
                if now >= nextRenew {
                    try await renewLocks()
                    nextRenew = now + .milliseconds(options.lockDuration / 2)
                } else {
                    try await checkLocks()
                }
                if now >= nextStalled {
                    try await readGlobalConcurrency()
                    try await stalledCheck()
                    nextStalled = now + .milliseconds(options.stalledInterval)
                }
                lockOutage.succeeded(logger: logger)
            } catch {
                lockOutage.failed(error, logger: logger)
            }
            try? await Task.sleep(for: .milliseconds(min(500, options.lockDuration / 4)))
        }
    }

    private func heldByQueue() -> [String: [(jid: String, id: String, token: String)]] {
        state.withLock { s in
            var out: [String: [(jid: String, id: String, token: String)]] = [:]
            for (jid, h) in s.held where !h.lost && !h.finishing { out[h.keys.queue, default: []].append((jid, h.id, h.token)) }
            return out
        }
    }

    /// `extendLocks` per queue; the ids it returns lost their lock.
    func renewLocks() async throws {
        let byQueue = heldByQueue()
        if byQueue.isEmpty { return }
        var commands: [RedisCommand] = []
        var order: [[(jid: String, id: String, token: String)]] = []
        for (queue, jobs) in byQueue {
            guard let k = queues[queue] else { continue }
            commands.append(
                scripts.command(
                    .extendLocks, keys: [k.stalled],
                    arguments: [
                        k.base, MessagePack.array(jobs.map { .string($0.token) }).encoded(), MessagePack.array(jobs.map { .string($0.id) }).encoded(),
                        options.lockDuration,
                    ]))
            order.append(jobs)
        }
        let scripts = scripts
        let replies = try await lockRedis.run { [commands] connection in try scripts.pipeline(commands, on: connection) }
        var gone: [String] = []
        for (jobs, reply) in zip(order, replies) {
            let failed = Set((try reply.check().array ?? []).compactMap(\.text))
            gone += jobs.filter { failed.contains($0.id) }.map(\.jid)
        }
        lost(gone.filter { holds(jid: $0) })
    }

    /// One `MGET` of the held locks: a lock that is gone or holds another token is lost.
    func checkLocks() async throws {
        let jobs = state.withLock { s in s.held.filter { !$0.value.lost && !$0.value.finishing }.map { ($0.key, $0.value.keys.job($0.value.id) + ":lock", $0.value.token) } }
        if jobs.isEmpty { return }
        let reply = try await lockRedis.run { connection in
            try connection.command(RedisCommand(["MGET"] + jobs.map { $0.1 as any RedisArgument })).check()
        }
        let values = reply.array ?? []
        var gone: [String] = []
        for (job, value) in zip(jobs, values) where value.text != job.2 { gone.append(job.0) }
        lost(gone.filter { holds(jid: $0) })
    }

    /// Which served queues have a global concurrency (`meta` `concurrency`, `Queue.setGlobalConcurrency`), read at
    /// start and then every stalled-check interval.
    func readGlobalConcurrency() async throws {
        let keys = Array(queues.values)
        let replies = try await lockRedis.run { connection in
            try connection.pipeline(keys.map { RedisCommand("HEXISTS", $0.meta, "concurrency") })
        }
        var capped: Set<String> = []
        for (k, reply) in zip(keys, replies) where (try reply.check().int) == 1 { capped.insert(k.queue) }
        cappedQueues.withLock { $0 = capped }
    }

    /// The queue's shared stalled check (`moveStalledJobsToWait`): at most one worker runs it per interval.
    func stalledCheck() async throws {
        let now = Self.nowMS()
        let scripts = scripts
        let commands = queues.values.map { k in
            scripts.command(
                .moveStalledJobsToWait, keys: [k.stalled, k.wait, k.active, k.stalledCheck, k.meta, k.paused, k.marker, k.events, k.repeatKey],
                arguments: [options.maxStalledCount, k.base, now, options.stalledInterval])
        }
        let replies = try await lockRedis.run { connection in try scripts.pipeline(commands, on: connection) }
        for reply in replies {
            let ids = (try reply.check().array ?? []).compactMap(\.text)
            if !ids.isEmpty { logger.warning("BullMQ jobs stalled (their worker stopped renewing their lock): back to wait", metadata: ["jobs": "\(ids)"]) }
        }
    }
}
