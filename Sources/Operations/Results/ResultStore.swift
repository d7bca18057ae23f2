public import ConveyorCore
public import SidekiqQueue
import Foundation
import Tracing
public import Logging
public import Postgres
public import Redis
import Synchronization

/// Records every terminal job outcome in `conveyor.job_results`, in batches, off the worker's path.
///
/// `jobFinished` only appends to an in-memory buffer; flusher threads with their own connections write up to
/// `batchSize` rows per `COPY` (an upsert when a jid is already there; see `store`). When PostgreSQL is down the rows stay
/// buffered and the flusher retries with backoff (reconnecting), so outcomes survive a restart of the database.
/// The buffer is bounded (`capacity`): when it is full the OLDEST buffered outcome is dropped and counted in
/// `stats.dropped` (`conveyor_result_writes_dropped_total`), so a long outage costs memory up to a known bound
/// and never crashes the worker.
///
/// In a worker (`journal` set), outcomes arrive as `OutcomeJournal` entries: each is already in Redis, in the
/// worker's outcome journal, written by the same script that acknowledged its job. Once a batch is in PostgreSQL
/// its entries are deleted from the journal. What a killed process never stored stays in its journal; the reaper
/// marks that journal orphaned, and every store's recovery thread writes and empties orphaned journals (and its own,
/// after the buffer overflowed). So an acknowledged outcome is lost neither by kill -9 nor by a long outage.
public final class ResultStore: JobObserver, OutcomeJournal, @unchecked Sendable {
    /// Where this store's outcome journal is, for a store fed by a worker.
    public struct Journal: Sendable {
        /// Whether `key` is one of this worker's journals (on a cluster it has one per queue).
        func isOwn(_ key: String) -> Bool {
            guard keys.cluster else { return key == keys.outcomes(identity) }
            return keys.queue(ofTagged: key) != nil && key.hasSuffix(":outcomes:" + identity)
        }

        /// The orphaned-journals set in `key`'s slot.
        func orphanSet(of key: String) -> String {
            guard keys.cluster, let queue = keys.queue(ofTagged: key) else { return keys.orphanedOutcomes }
            return keys.orphanedOutcomes(queue: queue)
        }

        public var redis: RedisEndpoint
        public var keys: QueueKeys
        /// The worker's identity: its journal is `keys.outcomes(identity)`.
        public var identity: String
        /// How often orphaned journals are looked for.
        public var recoveryInterval: Double

        public init(redis: RedisEndpoint, keys: QueueKeys, identity: String, recoveryInterval: Double = 1) {
            self.redis = redis
            self.keys = keys
            self.identity = identity
            self.recoveryInterval = recoveryInterval
        }
    }

    /// A buffered outcome, its COPY line, and, when it came from a journal, where it stands there.
    struct Pending {
        var record: JobResultRecord
        var line: [UInt8]
        var journal: JournalRef?
    }

    struct JournalRef: Hashable {
        var key: String
        var field: String
    }

    public struct Configuration: Sendable {
        /// Most rows written by one INSERT (`CONVEYOR_RESULTS_BATCH`).
        public var batchSize = 1000
        /// How long a partial batch waits for more rows before it is written.
        public var flushInterval: Double = 0.05
        /// Most outcomes held while PostgreSQL is slow or down (`CONVEYOR_RESULTS_BUFFER`).
        public var capacity = 100_000
        /// Flusher threads, each with its own connection (`CONVEYOR_RESULTS_WRITERS`): a second one writes while the
        /// first waits for PostgreSQL.
        public var writers = 2
        /// Longest wait between retries while PostgreSQL is down.
        public var maximumBackoff: Double = 5

        public init() {}

        /// Reads `CONVEYOR_RESULTS_BATCH` (1-5000), `CONVEYOR_RESULTS_BUFFER` (1-10,000,000), `CONVEYOR_RESULTS_FLUSH_MS` (0-60000),
        /// `CONVEYOR_RESULTS_WRITERS` (1-8); a value that is not a number in range is an error naming the variable.
        public init(environment: [String: String]) throws(JobFailure) {
            self.init()
            batchSize = try EnvironmentNumber.int("CONVEYOR_RESULTS_BATCH", in: environment, default: batchSize, range: 1...5000)
            capacity = try EnvironmentNumber.int("CONVEYOR_RESULTS_BUFFER", in: environment, default: capacity, range: 1...10_000_000)
            flushInterval = try EnvironmentNumber.double(
                "CONVEYOR_RESULTS_FLUSH_MS", in: environment, default: flushInterval * 1000, range: 0...60_000) / 1000
            writers = try EnvironmentNumber.int("CONVEYOR_RESULTS_WRITERS", in: environment, default: writers, range: 1...8)
        }
    }

