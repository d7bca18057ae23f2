import Foundation

/// Where a failed job goes next.
public enum FailureDestination: Sendable, Equatable {
    case retry(at: Double)
    /// Run again at `at` without having spent an attempt (the destination asked to wait).
    case deferred(at: Double)
    case dead
}

/// The payload rewrites and Redis commands behind every move of a job between lists and sets.
public enum JobTransitions {
    /// Records a failed run on the payload (Sidekiq's fields) and decides retry or dead.
    public static func failed(
        _ job: Job, failure: JobFailure, policy: RetryPolicy, now: Double, random: Double = Double.random(in: 0..<1)
    ) -> (payload: JSONObject, destination: FailureDestination) {
        var payload = job.payload
        if failure.defersJob, let deferrals = deferrals(payload), deferrals < maximumDeferrals {
            payload["overrated"] = JSONValue(deferrals + 1)
            payload["error_class"] = .string(errorClassField(failure.errorClass))
            payload["error_message"] = .string(truncated(StoredErrorMessage.clean(failure.message, jid: job.jid)))
            let backoff = policy.delay(retryCount: max(0, job.previousFailures), random: random)
            let wait = failure.retryAfter.flatMap { $0.isNaN ? nil : $0 } ?? backoff
            return (payload, .deferred(at: now + min(max(wait, 1), maximumDeferralWait)))
        }
        let failures = Saturating.add(job.previousFailures, 1)
        let maxAttempts = policy.maxAttempts(jobRetryField: payload["retry"])
        // `retry_count` stays within what `Job.init` accepts: a job whose count reaches the top of that range is dead.
        let lastRetryCount = JobEnvelope.retryCountRange.upperBound
        payload["retry_count"] = JSONValue(min(failures - 1, lastRetryCount))
        payload["error_class"] = .string(errorClassField(failure.errorClass))
        payload["error_message"] = .string(truncated(StoredErrorMessage.clean(failure.message, jid: job.jid)))
        if payload["failed_at"] == nil {
            payload["failed_at"] = JobTime.value(now, like: payload)
        } else {
            payload["retried_at"] = JobTime.value(now, like: payload)
        }
        // Whether it died of a permanent error (no retry could help) rather than of used-up retries: pages say so.
        payload["error_permanent"] = failure.isPermanent ? .bool(true) : nil
        if failure.isPermanent || failures >= maxAttempts || failures - 1 >= lastRetryCount {
            return (payload, .dead)
        }
        let wait = Saturating.clamp(failure.retryAfter ?? 0, to: 0...RetryPolicy.maxDelay)
        return (payload, .retry(at: now + max(policy.delay(retryCount: failures - 1, random: random), wait)))
    }

    /// Deferrals a job may take without spending an attempt (Sidekiq Enterprise's limiter reschedules 20 times).
    public static let maximumDeferrals = 20
    /// The longest a deferral waits, whatever the destination said.
    public static let maximumDeferralWait: Double = 86_400

    /// The deferrals a job took (Sidekiq Enterprise's `overrated`): 0 without the field, nil when it is not a count
    /// (then no deferral is granted: the wait is an attempt).
    static func deferrals(_ payload: JSONObject) -> Int? {
        guard let value = payload["overrated"], value != .null else { return 0 }
        guard let n = value.intValue, (0...maximumDeferrals).contains(n) else { return nil }
        return n
    }

    /// Whether a job that failed for good is kept in the dead set: not with `retry: false`, which Sidekiq discards
    /// (its outcome is still recorded and counted).
    public static func keepsDead(_ payload: JSONObject) -> Bool {
        payload["retry"] != .bool(false)
    }

    /// A job envelope whose arguments Conveyor refuses (not one object): kept as it came, class, jid and args
    /// included, with the failure fields, so operators find it in the dead set by its own jid and class.
    /// `raw` keeps the bytes as they came, as for a malformed payload.
    public static func rejected(_ payload: JSONObject, raw: [UInt8], queue: String, failure: JobFailure, now: Double) -> JSONObject {
        var o = payload
        o["raw"] = .string(String(decoding: raw, as: UTF8.self))
        if !Job.isValidJID(o["jid"]) { o["jid"] = .string(Job.newJID()) }
        if o["queue"]?.stringValue == nil { o["queue"] = .string(queue) }
        o["retry_count"] = 0
        o["error_class"] = .string(errorClassField(failure.errorClass))
        o["error_message"] = .string(truncated(failure.message))
        o["failed_at"] = JobTime.value(now, like: payload)
        return o
    }

    /// A payload Conveyor cannot run as a job, wrapped so the dead set stays readable by Sidekiq's API while
    /// keeping the original bytes (`raw`, or `raw_base64` when they are not UTF-8).
    public static func quarantined(raw: [UInt8], queue: String, failure: JobFailure, now: Double) -> JSONObject {
        var o = JSONObject()
        o["class"] = "conveyor.malformed"
        o["args"] = .array([])
        o["queue"] = .string(queue)
        o["jid"] = .string(Job.newJID())
        o["retry"] = false
        o["retry_count"] = 0
        o["error_class"] = .string(errorClassField(failure.errorClass))
        o["error_message"] = .string(truncated(failure.message))
        o["failed_at"] = JSONValue(now)
        if let text = String(validating: raw, as: UTF8.self) {
            o["raw"] = .string(text)
        } else {
            o["raw_base64"] = .string(base64(raw))
        }
        return o
    }

