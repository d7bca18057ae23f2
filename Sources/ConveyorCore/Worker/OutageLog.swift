public import Logging
import Synchronization

/// Logs an outage of a dependency once when it starts and once when it ends, instead of a line per failed
/// attempt: a Redis restart costs each connection two lines, not one per retry.
public final class OutageLog: Sendable {
    private struct State {
        var failures = 0
        var since: ContinuousClock.Instant?
    }

    /// What failed, as the log says it: `fetching jobs`, `writing job completions to redis`.
    public let activity: String
    private let state = Mutex(State())

    public init(_ activity: String) {
        self.activity = activity
    }

    /// Records a failed attempt; only the first of an outage is logged.
    public func failed(_ error: any Error, logger: Logger, metadata: Logger.Metadata = [:]) {
        let first = state.withLock { s -> Bool in
            s.failures += 1
            if s.failures == 1 { s.since = .now }
            return s.failures == 1
        }
        guard first else { return }
        var metadata = metadata
        metadata["error"] = "\(error)"
        logger.error("\(activity) failed; retrying until it works (logged again when it does)", metadata: metadata)
    }

    /// Records a successful attempt; logs the end of an outage.
    public func succeeded(logger: Logger, metadata: Logger.Metadata = [:]) {
        guard let (failures, since) = state.withLock({ s -> (Int, ContinuousClock.Instant)? in
            guard s.failures > 0, let since = s.since else { return nil }
            defer { s.failures = 0; s.since = nil }
            return (s.failures, since)
        }) else { return }
        var metadata = metadata
        metadata["failed_attempts"] = "\(failures)"
        metadata["outage_s"] = "\(((ContinuousClock.now - since) / .milliseconds(100)).rounded() / 10)"
        logger.notice("\(activity) works again", metadata: metadata)
    }
}
