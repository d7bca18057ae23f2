import Testing
@testable import ConveyorCore

@Suite struct RetryPolicyTests {
    @Test func sidekiqBackoffBounds() {
        let policy = RetryPolicy.default
        // count^4 + 15 + rand(10) * (count + 1)
        #expect(policy.delayBounds(retryCount: 0) == 15...24)
        #expect(policy.delayBounds(retryCount: 1) == 16...34)
        #expect(policy.delayBounds(retryCount: 3) == 96...132)
        for count in 0..<10 {
            let bounds = policy.delayBounds(retryCount: count)
            for _ in 0..<50 { #expect(bounds.contains(policy.delay(retryCount: count))) }
        }
    }

    @Test func exponentialBackoffIsCappedAndJittered() {
        let policy = RetryPolicy(maxAttempts: 5, backoff: .exponential(base: 1, factor: 2, cap: 10, jitter: 0.5))
        #expect(policy.delayBounds(retryCount: 0).lowerBound == 0.5)
        #expect(policy.delayBounds(retryCount: 2).lowerBound == 2)
        #expect(policy.delayBounds(retryCount: 10).upperBound < 15.0001)
        let samples = (0..<200).map { _ in policy.delay(retryCount: 3) }
        #expect(Set(samples).count > 50, "jitter spreads retries")
    }

    @Test func jobRetryFieldOverridesAttempts() {
        let policy = RetryPolicy.default
        #expect(policy.maxAttempts(jobRetryField: nil) == 3)
        #expect(policy.maxAttempts(jobRetryField: .bool(true)) == 3)
        #expect(policy.maxAttempts(jobRetryField: .bool(false)) == 1)
        #expect(policy.maxAttempts(jobRetryField: 5) == 6)
        #expect(policy.maxAttempts(jobRetryField: 0) == 1)
    }
}
