/// How the dead set is bounded, as Sidekiq bounds its own.
public struct DeadSetLimits: Sendable, Equatable {
    public var maxJobs: Int
    public var maxAge: Double

    public init(maxJobs: Int = 10_000, maxAge: Double = 180 * 86_400) {
        self.maxJobs = maxJobs
        self.maxAge = maxAge
    }
}
