import Foundation

/// How many times a job class runs before it is dead, and how long it waits between runs.
public struct RetryPolicy: Sendable, Equatable {
    /// Total runs allowed, the first included. A job's own `retry` field (Sidekiq's: retries after the first
    /// run, or `true`/`false`) overrides it.
    public var maxAttempts: Int
    public var backoff: Backoff

    public enum Backoff: Sendable, Equatable {
        /// Sidekiq's: `count⁴ + 15 + rand(10)·(count + 1)` seconds, where count is the 0-based retry number.
        case sidekiq
        /// `base · factorᶜᵒᵘⁿᵗ` seconds, capped, then multiplied by a random factor in `1 - jitter ... 1 + jitter`.
        case exponential(base: Double, factor: Double = 2, cap: Double = 3600, jitter: Double = 0.25)
    }

    public init(maxAttempts: Int, backoff: Backoff = .sidekiq) {
        self.maxAttempts = max(1, maxAttempts)
        self.backoff = backoff
    }

    /// Three runs, Sidekiq's backoff: a failing job is dead about a minute after its first failure.
    public static let `default` = RetryPolicy(maxAttempts: 3)

    /// The longest wait between two runs: every delay saturates here (Sidekiq's back-off passes it after about 130
    /// retries), so a retry time is always a finite, near date whatever a job's `retry_count` says.
    public static let maxDelay: Double = 10 * 365 * 86_400

    /// Seconds to wait before retry number `count` (0 for the first retry), in `0...maxDelay`.
    public func delay(retryCount count: Int, random: Double = Double.random(in: 0..<1)) -> Double {
        let n = Double(max(0, count))
        let r = Saturating.clamp(random, to: 0...0.999_999_999)
        let raw: Double
        switch backoff {
        case .sidekiq:
            raw = n * n * n * n + 15 + (r * 10).rounded(.down) * (n + 1)
        case .exponential(let base, let factor, let cap, let jitter):
            let grown = base * pow(factor, n)
            // 0 · ∞ (a zero base, a huge count) is NaN: the cap then.
            raw = (grown.isNaN ? cap : min(cap, grown)) * (1 - jitter + 2 * jitter * r)
        }
        return Saturating.clamp(raw, to: 0...Self.maxDelay)
    }

    /// The smallest and largest delay `delay(retryCount:)` can return.
    public func delayBounds(retryCount count: Int) -> ClosedRange<Double> {
        delay(retryCount: count, random: 0)...delay(retryCount: count, random: 0.999_999_999)
    }

    /// Total runs allowed for a job whose `retry` field is `retry` (nil when absent).
    public func maxAttempts(jobRetryField retry: JSONValue?) -> Int {
        switch retry {
        case .bool(false): 1
        case .number: retry!.intValue.map { Saturating.add(max(0, $0), 1) } ?? maxAttempts
        default: maxAttempts
        }
    }
}