    /// Counters for metrics and tests.
    public struct Stats: Sendable, Equatable {
        /// Outcomes waiting to be written.
        public var backlog: Int
        public var written: Int
        /// Outcomes dropped because the buffer was full.
        public var dropped: Int
        /// Outcomes PostgreSQL refused to store, even without their result (logged with their jid).
        public var refused: Int
        /// Journaled outcomes let go from memory while the buffer was full: still in Redis, written later.
        public var deferred: Int = 0
        /// Outcomes read back from journals (orphaned ones, or this store's own after an overflow).
        public var recovered: Int = 0
        /// Failed write attempts (each is retried).
        public var writeErrors: Int
        /// Whether the last write attempt failed.
        public var failing: Bool
    }

    private let url: String
    private let configuration: Configuration
    private let logger: Logger
    private let condition = NSCondition()
    private var buffer: [Pending] = []
    private var head = 0
    private var inFlight = 0
    private var stats = Stats(backlog: 0, written: 0, dropped: 0, refused: 0, writeErrors: 0, failing: false)
    private var stopping = false
    /// Callers waiting in `drain`: the flusher writes partial batches at once while any wait.
    private var drainers = 0
    private var finished = false
    /// Journal batches (one hash field each) with outcomes buffered or being written, and how many: a batch whose
    /// count reaches zero is deleted from its journal, and recovery does not read a batch listed here. A batch one
    /// of whose outcomes the full buffer let go leaves the list: recovery reads it again, whole.
    private var outstanding: [JournalRef: Int] = [:]
    /// Batches that lost an outcome from memory: not counted again until recovery reads them whole.
    private var abandoned = Set<JournalRef>()
    /// Journal entries written to PostgreSQL whose deletion from Redis failed; retried with the next batch.
    private var undeleted: [JournalRef] = []
    /// Set when a journaled outcome was let go from memory: recovery reads this store's own journal again.
    private var ownJournalBehind = false

    private let prepare: (@Sendable (PostgresConnection) throws -> Void)?
    private let journal: Journal?
    private let redis: RedisThread?
    /// This store's own journal key, when it has one.
    public let journalKey: String?

    /// - Parameters:
    ///   - prepare: runs on the flusher's connection before its first write succeeds (e.g. migrations that could
    ///     not run at start because PostgreSQL was down); retried with the write until it succeeds.
    ///   - journal: where the feeding worker's outcome journal is; nil for a store fed through `jobFinished` alone.
    public init(
        databaseURL: String, configuration: Configuration = Configuration(), logger: Logger = Logger(label: "conveyor.results"),
        prepare: (@Sendable (PostgresConnection) throws -> Void)? = nil, journal: Journal? = nil
    ) {
        self.url = databaseURL
        self.configuration = configuration
        self.logger = logger
        self.prepare = prepare
        self.journal = journal
        self.journalKey = journal.map { $0.keys.outcomes($0.identity) }
        self.redis = journal.map { RedisThread($0.redis, name: "conveyor-results-redis") }
        for i in 0..<max(1, configuration.writers) {
            let thread = Thread { [self] in flushLoop() }
            thread.name = "conveyor-results-\(i)"
            thread.start()
        }
        if journal != nil {
            let thread = Thread { [self] in recoveryLoop() }
            thread.name = "conveyor-results-recovery"
            thread.start()
        }
    }

    // MARK: OutcomeJournal

    /// The journal value is the outcome's COPY line: built once here, sent to PostgreSQL as it is.
    public func journalValue(for outcome: JobOutcome) -> (value: [UInt8], record: JobResultRecord)? {
        guard let row = JobResultRecord(outcome) else { return nil }
        return (row.copyLine, row)
    }

    public func journaled(key: String, entries: [JobTransitions.Move.JournalEntry]) {
        for entry in entries {
            guard let row = entry.record ?? JobResultRecord(copyLine: entry.value) else { continue }
            enqueue(Pending(record: row, line: entry.value, journal: JournalRef(key: key, field: entry.field)), recovered: false)
        }
    }

    // MARK: JobObserver

