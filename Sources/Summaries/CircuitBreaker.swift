import Foundation

/// Settings of one `CircuitBreaker`, named after resilience4j's `CircuitBreakerConfig`.
public struct CircuitBreakerConfiguration: Sendable, Equatable {
    /// Percent of failed calls in the window at or above which the breaker opens.
    public var failureRateThreshold: Double = 50
    /// Percent of slow calls in the window at or above which the breaker opens.
    public var slowCallRateThreshold: Double = 100
    /// A call that takes longer than this is slow (successful or not).
    public var slowCallDurationThreshold: Duration = .seconds(10)
    /// COUNT_BASED window: the last N call outcomes.
    public var slidingWindowSize: Int = 20
    /// Below this many calls in the window the rates are not computed and the breaker cannot open.
    public var minimumNumberOfCalls: Int = 10
    /// How long OPEN lasts before the next call moves it to HALF_OPEN.
    public var waitDurationInOpenState: Duration = .seconds(60)
    /// Probe calls let through in HALF_OPEN, judged as their own window.
    public var permittedNumberOfCallsInHalfOpenState: Int = 3
    /// How long a forced open (401/403: a key or permission problem) lasts before probing again.
    public var forcedOpenDuration: Duration = .seconds(900)

    public init() {}
}

/// A circuit breaker with resilience4j's semantics: a count-based sliding window of outcomes, failure-rate
/// and slow-call-rate thresholds once `minimumNumberOfCalls` are in, a timed OPEN state that turns HALF_OPEN
/// lazily on the next call, and N probe calls in HALF_OPEN that close it or open it again.
///
/// Added beyond resilience4j: a cooldown (HTTP 429's `Retry-After`) that rejects calls without counting
/// against the provider's health, and a timed forced open for credential errors. Shared by every thread of
/// the process; all state is behind one lock.
public final class CircuitBreaker: @unchecked Sendable {
    public enum State: String, Sendable {
        case closed
        case open
        case halfOpen = "half_open"
        case forcedOpen = "forced_open"
    }

    /// How a permitted call ended, for the breaker.
    public enum Outcome: Sendable {
        case success
        case failure
        /// Neither (the caller's fault, a rate limit): releases a half-open probe slot.
        case ignored
    }

    /// Why a call was not permitted, and when trying again makes sense.
    public struct Rejection: Error, Sendable, Equatable {
        public enum Reason: String, Sendable {
            case open, forcedOpen = "forced_open", halfOpenFull = "half_open_full", coolingDown = "cooling_down"
        }
        public var reason: Reason
        public var retryAfter: Duration
    }

    /// Proof that a call was permitted; hand it back to `record`.
    public struct Permit: Sendable {
        let generation: Int
        let started: ContinuousClock.Instant
    }

    /// A consistent view for metrics.
    public struct Snapshot: Sendable, Equatable {
        public var name: String
        public var state: State
        /// -1 below the minimum number of calls, as in resilience4j.
        public var failureRate: Double
        public var slowCallRate: Double
        public var bufferedCalls: Int
        public var failedCalls: Int
        public var slowCalls: Int
        public var notPermittedCalls: Int
        /// How long the breaker has been in its current state.
        public var timeInState: Duration
        /// Remaining cooldown from a 429, zero when none.
        public var coolingDownFor: Duration
        public var transitions: Int
    }

    public let name: String
    public let configuration: CircuitBreakerConfiguration
    private let now: @Sendable () -> ContinuousClock.Instant
    private let lock = NSLock()
    private var state: State = .closed
    private var stateSince: ContinuousClock.Instant
    private var openUntil: ContinuousClock.Instant
    private var coolDownUntil: ContinuousClock.Instant
    private var generation = 0
    private var window: OutcomeWindow
    private var halfOpenPermitsUsed = 0
    private var notPermitted = 0
    private var transitions = 0

