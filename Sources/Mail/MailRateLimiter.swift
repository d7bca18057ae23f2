public import Redis
import ConveyorCore
import SidekiqQueue
import Foundation

/// At most `perSecond` messages per second for one transport, counted in Redis so every worker process shares
/// the budget: a script reads Redis' own clock (`TIME`, so worker hosts need not agree on the time) and counts
/// in the hash `conveyor:mail:rate:<transport>` (`s`: the Unix second being counted, `n`: sends in it; a new
/// second starts again from zero; the key expires after two idle seconds). The script touches only the key it
/// declares, so it runs on Redis Cluster too. Over budget, the send waits for the next second, up to the job's
/// deadline.
public final class MailRateLimiter: Sendable {
    public let perSecond: Int
    public let key: String
    private let redis: RedisThread

    static let script = """
        local t = redis.call('TIME')
        if redis.call('HGET', KEYS[1], 's') ~= t[1] then
            redis.call('HSET', KEYS[1], 's', t[1], 'n', 0)
        end
        local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
        redis.call('EXPIRE', KEYS[1], 2)
        return {n, tonumber(t[1]), tonumber(t[2])}
        """

    /// - Parameters:
    ///   - keyPrefix: `QueueKeys.conveyor("mail:rate:smtp")`, namespaced like the queues.
    public init(redis: RedisThread, keyPrefix: String, perSecond: Int) {
        self.redis = redis
        self.key = keyPrefix
        self.perSecond = max(1, perSecond)
    }

    /// The bucket of a recipient: its domain, lowercased (addresses are checked before they get here; RFC 5321 bounds
    /// a domain at 255 bytes).
    public static func bucket(_ address: String) -> String {
        let domain = address.split(separator: "@").last.map { String($0).lowercased() } ?? ""
        return String(domain.prefix(255))
    }

    /// Waits until this process may send one message and returns the Unix second (Redis' clock) of the slot it
    /// got; throws a transient failure when the deadline comes first.
    /// With `bucket` (a recipient domain), the count is that bucket's own: `<key>:domain:<bucket>`.
    @discardableResult
    public func acquire(before deadline: ContinuousClock.Instant, bucket: String? = nil) async throws -> Int {
        let key = bucket.map { self.key + ":domain:" + $0 } ?? self.key
        while true {
            let (count, second, micros) = try await redis.run { connection -> (Int, Int, Int) in
                let reply = try connection.command("EVAL", MailRateLimiter.script, "1", key).check()
                let values = reply.array?.compactMap(\.int) ?? []
                guard values.count == 3 else { throw JobFailure.transient(.mailRateLimited, "unexpected reply from the rate limit script: \(reply)") }
                return (values[0], values[1], values[2])
            }
            if count <= perSecond { return second }
            let wait = Duration.microseconds(1_000_000 - micros) + .milliseconds(1)
            if ContinuousClock.now + wait >= deadline {
                let setting = bucket == nil ? MailSettings.smtpRateLimit.name : MailSettings.smtpRateLimitPerDomain.name
                throw JobFailure.transient(
                    .mailRateLimited, "rate limit of \(perSecond) messages/s\(bucket.map { " to \($0)" } ?? "") (\(setting)) left no slot before the job's deadline")
            }
            try await Task.sleep(for: wait)
        }
    }
}