    public func jobFinished(_ outcome: JobOutcome) {
        guard let row = JobResultRecord(outcome) else { return }
        record(row)
    }

    /// Buffers one outcome for writing.
    public func record(_ record: JobResultRecord) {
        enqueue(Pending(record: record, line: record.copyLine, journal: nil), recovered: false)
    }

    private func enqueue(_ pending: Pending, recovered: Bool) {
        condition.lock()
        // The bound covers what the flusher is writing right now too.
        if pendingCount + inFlight >= configuration.capacity {
            // The oldest buffered outcome goes, or, when everything buffered is being written, the new one.
            let dropNew = pendingCount == 0
            let victim = dropNew ? pending : buffer[head]
            if !dropNew { head += 1 }
            if !letGo(victim) {
                if stats.dropped == 1 || stats.dropped % 1000 == 0 {
                    logger.error(
                        "result buffer full (\(configuration.capacity) outcomes, CONVEYOR_RESULTS_BUFFER): dropping the oldest; PostgreSQL unreachable?",
                        metadata: ["dropped": "\(stats.dropped)"])
                }
            }
            if dropNew {
                condition.unlock()
                return
            }
        }
        if let ref = pending.journal, recovered || !abandoned.contains(ref) { outstanding[ref, default: 0] += 1 }
        if recovered { stats.recovered += 1 }
        buffer.append(pending)
        if pendingCount >= configuration.batchSize || pendingCount == 1 { condition.broadcast() }
        condition.unlock()
    }

    public var currentStats: Stats {
        condition.lock()
        defer { condition.unlock() }
        var s = stats
        s.backlog = pendingCount + inFlight
        return s
    }

    /// Waits until every outcome buffered so far is written, or `timeout` seconds pass. Returns whether it drained.
    @discardableResult
    public func drain(timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        drainers += 1
        defer {
            drainers -= 1
            condition.unlock()
        }
        condition.broadcast()
        while pendingCount + inFlight > 0 {
            if !condition.wait(until: deadline) { return pendingCount + inFlight == 0 }
        }
        return true
    }

    /// Writes what is buffered (up to `timeout` seconds) and stops the flusher. Returns the outcomes left unwritten.
    /// Journaled ones stay in Redis: the journal is marked orphaned for another process's store to write.
    @discardableResult
    public func shutdown(timeout: Double) -> Int {
        drain(timeout: timeout)
        condition.lock()
        stopping = true
        condition.broadcast()
        let left = pendingCount + inFlight
        let undeletedLeft = undeleted.count
        condition.unlock()
        if let redis, let journal, journalKey != nil {
            do {
                let own = try ownJournals(redis: redis)
                try redis.runBlocking { connection in
                    for key in own {
                        try connection.command("EVAL", ResultStore.orphanJournal, 2, key, journal.orphanSet(of: key)).check()
                    }
                }
            } catch {
                logger.error("could not mark this worker's outcome journal for recovery; the reaper will", metadata: ["error": "\(error)"])
            }
            redis.stop()
        }
        if left > 0 {
            let kept = journal == nil ? "" : " (they stay in Redis, \(journalKey ?? ""), and another worker writes them)"
            logger.error("\(left) job outcomes were not written to PostgreSQL before shutdown\(kept)")
        }
        if undeletedLeft > 0 {
            logger.notice("\(undeletedLeft) written outcomes are still in the journal; they will be written again (harmlessly)")
        }
        return left
    }

    /// This store's own journals: one, or on a cluster one per queue (those in the `queues` set).
    private func ownJournals(redis: RedisThread) throws -> [String] {
        guard let journal else { return [] }
        let keys = journal.keys
        guard keys.cluster else { return [keys.outcomes(journal.identity)] }
        return try Self.queues(keys: keys, redis: redis).map { keys.outcomes(journal.identity, queue: $0) }
    }

    /// The sets orphaned journals are listed in: one, or on a cluster one per queue.
    private func orphanSets(redis: RedisThread) throws -> [String] {
        guard let journal else { return [] }
        let keys = journal.keys
        guard keys.cluster else { return [keys.orphanedOutcomes] }
        return try Self.queues(keys: keys, redis: redis).map { keys.orphanedOutcomes(queue: $0) }
    }

    private static func queues(keys: QueueKeys, redis: RedisThread) throws -> [String] {
        try redis.runBlocking { connection in
            try connection.command("SMEMBERS", keys.queues).check().array?.compactMap(\.text).filter(QueueKeys.isClusterSafe(queue:)) ?? []
        }
    }

