import Foundation

/// Counters of the summariser, shared by every job of the process, read as a `Snapshot` by the metrics
/// exporter. Names follow the Prometheus series they feed (`conveyor_llm_calls_total{provider,outcome}` ...).
public final class SummaryMetrics: @unchecked Sendable {
    /// How one provider call ended.
    public enum CallOutcome: String, Sendable, CaseIterable {
        case success
        /// Transport error, timeout, 5xx, 529, malformed body: counts against the breaker.
        case failure
        /// 429: the provider cools down for its Retry-After.
        case rateLimited = "rate_limited"
        /// 401/403/402/404: the breaker is forced open and `authFailures` raised (an alert).
        case authFailure = "auth_failure"
        /// 400/422/413: the request's fault; the job fails permanently.
        case badRequest = "bad_request"
        /// A 2xx whose text failed the output checks (empty, too long, refusal, foreign URL).
        case rejectedOutput = "rejected_output"
        /// Not called: breaker open, half-open probes taken, or cooling down.
        case notPermitted = "not_permitted"
    }

    /// Upper bounds in seconds of the latency histogram buckets.
    public static let latencyBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    public struct Latency: Sendable, Equatable {
        /// Cumulative counts per bucket of `latencyBuckets`.
        public var buckets: [Int]
        public var count: Int
        public var sum: Double
    }

    public struct Snapshot: Sendable {
        public var calls: [String: [CallOutcome: Int]]
        public var latency: [String: Latency]
        public var inputTokens: [String: Int]
        public var outputTokens: [String: Int]
        /// Summaries served by a provider other than the first one tried.
        public var fallbacks: Int
        /// Summaries from the built-in extractive summariser because no provider answered.
        public var degraded: Int
        /// Summaries from the built-in summariser because no provider is configured.
        public var extractiveOnly: Int
        public var cacheHits: Int
        public var cacheMisses: Int
        /// Jobs that waited for another job's call on the same post instead of calling.
        public var singleFlightWaits: Int
        /// Credential or permission errors per provider (alert on any).
        public var authFailures: [String: Int]
        public var breakers: [CircuitBreaker.Snapshot]

        /// Failed provider calls over all calls made (alert rule: above 0.2).
        public var failureRatio: Double {
            var made = 0, failed = 0
            for (_, outcomes) in calls {
                for (outcome, n) in outcomes where outcome != .notPermitted {
                    made += n
                    if outcome == .failure || outcome == .authFailure { failed += n }
                }
            }
            return made == 0 ? 0 : Double(failed) / Double(made)
        }
    }

    private let lock = NSLock()
    private var calls: [String: [CallOutcome: Int]] = [:]
    private var latency: [String: Latency] = [:]
    private var inputTokens: [String: Int] = [:]
    private var outputTokens: [String: Int] = [:]
    private var authFailures: [String: Int] = [:]
    private var fallbacks = 0, degraded = 0, extractiveOnly = 0, cacheHits = 0, cacheMisses = 0, singleFlightWaits = 0

    public init() {}

    func call(_ provider: String, _ outcome: CallOutcome, seconds: Double? = nil, inputTokens input: Int? = nil, outputTokens output: Int? = nil) {
        lock.lock()
        defer { lock.unlock() }
        calls[provider, default: [:]][outcome, default: 0] += 1
        if outcome == .authFailure { authFailures[provider, default: 0] += 1 }
        if let seconds {
            var l = latency[provider] ?? Latency(buckets: Array(repeating: 0, count: Self.latencyBuckets.count), count: 0, sum: 0)
            for (i, bound) in Self.latencyBuckets.enumerated() where seconds <= bound { l.buckets[i] += 1 }
            l.count += 1
            l.sum += seconds
            latency[provider] = l
        }
        if let input { inputTokens[provider, default: 0] += input }
        if let output { outputTokens[provider, default: 0] += output }
    }

    enum Event { case fallback, degraded, extractiveOnly, cacheHit, cacheMiss, singleFlightWait }

    func count(_ event: Event) {
        lock.lock()
        defer { lock.unlock() }
        switch event {
        case .fallback: fallbacks += 1
        case .degraded: degraded += 1
        case .extractiveOnly: extractiveOnly += 1
        case .cacheHit: cacheHits += 1
        case .cacheMiss: cacheMisses += 1
        case .singleFlightWait: singleFlightWaits += 1
        }
    }

    func snapshot(breakers: [CircuitBreaker.Snapshot]) -> Snapshot {
        lock.lock()
        defer { lock.unlock() }
        return Snapshot(
            calls: calls, latency: latency, inputTokens: inputTokens, outputTokens: outputTokens, fallbacks: fallbacks,
            degraded: degraded, extractiveOnly: extractiveOnly, cacheHits: cacheHits, cacheMisses: cacheMisses,
            singleFlightWaits: singleFlightWaits, authFailures: authFailures, breakers: breakers)
    }
}