    /// The job put back on its queue after its process died mid-run: the lost run counts as a failed attempt.
    public static func reaped(_ job: Job, identity: String, policy: RetryPolicy, now: Double) -> (
        payload: JSONObject, dead: Bool
    ) {
        let (payload, destination) = failed(job, failure: workerLost(identity), policy: policy, now: now)
        return (payload, destination == .dead)
    }

    /// The failure of a run whose process died.
    public static func workerLost(_ identity: String) -> JobFailure {
        .transient(.workerLost, "worker process \(identity) stopped heartbeating while running this job (crash, kill -9 or OOM)")
    }

    /// The job moved onto a queue again (promotion, replay): fresh `enqueued_at`, no `at`.
    public static func enqueued(_ payload: JSONObject, now: Double) -> JSONObject {
        var p = payload
        p["at"] = nil
        p["enqueued_at"] = JobTime.value(now, like: payload)
        return p
    }

    /// A job an operator sends back to its queue from the dead or retry set: enqueued now and marked replayed;
    /// `resetAttempts` starts its attempt count over.
    public static func replayed(_ payload: JSONObject, queue: String, resetAttempts: Bool, now: Double) -> JSONObject {
        var p = enqueued(payload, now: now)
        p["queue"] = .string(queue)
        p["replayed_at"] = JobTime.value(now, like: payload)
        if resetAttempts {
            p["retry_count"] = nil
            p["retried_at"] = nil
        }
        return p
    }

    // MARK: Moves out of an in-flight list

    /// One job leaving a process's in-flight list, and what it counts. Built by the worker, the reaper, shutdown and
    /// reconciliation; applied in batches by the queue backend.
    public struct Move: Sendable {
        public enum Target: Sendable, Equatable {
            /// Finished: removed, nothing else.
            case ack
            case retry(payload: [UInt8], at: Double)
            case dead(payload: [UInt8])
            /// Onto a queue: `head` runs it next (shutdown, reaping, reconciling), otherwise behind what is queued.
            case queue(String, payload: [UInt8], head: Bool)
            /// Rewritten in place (a jid given to a job that had none).
            case replace(payload: [UInt8])
        }

        /// What a move adds to Sidekiq's `stat:processed` / `stat:failed`.
        public enum Counts: String, Sendable {
            case none = "0", processed = "1", processedAndFailed = "2", failed = "3"
        }

        /// A terminal outcome kept in Redis with the move, in the same step: durable the instant the job leaves.
        /// The entries of one batch share one field of the journal hash (`a<n>` for the acknowledger's batches,
        /// `r<n>` for the reaper's), their values concatenated: one hash entry per batch, not per job.
        public struct JournalEntry: Sendable {
            public var field: String
            /// One COPY line, newline included.
            public var value: [UInt8]
            /// What the journal built `value` from, handed back with `journaled` so it need not parse the bytes.
            public var record: JobResultRecord?
            public init(field: String, value: [UInt8], record: JobResultRecord? = nil) {
                self.field = field
                self.value = value
                self.record = record
            }
        }

        /// A unique job's lock to give up with the move (its outcome is terminal): the key material and the holder.
        public struct UniqueRelease: Sendable, Equatable {
            public var material: [UInt8]
            public var jid: String
            public init(material: [UInt8], jid: String) {
                self.material = material
                self.jid = jid
            }
        }

        /// The job's receipt from its fetch: which in-flight member leaves, and from which queue's store.
        public var receipt: DeliveryReceipt
        public var target: Target
        public var counts: Counts
        public var journal: JournalEntry?
        /// Released in the same step as the move (single-node layout); nil for most jobs.
        public var uniqueRelease: UniqueRelease?

        public init(receipt: DeliveryReceipt, target: Target, counts: Counts, journal: JournalEntry? = nil) {
            self.receipt = receipt
            self.target = target
            self.counts = counts
            self.journal = journal
        }
    }

    /// The journal field of the acknowledger's batch number `sequence`.
    public static func ackJournalField(_ sequence: UInt64) -> String { "a\(sequence)" }

    /// The journal field of the reaper's batch number `sequence` (its later script calls add `.1`, `.2`, ...).
    public static func reapJournalField(_ sequence: UInt64) -> String { "r\(sequence)" }

    /// An error class as recorded on the job: cut to `JobEnvelope.maxErrorClassBytes` (an error's Swift type name
    /// can be longer), so the rewritten payload still parses when it comes back from the retry set.
    package static func errorClassField(_ errorClass: String) -> String {
        guard errorClass.utf8.count > JobEnvelope.maxErrorClassBytes else { return errorClass }
        var out = ""
        var bytes = 0
        for character in errorClass {
            let size = character.utf8.count
            // Room for the ellipsis (3 bytes).
            if bytes + size > JobEnvelope.maxErrorClassBytes - 3 { break }
            out.append(character)
            bytes += size
        }
        return out + "…"
    }

    package static func truncated(_ message: String) -> String {
        message.utf8.count <= 4000 ? message : String(message.prefix(4000)) + "…"
    }

    package static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
}

extension JSONObject {
    /// The compact JSON text of the object.
    public var bytes: [UInt8] { JSONValue.object(self).bytes }
}