    /// KEYS: a journal, the orphaned-journals set. Marks the journal orphaned if it holds anything.
    static let orphanJournal = """
        if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('SADD', KEYS[2], KEYS[1]) end
        return 0
        """

    private var pendingCount: Int { buffer.count - head }

    /// Accounts for an outcome the full buffer lets go (call with the lock held). Returns whether it is still safe:
    /// a journaled one stays in Redis and is written when recovery reads its journal again; any other is dropped.
    @discardableResult
    private func letGo(_ pending: Pending) -> Bool {
        guard let ref = pending.journal else {
            stats.dropped += 1
            return false
        }
        outstanding.removeValue(forKey: ref)
        abandoned.insert(ref)
        if let journal, journal.isOwn(ref.key) { ownJournalBehind = true }
        stats.deferred += 1
        return true
    }

    // MARK: Flusher

    private func flushLoop() {
        var connection: PostgresConnection?
        var prepared = prepare == nil
        var backoff = 0.1
        while true {
            condition.lock()
            while pendingCount == 0 && !stopping { condition.wait() }
            if stopping {
                condition.unlock()
                return
            }
            // A partial batch waits briefly for company: fewer, larger INSERTs.
            if pendingCount < configuration.batchSize && configuration.flushInterval > 0 {
                let deadline = Date(timeIntervalSinceNow: configuration.flushInterval)
                while pendingCount < configuration.batchSize && !stopping && drainers == 0 && condition.wait(until: deadline) {}
            }
            let take = min(pendingCount, configuration.batchSize)
            let pending = Array(buffer[head..<(head + take)])
            let batch = pending.map(\.record)
            head += take
            inFlight += take
            if head > 4096 && head * 2 > buffer.count {
                buffer.removeFirst(head)
                head = 0
            }
            condition.unlock()
            if batch.isEmpty { continue }

            var failure: (any Error)?
            var refused: [JobResultRecord] = []
            do {
                if connection == nil || connection!.isBroken { connection = try PostgresConnection(url: url) }
                if !prepared {
                    try prepare?(connection!)
                    prepared = true
                }
                refused = try Self.write(batch, lines: pending.reduce(into: [UInt8]()) { $0 += $1.line }, on: connection!, logger: logger)
            } catch {
                failure = error
                if connection?.isBroken ?? true { connection = nil }
                if let pg = error as? PostgresError, pg.isConnectionError { connection = nil }
            }

            condition.lock()
            inFlight -= batch.count
            if let failure {
                // Put the batch back in front, within the capacity bound.
                let room = max(0, configuration.capacity - pendingCount - inFlight)
                let keep = pending.suffix(room)
                for lost in pending.dropLast(keep.count) { letGo(lost) }
                buffer.replaceSubrange(head..<head, with: keep)
                stats.writeErrors += 1
                let firstFailure = !stats.failing
                stats.failing = true
                condition.unlock()
                if firstFailure {
                    logger.error(
                        "cannot write job outcomes to PostgreSQL, buffering and retrying: \(failure)",
                        metadata: ["backlog": "\(keep.count)"])
                }
                // Back off without holding the lock; shutdown wakes us.
                condition.lock()
                if !stopping { _ = condition.wait(until: Date(timeIntervalSinceNow: backoff)) }
                condition.unlock()
                backoff = min(backoff * 2, configuration.maximumBackoff)
            } else {
                var stored: [JournalRef] = []
                for ref in pending.compactMap(\.journal) {
                    guard let n = outstanding[ref] else { continue }
                    if n <= 1 {
                        outstanding.removeValue(forKey: ref)
                        stored.append(ref)
                    } else {
                        outstanding[ref] = n - 1
                    }
                }
                stats.written += batch.count - refused.count
                stats.refused += refused.count
                if stats.failing { logger.notice("writing job outcomes to PostgreSQL again") }
                stats.failing = false
                backoff = 0.1
                condition.broadcast()
                condition.unlock()
                deleteFromJournals(stored)
            }
        }
    }

    // MARK: Journals