    /// - Parameters:
    ///   - now: the clock; tests pass a manual one.
    public init(
        name: String, configuration: CircuitBreakerConfiguration = CircuitBreakerConfiguration(),
        now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }
    ) {
        self.name = name
        self.configuration = configuration
        self.now = now
        let start = now()
        stateSince = start
        openUntil = start
        coolDownUntil = start
        window = OutcomeWindow(size: configuration.slidingWindowSize, minimum: min(configuration.minimumNumberOfCalls, configuration.slidingWindowSize))
    }

    /// Asks to make a call. Throws a `Rejection` while OPEN, FORCED_OPEN, cooling down, or when the
    /// half-open probes are all taken.
    public func acquirePermission() throws(Rejection) -> Permit {
        lock.lock()
        defer { lock.unlock() }
        let t = now()
        if t < coolDownUntil {
            notPermitted += 1
            throw Rejection(reason: .coolingDown, retryAfter: coolDownUntil - t)
        }
        switch state {
        case .closed:
            break
        case .open, .forcedOpen:
            guard t >= openUntil else {
                notPermitted += 1
                throw Rejection(reason: state == .open ? .open : .forcedOpen, retryAfter: openUntil - t)
            }
            transition(to: .halfOpen, at: t)
            fallthrough
        case .halfOpen:
            guard halfOpenPermitsUsed < configuration.permittedNumberOfCallsInHalfOpenState else {
                notPermitted += 1
                throw Rejection(reason: .halfOpenFull, retryAfter: configuration.slowCallDurationThreshold)
            }
            halfOpenPermitsUsed += 1
        }
        return Permit(generation: generation, started: t)
    }

    /// Records how a permitted call ended. Outcomes of calls permitted before the last state change are
    /// dropped, so a slow call from CLOSED cannot decide a HALF_OPEN verdict.
    public func record(_ permit: Permit, _ outcome: Outcome) {
        lock.lock()
        defer { lock.unlock() }
        let t = now()
        guard permit.generation == generation else { return }
        switch outcome {
        case .ignored:
            if state == .halfOpen { halfOpenPermitsUsed = max(0, halfOpenPermitsUsed - 1) }
            return
        case .success, .failure:
            let slow = t - permit.started > configuration.slowCallDurationThreshold
            window.add(failed: outcome == .failure, slow: slow)
        }
        switch state {
        case .closed, .halfOpen:
            if window.exceeds(failureRate: configuration.failureRateThreshold, slowRate: configuration.slowCallRateThreshold) {
                openUntil = t + configuration.waitDurationInOpenState
                transition(to: .open, at: t)
            } else if state == .halfOpen, window.buffered >= window.minimum {
                transition(to: .closed, at: t)
            }
        case .open, .forcedOpen:
            break
        }
    }

    /// Forces the breaker open for `duration` (credential errors); it then probes like after OPEN.
    public func forceOpen(for duration: Duration? = nil) {
        lock.lock()
        defer { lock.unlock() }
        let t = now()
        openUntil = t + (duration ?? configuration.forcedOpenDuration)
        transition(to: .forcedOpen, at: t)
    }

    /// Rejects calls until `deadline` without counting against the provider's health (HTTP 429).
    public func coolDown(for duration: Duration) {
        lock.lock()
        defer { lock.unlock() }
        let until = now() + duration
        if until > coolDownUntil { coolDownUntil = until }
    }

    /// Back to CLOSED with an empty window, as resilience4j's `reset()`.
    public func reset() {
        lock.lock()
        defer { lock.unlock() }
        let t = now()
        coolDownUntil = t
        transition(to: .closed, at: t)
    }

    public var snapshot: Snapshot {
        lock.lock()
        defer { lock.unlock() }
        let t = now()
        return Snapshot(
            name: name, state: state, failureRate: window.failureRate, slowCallRate: window.slowRate,
            bufferedCalls: window.buffered, failedCalls: window.failed, slowCalls: window.slow,
            notPermittedCalls: notPermitted, timeInState: t - stateSince,
            coolingDownFor: coolDownUntil > t ? coolDownUntil - t : .zero, transitions: transitions)
    }

    public var currentState: State { snapshot.state }

    private func transition(to newState: State, at t: ContinuousClock.Instant) {
        state = newState
        stateSince = t
        generation += 1
        transitions += 1
        halfOpenPermitsUsed = 0
        switch newState {
        case .closed:
            window = OutcomeWindow(size: configuration.slidingWindowSize,
                                   minimum: min(configuration.minimumNumberOfCalls, configuration.slidingWindowSize))
        case .halfOpen:
            let n = configuration.permittedNumberOfCallsInHalfOpenState
            window = OutcomeWindow(size: n, minimum: min(configuration.minimumNumberOfCalls, n))
        case .open, .forcedOpen:
            break
        }
    }
}

/// resilience4j's COUNT_BASED sliding window: a ring of the last N outcomes with running totals.
struct OutcomeWindow {
    private var ring: [UInt8]
    private var next = 0
    private(set) var buffered = 0
    private(set) var failed = 0
    private(set) var slow = 0
    let minimum: Int
    private static let failedBit: UInt8 = 1, slowBit: UInt8 = 2

    init(size: Int, minimum: Int) {
        ring = Array(repeating: 0, count: max(1, size))
        self.minimum = max(1, minimum)
    }

    mutating func add(failed isFailed: Bool, slow isSlow: Bool) {
        if buffered == ring.count {
            let evicted = ring[next]
            if evicted & Self.failedBit != 0 { failed -= 1 }
            if evicted & Self.slowBit != 0 { slow -= 1 }
        } else {
            buffered += 1
        }
        ring[next] = (isFailed ? Self.failedBit : 0) | (isSlow ? Self.slowBit : 0)
        if isFailed { failed += 1 }
        if isSlow { slow += 1 }
        next = (next + 1) % ring.count
    }

    var failureRate: Double { buffered < minimum ? -1 : Double(failed) * 100 / Double(buffered) }
    var slowRate: Double { buffered < minimum ? -1 : Double(slow) * 100 / Double(buffered) }

    func exceeds(failureRate threshold: Double, slowRate slowThreshold: Double) -> Bool {
        guard buffered >= minimum else { return false }
        return failureRate >= threshold || slowRate >= slowThreshold
    }
}
