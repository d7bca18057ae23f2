public import ConveyorCore
import Foundation
public import Logging
public import Postgres

/// Records every terminal job outcome in `conveyor.job_results`, in batches, off the worker's path.
///
/// `jobFinished` only appends to an in-memory buffer; a flusher thread with its own connection writes up to
/// `batchSize` rows per multi-row `INSERT ... ON CONFLICT (jid) DO UPDATE`. When PostgreSQL is down the rows stay
/// buffered and the flusher retries with backoff (reconnecting), so outcomes survive a restart of the database.
/// The buffer is bounded (`capacity`): when it is full the OLDEST buffered outcome is dropped and counted in
/// `stats.dropped` (`conveyor_result_writes_dropped_total`), so a long outage costs memory up to a known bound
/// and never crashes the worker.
public final class ResultStore: JobObserver, @unchecked Sendable {
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

        /// Reads `CONVEYOR_RESULTS_BATCH`, `CONVEYOR_RESULTS_BUFFER`, `CONVEYOR_RESULTS_FLUSH_MS`.
        public init(environment: [String: String]) {
            self.init()
            if let n = environment["CONVEYOR_RESULTS_BATCH"].flatMap({ Int($0) }), n > 0 { batchSize = min(n, 5000) }
            if let n = environment["CONVEYOR_RESULTS_BUFFER"].flatMap({ Int($0) }), n > 0 { capacity = n }
            if let n = environment["CONVEYOR_RESULTS_FLUSH_MS"].flatMap({ Double($0) }), n >= 0 { flushInterval = n / 1000 }
            if let n = environment["CONVEYOR_RESULTS_WRITERS"].flatMap({ Int($0) }), n > 0 { writers = min(n, 8) }
        }
    }

    /// Counters for metrics and tests.
    public struct Stats: Sendable, Equatable {
        /// Outcomes waiting to be written.
        public var backlog: Int
        public var written: Int
        /// Outcomes dropped because the buffer was full.
        public var dropped: Int
        /// Failed write attempts (each is retried).
        public var writeErrors: Int
        /// Whether the last write attempt failed.
        public var failing: Bool
    }

    private let url: String
    private let configuration: Configuration
    private let logger: Logger
    private let condition = NSCondition()
    private var buffer: [JobResultRecord] = []
    private var head = 0
    private var inFlight = 0
    private var stats = Stats(backlog: 0, written: 0, dropped: 0, writeErrors: 0, failing: false)
    private var stopping = false
    /// Callers waiting in `drain`: the flusher writes partial batches at once while any wait.
    private var drainers = 0
    private var finished = false

    private let prepare: (@Sendable (PostgresConnection) throws -> Void)?

    /// - Parameters:
    ///   - prepare: runs on the flusher's connection before its first write succeeds (e.g. migrations that could
    ///     not run at start because PostgreSQL was down); retried with the write until it succeeds.
    public init(
        databaseURL: String, configuration: Configuration = Configuration(), logger: Logger = Logger(label: "conveyor.results"),
        prepare: (@Sendable (PostgresConnection) throws -> Void)? = nil
    ) {
        self.url = databaseURL
        self.configuration = configuration
        self.logger = logger
        self.prepare = prepare
        for i in 0..<max(1, configuration.writers) {
            let thread = Thread { [self] in flushLoop() }
            thread.name = "conveyor-results-\(i)"
            thread.start()
        }
    }

    // MARK: JobObserver

    public func jobFinished(_ outcome: JobOutcome) {
        guard let row = JobResultRecord(outcome) else { return }
        record(row)
    }

    /// Buffers one outcome for writing.
    public func record(_ record: JobResultRecord) {
        condition.lock()
        // The bound covers what the flusher is writing right now too.
        if pendingCount + inFlight >= configuration.capacity {
            if pendingCount > 0 {
                head += 1
            } else {
                // Everything buffered is being written: the new outcome is the one that does not fit.
                stats.dropped += 1
                condition.unlock()
                return
            }
            stats.dropped += 1
            if stats.dropped == 1 || stats.dropped % 1000 == 0 {
                logger.error(
                    "result buffer full (\(configuration.capacity) outcomes, CONVEYOR_RESULTS_BUFFER): dropping the oldest; PostgreSQL unreachable?",
                    metadata: ["dropped": "\(stats.dropped)"])
            }
        }
        buffer.append(record)
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
    @discardableResult
    public func shutdown(timeout: Double) -> Int {
        drain(timeout: timeout)
        condition.lock()
        stopping = true
        condition.broadcast()
        let left = pendingCount + inFlight
        condition.unlock()
        if left > 0 {
            logger.error("\(left) job outcomes were not written to PostgreSQL before shutdown")
        }
        return left
    }

    private var pendingCount: Int { buffer.count - head }

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
            let batch = Array(buffer[head..<(head + take)])
            head += take
            inFlight += take
            if head > 4096 && head * 2 > buffer.count {
                buffer.removeFirst(head)
                head = 0
            }
            condition.unlock()
            if batch.isEmpty { continue }

            var failure: (any Error)?
            do {
                if connection == nil || connection!.isBroken { connection = try PostgresConnection(url: url) }
                if !prepared {
                    try prepare?(connection!)
                    prepared = true
                }
                try Self.write(batch, on: connection!)
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
                let keep = batch.suffix(room)
                stats.dropped += batch.count - keep.count
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
                stats.written += batch.count
                if stats.failing { logger.notice("writing job outcomes to PostgreSQL again") }
                stats.failing = false
                backoff = 0.1
                condition.broadcast()
                condition.unlock()
            }
        }
    }

    /// A PostgreSQL array literal in text form: `{"a","b\\"c",NULL}`.
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
            if v.utf8.contains(where: { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
                for ch in v.unicodeScalars {
                    if ch == "\"" || ch == "\\" { out += "\\" }
                    out.unicodeScalars.append(ch)
                }
            } else {
                out += v
            }
            out += "\""
        }
        return out + "}"
    }

    static let insertColumns =
        "jid, job_class, queue, status, attempts, result, error_class, error_message, correlation_key, enqueued_at, started_at, finished_at"

    /// One multi-row upsert. A later outcome of the same jid (a dead job replayed and then succeeded) replaces
    /// the earlier one; an older one never overwrites a newer.
    static func write(_ batch: [JobResultRecord], on connection: PostgresConnection) throws {
        // ON CONFLICT cannot touch one row twice in a statement: keep the latest outcome per jid.
        var latest: [String: Int] = [:]
        for (i, r) in batch.enumerated() {
            if let j = latest[r.jid], batch[j].finishedAt > r.finishedAt { continue }
            latest[r.jid] = i
        }
        let rows = latest.values.sorted().map { batch[$0] }
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