    /// Deletes journal batches whose outcomes are all stored (and any whose deletion failed before). A failure keeps
    /// them for the next time: written twice at worst, never lost.
    private func deleteFromJournals(_ refs: [JournalRef]) {
        guard let redis else { return }
        condition.lock()
        var all = undeleted
        undeleted.removeAll()
        condition.unlock()
        all += refs
        if all.isEmpty { return }
        var byKey: [String: [String]] = [:]
        for ref in all { byKey[ref.key, default: []].append(ref.field) }
        let commands = byKey.map { key, fields in RedisCommand(["HDEL", key] + fields) }
        do {
            try redis.runBlocking { connection in
                for reply in try connection.pipeline(commands) { try reply.check() }
            }
        } catch {
            condition.lock()
            // Bounded: past this, the leftovers are simply written again when their journal is recovered.
            undeleted = Array((all + undeleted).suffix(200_000))
            condition.unlock()
        }
    }

    /// Finds orphaned journals (of reaped or stopped processes), and this store's own after an overflow, and feeds
    /// their entries to the flushers; an emptied orphan is forgotten. One store at a time recovers a journal.
    private func recoveryLoop() {
        guard let journal, let redis, journalKey != nil else { return }
        let keys = journal.keys
        let outage = OutageLog("recovering job outcomes from redis")
        while true {
            condition.lock()
            if !stopping { _ = condition.wait(until: Date(timeIntervalSinceNow: journal.recoveryInterval)) }
            if stopping {
                condition.unlock()
                return
            }
            let readOwn = ownJournalBehind && pendingCount + inFlight == 0
            if readOwn { ownJournalBehind = false }
            let room = configuration.capacity - pendingCount - inFlight
            condition.unlock()
            if room < configuration.batchSize { continue }
            do {
                var targets = readOwn ? try ownJournals(redis: redis) : []
                let sets = try orphanSets(redis: redis)
                let orphans = try redis.runBlocking { connection in
                    try connection.pipeline(sets.map { RedisCommand("SMEMBERS", $0) }).flatMap { try $0.check().array?.compactMap(\.text) ?? [] }
                }
                targets += orphans.filter { !journal.isOwn($0) }
                for key in targets where !(try recover(key, own: journal.isOwn(key), redis: redis, keys: keys)) {
                    // The buffer filled before the journal was read to its end: read it again once it drains.
                    if journal.isOwn(key) {
                        condition.lock()
                        ownJournalBehind = true
                        condition.unlock()
                    }
                }
                outage.succeeded(logger: logger)
            } catch {
                outage.failed(error, logger: logger)
            }
        }
    }

    /// Reads one journal into the buffer (up to the buffer's room); forgets an orphan that is empty. Returns false
    /// when the buffer filled before the end.
    @discardableResult
    private func recover(_ key: String, own: Bool, redis: RedisThread, keys: QueueKeys) throws -> Bool {
        guard let journal else { return true }
        let lock = key + ":recovering"
        let me = journalKey ?? ""
        if !own {
            let locked = try redis.runBlocking { connection in
                try connection.command("SET", lock, me, "NX", "EX", 30).check().text == "OK"
            }
            guard locked else { return true }
        }
        defer {
            if !own { _ = try? redis.runBlocking { connection in try connection.command("DEL", lock) } }
        }
        var cursor = "0"
        var found = 0
        repeat {
            let reply = try redis.runBlocking { [cursor] connection in
                try connection.command("HSCAN", key, cursor, "COUNT", 500).check().array ?? []
            }
            guard reply.count == 2, let next = reply[0].text, let items = reply[1].array else { break }
            cursor = next
            var i = 0
            var unreadable: [String] = []
            while i + 1 < items.count {
                defer { i += 2 }
                guard let field = items[i].text, let blob = items[i + 1].bytes else { continue }
                let ref = JournalRef(key: key, field: field)
                condition.lock()
                let known = outstanding[ref] != nil
                condition.unlock()
                if known { continue }
                // The batch's outcomes, one COPY line each.
                var rows: [Pending] = []
                for line in blob.split(separator: 10, omittingEmptySubsequences: true) {
                    let bytes = Array(line) + [10]
                    if let row = JobResultRecord(copyLine: bytes) { rows.append(Pending(record: row, line: bytes, journal: ref)) }
                }
                if rows.isEmpty {
                    unreadable.append(field)
                    continue
                }
                // A batch goes in whole, or waits for the buffer to drain (an empty buffer takes any batch).
                condition.lock()
                let used = pendingCount + inFlight
                if used > 0 && used + rows.count > configuration.capacity {
                    condition.unlock()
                    return false
                }
                abandoned.remove(ref)
                condition.unlock()
                found += rows.count
                for row in rows { enqueue(row, recovered: true) }
            }
            if !unreadable.isEmpty {
                logger.error("dropped unreadable entries of an outcome journal", metadata: ["journal": "\(key)", "entries": "\(unreadable.count)"])
                _ = try redis.runBlocking { connection in try connection.command(RedisCommand(["HDEL", key] + unreadable)) }
            }
        } while cursor != "0"
        if found > 0 {
            let what = own ? "reading back job outcomes the full buffer let go" : "recovering job outcomes acknowledged by a stopped worker"
            logger.notice("\(what)", metadata: ["journal": "\(key)", "outcomes": "\(found)"])
        }
        if !own && found == 0 {
            // Nothing left that is not already being written: forget the orphan once it is empty.
            _ = try redis.runBlocking { connection in
                try connection.command("EVAL", ResultStore.forgetEmptyOrphan, 2, key, journal.orphanSet(of: key)).check()
            }
        }
        return true
    }

