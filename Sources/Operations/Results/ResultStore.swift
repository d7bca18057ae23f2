public import ConveyorCore
import Foundation
public import Logging
public import Postgres

/// Records every terminal job outcome in `conveyor.job_results`, in batches, off the worker's path.
///
/// `jobFinished` only appends to an in-memory buffer; flusher threads with their own connections write up to
/// `batchSize` rows per `COPY` (an upsert when a jid is already there; see `store`). When PostgreSQL is down the rows stay
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
        /// Outcomes PostgreSQL refused to store, even without their result (logged with their jid).
        public var refused: Int
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
    private var stats = Stats(backlog: 0, written: 0, dropped: 0, refused: 0, writeErrors: 0, failing: false)
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
            var refused: [JobResultRecord] = []
            do {
                if connection == nil || connection!.isBroken { connection = try PostgresConnection(url: url) }
                if !prepared {
                    try prepare?(connection!)
                    prepared = true
                }
                refused = try Self.write(batch, on: connection!, logger: logger)
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
                stats.written += batch.count - refused.count
                stats.refused += refused.count
                if stats.failing { logger.notice("writing job outcomes to PostgreSQL again") }
                stats.failing = false
                backoff = 0.1
                condition.broadcast()
                condition.unlock()
            }
        }
    }

    /// Writes a batch and returns the rows PostgreSQL refused even after salvaging (see `store`). Throws only
    /// what writing again could fix: a lost connection, a server error that is not about these rows.
    static func write(_ batch: [JobResultRecord], on connection: PostgresConnection, logger: Logger) throws -> [JobResultRecord] {
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
        for r in rows {
            copyField(r.jid, &out); out.append(9)
            copyField(r.jobClass, &out); out.append(9)
            copyField(r.queue, &out); out.append(9)
            copyField(r.status, &out); out.append(9)
            out.append(contentsOf: String(r.attempts).utf8); out.append(9)
            copyField(r.result, &out); out.append(9)
            copyField(r.errorClass, &out); out.append(9)
            copyField(r.errorMessage, &out); out.append(9)
            copyField(r.correlationKey, &out); out.append(9)
            if let enqueued = r.enqueuedAt { timestamp(enqueued, &out) } else { out.append(contentsOf: [92, 78]) }
            out.append(9)
            timestamp(r.startedAt, &out); out.append(9)
            timestamp(r.finishedAt, &out); out.append(10)
        }
        return out
    }

    /// One text field: backslash, tab, newline and carriage return escaped; NUL (which PostgreSQL text cannot
    /// hold) replaced by U+FFFD.
    static func copyField(_ value: String?, _ out: inout [UInt8]) {
        guard let value else {
            out.append(contentsOf: [92, 78])  // \N
            return
        }
        for byte in value.utf8 {
            switch byte {
            case 92: out.append(contentsOf: [92, 92])
            case 9: out.append(contentsOf: [92, 116])
            case 10: out.append(contentsOf: [92, 110])
            case 13: out.append(contentsOf: [92, 114])
            case 0: out.append(contentsOf: [0xEF, 0xBF, 0xBD])
            default: out.append(byte)
            }
        }
    }

    /// Unix seconds as `YYYY-MM-DD HH:MM:SS.ffffff+00`, rounded to the microsecond as `to_timestamp` does.
    static func timestamp(_ seconds: Double, _ out: inout [UInt8]) {
        let micros = Int64((seconds * 1_000_000).rounded())
        var secs = micros / 1_000_000
        var fraction = micros % 1_000_000
        if fraction < 0 { fraction += 1_000_000; secs -= 1 }
        var days = secs / 86_400
        var rest = secs % 86_400
        if rest < 0 { rest += 86_400; days -= 1 }
        // Days since 1970-01-01 to a civil date (H. Hinnant's days_from_civil, inverted).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        digits(year, 4, &out); out.append(45); digits(month, 2, &out); out.append(45); digits(day, 2, &out)
        out.append(32)
        digits(rest / 3600, 2, &out); out.append(58); digits(rest / 60 % 60, 2, &out); out.append(58)
        digits(rest % 60, 2, &out); out.append(46); digits(fraction, 6, &out)
        out.append(contentsOf: [43, 48, 48])  // +00
    }

    /// `value` in decimal, zero-padded to `width` digits.
    private static func digits(_ value: Int64, _ width: Int, _ out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: repeatElement(48, count: width))
        var v = value
        var i = start + width - 1
        while i >= start { out[i] = UInt8(48 + v % 10); v /= 10; i -= 1 }
    }

    /// A PostgreSQL array literal in text form: `{"a","b\\"c",NULL}`. NUL becomes U+FFFD, as in `copyField`.
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
