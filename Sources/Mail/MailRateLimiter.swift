public import Redis
import ConveyorCore
import Foundation

/// At most `perSecond` messages per second for one transport, counted in Redis so every worker process shares
/// the budget: one `INCR` of `conveyor:mail:rate:<transport>:<unix second>` per message (the key expires after
/// two seconds). Over budget, the send waits for the next second, up to the job's deadline.
public final class MailRateLimiter: Sendable {
    public let perSecond: Int
    public let key: String
    private let redis: RedisThread

    /// - Parameters:
    ///   - keyPrefix: `QueueKeys.conveyor("mail:rate:smtp")`, namespaced like the queues.
    public init(redis: RedisThread, keyPrefix: String, perSecond: Int) {
        self.redis = redis
        self.key = keyPrefix
        self.perSecond = max(1, perSecond)
    }

    /// Waits until this process may send one message; throws a transient failure when the deadline comes first.
    public func acquire(before deadline: ContinuousClock.Instant) async throws {
        while true {
            let now = Date().timeIntervalSince1970
            let second = Int(now)
            let slot = "\(key):\(second)"
            let count = try await redis.run { connection in
                let replies = try connection.pipeline([RedisCommand("INCR", slot), RedisCommand("EXPIRE", slot, "2")])
                return try replies[0].check().int ?? 0
            }
            if count <= perSecond { return }
            let wait = Duration.milliseconds(Int((Double(second + 1) - now) * 1000) + 1)
            if ContinuousClock.now + wait >= deadline {
                throw JobFailure.transient("MailRateLimited", "rate limit of \(perSecond) messages/s (SMTP_RATE_LIMIT) left no slot before the job's deadline")
            }
            try await Task.sleep(for: wait)
        }
    }
}