    /// KEYS: a journal, the orphaned-journals set. Forgets the journal if it is empty.
    static let forgetEmptyOrphan = """
        if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], KEYS[1]) end
        return 0
        """

    /// Writes a batch and returns the rows PostgreSQL refused even after salvaging (see `store`). Throws only
    /// what writing again could fix: a lost connection, a server error that is not about these rows.
    /// - Parameter lines: the batch's COPY text when it is already built (the journal's lines), tried first.
    static func write(_ batch: [JobResultRecord], lines: [UInt8]? = nil, on connection: PostgresConnection, logger: Logger) throws
        -> [JobResultRecord]
    {
        // One span per batch when the process traces: a trace of its own, since the batch serves many jobs.
        try Traced.root(
            "COPY conveyor.job_results",
            attributes: [
                "db.system.name": "postgresql", "db.operation.name": "COPY", "db.collection.name": "conveyor.job_results",
                "conveyor.results.rows": .int64(Int64(batch.count)),
            ]
        ) { span in
            let refused = try writeRows(batch, lines: lines, on: connection, logger: logger)
            if !refused.isEmpty { span.attributes["conveyor.results.refused"] = refused.count }
            return refused
        }
    }

    private static func writeRows(_ batch: [JobResultRecord], lines: [UInt8]?, on connection: PostgresConnection, logger: Logger) throws
        -> [JobResultRecord]
    {
        if let lines {
            let copyError: PostgresError
            do {
                _ = try connection.copyIn(copyStatement, lines)
                return []
            } catch {
                copyError = error
            }
            // A stored jid or a row PostgreSQL refuses: the slow path below sorts it out. Anything else is retried.
            if !copyError.isUniqueViolation && !copyError.isDataError { throw copyError }
        }
        var refused: [JobResultRecord] = []
        try store(batch[...], on: connection, logger: logger, refused: &refused)
        return refused
    }

    /// Fast path first: one `COPY` of the whole batch, which suits nearly every batch (each jid finishes once).
    /// A duplicate jid (a replayed job, or the same jid twice in the batch) makes the COPY fail as a whole; the
    /// batch then goes through the upsert. A row PostgreSQL refuses (class 22/23: text or JSON it cannot store)
    /// is found by halving the batch, so it costs only itself: it is written without its result, or, failing
    /// that, refused and logged. The rest of the batch is written either way.
    private static func store(_ rows: ArraySlice<JobResultRecord>, on connection: PostgresConnection, logger: Logger,
                              refused: inout [JobResultRecord]) throws {
        if rows.isEmpty { return }
        let copyError: PostgresError
        do {
            try connection.copyIn(copyStatement, copyText(rows))
            return
        } catch {
            copyError = error
        }
        if copyError.isUniqueViolation {
            let upsertError: PostgresError
            do {
                try upsert(Array(rows), on: connection)
                return
            } catch {
                upsertError = error
            }
            if !upsertError.isDataError { throw upsertError }
        } else if !copyError.isDataError {
            throw copyError
        }
        if rows.count > 1 {
            let middle = rows.startIndex + rows.count / 2
            try store(rows[..<middle], on: connection, logger: logger, refused: &refused)
            try store(rows[middle...], on: connection, logger: logger, refused: &refused)
            return
        }
        let row = rows[rows.startIndex]
        var plain = row
        plain.result = nil
        let plainError: PostgresError
        do {
            try upsert([plain], on: connection)
            logger.warning("PostgreSQL refused the result of a job outcome; recorded it without its result",
                           metadata: ["jid": "\(row.jid)", "job.class": "\(row.jobClass)"])
            return
        } catch {
            plainError = error
        }
        if !plainError.isDataError { throw plainError }
        logger.error("PostgreSQL refused a job outcome; it is not recorded: \(plainError)",
                     metadata: ["jid": "\(row.jid)", "job.class": "\(row.jobClass)"])
        refused.append(row)
    }

