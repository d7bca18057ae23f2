import ConveyorCore

/// How the dead set is bounded, as Sidekiq bounds its own.
public struct DeadSetLimits: Sendable, Equatable {
    public var maxJobs: Int
    public var maxAge: Double

    /// A negative count or age is 0 and a NaN age is the default: either reaches the pruning script as a rank or a
    /// score, where a negative rank would delete the newest entries and NaN would fail every move to the dead set.
    public init(maxJobs: Int = 10_000, maxAge: Double = 180 * 86_400) {
        self.maxJobs = max(0, maxJobs)
        self.maxAge = maxAge.isNaN ? 180 * 86_400 : Saturating.clamp(maxAge, to: 0...1e11)
    }
}
