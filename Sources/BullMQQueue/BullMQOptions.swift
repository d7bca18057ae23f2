public import ConveyorCore

/// How a Conveyor worker takes part in BullMQ's protocol on its queues (BullMQ's `WorkerOptions`, in milliseconds).
public struct BullMQOptions: Sendable {
    /// The key prefix (`bull`): a queue's keys are `<prefix>:<queue>:<suffix>`.
    public var prefix: String
    /// How long a fetched job's lock lasts without renewal. BullMQ's default is 30 s; a Conveyor worker may use
    /// shorter locks than its Node peers (each worker sets the locks of the jobs it takes).
    public var lockDuration: Int
    /// How often this worker runs the queue's shared stalled-job check (`stalled-check` lets one worker run it per
    /// interval).
    public var stalledInterval: Int
    /// How many times a job may stall before the next fetch fails it (`job stalled more than allowable limit`).
    public var maxStalledCount: Int
    /// What completed and failed jobs keep when a job says nothing (`removeOnComplete` / `removeOnFail` of the
    /// worker): nil keeps them all, as BullMQ's default.
    public var removeOnComplete: JSONValue?
    public var removeOnFail: JSONValue?
    /// The worker's `limiter` (BullMQ's `Worker({limiter: {max, duration}})`): at most `max` jobs started per `duration`
    /// milliseconds on each queue, counted in the queue's limiter key that every worker shares. A queue's own global
    /// rate limit (`meta` `max`/`duration`, set by `Queue.setGlobalRateLimit`) wins over it, as in BullMQ.
    public var limiter: Limiter?

    public struct Limiter: Sendable, Equatable {
        public var max: Int
        public var duration: Int

        public init(max: Int, duration: Int) {
            self.max = Swift.min(Swift.max(max, 1), 1_000_000)
            self.duration = Swift.min(Swift.max(duration, 1), 86_400_000)
        }
    }

    public init(
        prefix: String = "bull", lockDuration: Int = 30_000, stalledInterval: Int = 30_000, maxStalledCount: Int = 1,
        removeOnComplete: JSONValue? = nil, removeOnFail: JSONValue? = nil, limiter: Limiter? = nil
    ) {
        self.limiter = limiter
        self.prefix = prefix
        self.lockDuration = min(max(lockDuration, 1000), 3_600_000)
        self.stalledInterval = min(max(stalledInterval, 500), 3_600_000)
        self.maxStalledCount = min(max(maxStalledCount, 0), 1_000_000)
        self.removeOnComplete = removeOnComplete
        self.removeOnFail = removeOnFail
    }

    /// The most a prefix or queue name may weigh (they name Redis keys).
    public static let maxNameBytes = 200

    /// Refuses a prefix or queue name that cannot name BullMQ keys: empty, too long, with a colon (BullMQ's separator)
    /// or a control character.
    /// A keep setting (`keep`, `remove`, a count, an age) as BullMQ's `removeOnComplete`/`removeOnFail` value: nil
    /// keeps all, `true` removes at once, a number keeps that many, `{"age": seconds}` keeps them that long.
    public static func keep(parsing text: String) -> JSONValue?? {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        switch t {
        case "keep", "all", "false": return .some(nil)
        case "remove", "true": return .some(.bool(true))
        default: break
        }
        if t.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }), !t.isEmpty, t.count <= 10, let n = Int(t), n <= Int(Int32.max) {
            return .some(JSONValue(n))
        }
        if let seconds = Setting.seconds(t), seconds >= 1, seconds <= 365 * 86_400, t.last.map({ !$0.isNumber }) == true {
            return .some(.object(JSONObject([("age", JSONValue(Saturating.int(seconds.rounded())))])))
        }
        return nil
    }

    /// `off`, or `MAX/DURATION`: `100/1s`, `5/500ms`, `30/1m`, `10/s` (one unit); 1 to 1,000,000 jobs per 1 ms to 24 h.
    /// `.some(nil)` is off; nil is unreadable.
    public static func limiter(parsing text: String) -> Limiter?? {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        if t == "off" || t == "none" || t.isEmpty { return .some(nil) }
        let parts = t.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count <= 7, parts[0].unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }),
            let max = Int(parts[0]), (1...1_000_000).contains(max)
        else { return nil }
        var window = String(parts[1])
        if let first = window.first, !first.isNumber && first != "." { window = "1" + window }
        guard window.last.map({ !$0.isNumber }) == true, let seconds = Setting.seconds(window), seconds >= 0.001, seconds <= 86_400 else { return nil }
        // Finite and within 0.001...86400 (checked above): at most 86,400,000 ms, no trap.
        return .some(Limiter(max: max, duration: Int((seconds * 1000).rounded())))
    }

    static func limiterProblem(_ text: String) -> String? {
        limiter(parsing: text) == nil ? "expected off or MAX/DURATION (1-1000000 jobs per 1ms-24h, like 100/1s or 30/1m)" : nil
    }

    static func keepProblem(_ text: String) -> String? {
        keep(parsing: text) == nil ? "expected keep, remove, a count (0-2147483647) or an age (1s-365d, like 24h)" : nil
    }

    public static func validate(name: String, as what: String) throws(JobFailure) {
        if name.isEmpty { throw .permanent(.invalidConfiguration, "BullMQ \(what) must not be empty") }
        if name.utf8.count > maxNameBytes {
            throw .permanent(.invalidConfiguration, "BullMQ \(what) is \(name.utf8.count) bytes long: at most \(maxNameBytes)")
        }
        if name.contains(":") { throw .permanent(.invalidConfiguration, "BullMQ \(what) \"\(name)\" must not contain ':'") }
        if Job.containsControlCharacters(name) {
            throw .permanent(.invalidConfiguration, "BullMQ \(what) must not contain control characters")
        }
    }
}

/// The keys of one BullMQ queue (BullMQ's `QueueKeys`), built once: every script call names a dozen of them. A class,
/// so that what holds it (each job this worker holds) copies one reference, not twenty strings.
public final class BullMQKeys: Sendable {
    public let prefix: String
    public let queue: String
    /// `<prefix>:<queue>:`: job keys are this plus the id.
    public let base: String
    public let wait: String
    public let active: String
    public let prioritized: String
    public let events: String
    public let stalled: String
    public let limiter: String
    public let delayed: String
    public let paused: String
    public let meta: String
    public let pc: String
    public let marker: String
    public let completed: String
    public let failed: String
    public let stalledCheck: String
    public let repeatKey: String
    public let metricsCompleted: String
    public let metricsFailed: String

    public init(prefix: String, queue: String) {
        self.prefix = prefix
        self.queue = queue
        let base = "\(prefix):\(queue):"
        self.base = base
        wait = base + "wait"
        active = base + "active"
        prioritized = base + "prioritized"
        events = base + "events"
        stalled = base + "stalled"
        limiter = base + "limiter"
        delayed = base + "delayed"
        paused = base + "paused"
        meta = base + "meta"
        pc = base + "pc"
        marker = base + "marker"
        completed = base + "completed"
        failed = base + "failed"
        stalledCheck = base + "stalled-check"
        repeatKey = base + "repeat"
        metricsCompleted = base + "metrics:completed"
        metricsFailed = base + "metrics:failed"
    }

    public func key(_ suffix: String) -> String { base + suffix }
    public func job(_ id: String) -> String { base + id }
}