    static let insertColumns =
        "jid, job_class, queue, status, attempts, result, error_class, error_message, correlation_key, enqueued_at, started_at, finished_at"

    static let copyStatement = "COPY conveyor.job_results (\(insertColumns)) FROM STDIN"

    /// The rows in COPY's text format: tab-separated, `\N` for NULL, timestamps as UTC text.
    static func copyText(_ rows: ArraySlice<JobResultRecord>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(rows.count * 160)
        for r in rows { JobResultCopy.appendLine(r, to: &out) }
        return out
    }

    /// A PostgreSQL array literal in text form: `{"a","b\\"c",NULL}`. NUL becomes U+FFFD, as in `JobResultCopy.field`.
    static func postgresArray(_ values: [String?]) -> String {
        var out = "{"
        out.reserveCapacity(values.count * 16)
        for (i, v) in values.enumerated() {
            if i > 0 { out += "," }
            guard let v else {
                out += "NULL"
                continue
            }
            out += "\""
            if v.utf8.contains(where: { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") || $0 == 0 }) {
                for ch in v.unicodeScalars {
                    if ch == "\"" || ch == "\\" { out += "\\" }
                    out.unicodeScalars.append(ch == "\0" ? "\u{FFFD}" : ch)
                }
            } else {
                out += v
            }
            out += "\""
        }
        return out + "}"
    }

    /// One multi-row upsert. A later outcome of the same jid (a dead job replayed and then succeeded) replaces
    /// the earlier one; an older one never overwrites a newer.
    static func upsert(_ batch: [JobResultRecord], on connection: PostgresConnection) throws(PostgresError) {
        // ON CONFLICT cannot touch one row twice in a statement: keep the latest outcome per jid.
        var latest: [String: Int] = [:]
        for (i, r) in batch.enumerated() {
            if let j = latest[r.jid], batch[j].finishedAt > r.finishedAt { continue }
            latest[r.jid] = i
        }
        let rows = latest.values.sorted().map { JobResultCopy.storable(batch[$0]) }
        // Twelve array parameters, one per column, unnested server-side: one short statement to parse and plan
        // whatever the batch size (a VALUES list with 12 parameters per row costs several times more).
        func column(_ value: (JobResultRecord) -> String?) -> String { postgresArray(rows.map(value)) }
        let parameters: [(any PostgresEncodable)?] = [
            column { $0.jid }, column { $0.jobClass }, column { $0.queue }, column { $0.status }, column { String($0.attempts) },
            column { $0.result }, column { $0.errorClass }, column { $0.errorMessage }, column { $0.correlationKey },
            column { $0.enqueuedAt.map { "\($0)" } }, column { "\($0.startedAt)" }, column { "\($0.finishedAt)" },
        ]
        let sql = """
            INSERT INTO conveyor.job_results (\(insertColumns))
            SELECT jid, job_class, queue, status, attempts, result, error_class, error_message, correlation_key,
                   to_timestamp(enqueued_at), to_timestamp(started_at), to_timestamp(finished_at)
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::jsonb[], $7::text[], $8::text[],
                        $9::text[], $10::float8[], $11::float8[], $12::float8[])
                 AS t(jid, job_class, queue, status, attempts, result, error_class, error_message, correlation_key,
                      enqueued_at, started_at, finished_at)
            ON CONFLICT (jid) DO UPDATE SET job_class = EXCLUDED.job_class, queue = EXCLUDED.queue,
            status = EXCLUDED.status, attempts = EXCLUDED.attempts, result = EXCLUDED.result,
            error_class = EXCLUDED.error_class, error_message = EXCLUDED.error_message,
            correlation_key = EXCLUDED.correlation_key, enqueued_at = EXCLUDED.enqueued_at,
            started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, recorded_at = now()
            WHERE conveyor.job_results.finished_at <= EXCLUDED.finished_at
            """
        try connection.query(sql, parameters)
    }
}
