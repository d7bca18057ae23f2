/// A job's uniqueness, from its envelope (Sidekiq Enterprise's fields): `"unique_for": <seconds>` turns it on,
/// `"unique_key"` names the key (default: a digest of class, queue and canonical arguments), `"unique_until"` says
/// whether the key is held until the job starts (`"start"`) or until its outcome is recorded (`"finish"`, default).
public struct UniqueJob: Sendable, Equatable {
    /// The longest `unique_for` accepted: 30 days.
    public static let maximumSeconds = 2_592_000
    /// The longest `unique_key` accepted, in UTF-8 bytes.
    public static let maximumKeyBytes = 256

    public enum Until: String, Sendable { case start, finish }

    /// Seconds the key is held at most (the lock's expiry), 1...`maximumSeconds`.
    public var seconds: Int
    /// The key as the lock store names it: the producer's `unique_key`, or nil for the default digest.
    public var key: String?
    public var until: Until

    /// The job's uniqueness, nil when it has no `unique_for`; a `MalformedJob` failure naming the field and its value
    /// when a field is out of range (not a whole number of seconds in 1...30 days, an empty, overlong or control-
    /// character key, an unknown `unique_until`).
    public init?(payload: JSONObject) throws(JobFailure) {
        guard let raw = payload["unique_for"], raw != .null else {
            if payload["unique_key"] != nil || payload["unique_until"] != nil {
                throw .permanent(.malformedJob, "unique_key/unique_until given without unique_for")
            }
            return nil
        }
        // Whole seconds only: 1e400, 1e308, fractions, negatives and strings are refused, never rounded or clamped.
        guard case .number(let text) = raw, let seconds = Int(text), (1...Self.maximumSeconds).contains(seconds) else {
            throw .permanent(.malformedJob, "unique_for is \(raw.text.prefix(64)): must be whole seconds in 1...\(Self.maximumSeconds)")
        }
        self.seconds = seconds
        switch payload["unique_key"] {
        case nil, .null?: key = nil
        case .string(let s)?:
            guard !s.isEmpty, s.utf8.count <= Self.maximumKeyBytes, !s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
                throw .permanent(
                    .malformedJob, "unique_key must be 1...\(Self.maximumKeyBytes) bytes without control characters (got \(s.utf8.count) bytes)")
            }
            key = s
        case let other?: throw .permanent(.malformedJob, "unique_key must be a string, got \(other.typeName)")
        }
        switch payload["unique_until"] {
        case nil, .null?: until = .finish
        case .string(let s)? where Until(rawValue: s) != nil: until = Until(rawValue: s)!
        case let other?: throw .permanent(.malformedJob, "unique_until is \(other.text.prefix(64)): must be \"start\" or \"finish\"")
        }
    }

    /// What the default key digests: class, queue and the arguments with object keys sorted (so `{"a":1,"b":2}` and
    /// `{"b":2,"a":1}` are the same job), as compact JSON.
    /// What the job's lock key digests: `key:<unique_key>`, or `digest:` and the canonical class, queue and arguments.
    public func lockMaterial(jobClass: String, queue: String, arguments: JSONObject) -> [UInt8] {
        if let key { return Array("key:".utf8) + Array(key.utf8) }
        return Array("digest:".utf8) + Self.defaultKeyMaterial(jobClass: jobClass, queue: queue, arguments: arguments)
    }

    /// The lock a terminal outcome of `job` gives up (`unique_until: finish`), as the queue backend releases it in
    /// the same step as the outcome; nil for a job without a valid `unique_for` or one released at its start.
    public static func release(for job: Job) -> JobTransitions.Move.UniqueRelease? {
        guard let unique = try? UniqueJob(payload: job.payload), unique.until == .finish else { return nil }
        return .init(material: unique.lockMaterial(jobClass: job.jobClass, queue: job.queue, arguments: job.arguments), jid: job.jid)
    }

    public static func defaultKeyMaterial(jobClass: String, queue: String, arguments: JSONObject) -> [UInt8] {
        JSONValue.array([.string(jobClass), .string(queue), canonical(.object(arguments))]).bytes
    }

    static func canonical(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let o):
            .object(JSONObject(o.pairs.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }.map { ($0.key, canonical($0.value)) }))
        case .array(let items): .array(items.map(canonical))
        default: value
        }
    }
}

extension ErrorClass {
    /// Not run: another jid holds the job's unique key.
    public static let duplicateJob: ErrorClass = "DuplicateJob"
}

/// Where unique keys are held (Redis for a real worker): one holder jid per key, with an expiry.
public protocol UniqueLockStore: Sendable {
    /// Takes `unique` for `jid` (or keeps it, refreshing nothing, when `jid` already holds it, as a retried or
    /// producer-locked job does). Returns the other jid holding it, or nil when `jid` holds it now.
    func acquire(_ unique: UniqueJob, job: Job) async throws -> String?
    /// Gives `unique` up if, and only if, `jid` still holds it.
    func release(_ unique: UniqueJob, job: Job) async throws
}

/// Runs a job with `unique_for` only while it holds its unique key: a duplicate ends `skipped` with `DuplicateJob`
/// naming the holder's jid. The key is given up when the job starts (`unique_until: start`), or with its terminal
/// outcome (`finish`: succeeded, dead or cancelled), by the queue backend in the same step as the outcome; a retrying
/// job keeps it. A holder that never finishes loses it at `unique_for`.
public struct UniqueJobsMiddleware: JobMiddleware {
    let locks: any UniqueLockStore

    public init(locks: any UniqueLockStore) { self.locks = locks }

    public func handle(_ job: Job, context: JobContext, next: JobMiddlewareNext) async throws -> JSONValue {
        guard let unique = try UniqueJob(payload: job.payload) else { return try await next(job, context) }
        let holder: String?
        do {
            holder = try await locks.acquire(unique, job: job)
        } catch {
            throw JobFailure.transient("UniqueLockUnavailable", "unique lock for \(job.jid) could not be taken: \(error)")
        }
        if let holder {
            throw JobFailure.skipped(.duplicateJob, "\(job.jobClass) \(job.jid) not run: its unique key is held by \(holder)")
        }
        if unique.until == .start { try? await locks.release(unique, job: job) }
        return try await next(job, context)
    }

    // A terminal outcome's release is the queue backend's, in the same step as the outcome
    // (`JobTransitions.Move.uniqueRelease`): released here, before the ack applies, a duplicate could run while the
    // holder's outcome is not yet written.

}
