import ConveyorCore
import Foundation
public import Redis
import Synchronization

/// How long each push service (by origin) asked every sender to wait: a 429 (or a 503 with `Retry-After`) from one
/// job holds every job's pushes to that origin back until it ends, across processes when they share Redis
/// (`conveyor:push:cooldown:<origin>`, expiring with the wait), else within this process.
public final class PushCooldown: Sendable {
    private let redis: RedisThread?
    private let prefix: String
    private let local = Mutex<[String: ContinuousClock.Instant]>([:])
    /// The longest wait kept, whatever a service says.
    public static let maximumSeconds: Double = 86_400

    /// Cooldowns live under `<namespace:>conveyor:push:cooldown:` in `redis`; without it, in this process.
    public init(redis: RedisThread?, namespace: String?) {
        self.redis = redis
        prefix = (namespace.flatMap { $0.isEmpty ? nil : $0 + ":" } ?? "") + "conveyor:push:cooldown:"
    }

    /// Seconds left of `origin`'s cooldown; nil when there is none (or Redis could not say: the push is tried).
    public func remaining(_ origin: String) async -> Double? {
        if let redis {
            let key = prefix + origin
            let ms = (try? await redis.run { try $0.command("PTTL", key).check() })?.int ?? -2
            return ms > 0 ? Double(ms) / 1000 : nil
        }
        let now = ContinuousClock.now
        return local.withLock { cooldowns -> Double? in
            guard let until = cooldowns[origin] else { return nil }
            guard until > now else {
                cooldowns[origin] = nil
                return nil
            }
            return (until - now).pushSeconds
        }
    }

    /// Holds `origin` back for `seconds` (clamped to 1 ms … a day); a longer cooldown already set stays.
    public func coolDown(_ origin: String, for seconds: Double) async {
        let wait = seconds.isNaN ? 1 : min(max(seconds, 0.001), Self.maximumSeconds)
        let ms = Saturating.int((wait * 1000).rounded(.up))
        if let redis {
            let key = prefix + origin
            let script = "if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end return 0"
            _ = try? await redis.run { try $0.command("EVAL", script, 1, key, ms).check() }
            return
        }
        let until = ContinuousClock.now + .milliseconds(ms)
        local.withLock { cooldowns in
            if let current = cooldowns[origin], current >= until { return }
            cooldowns[origin] = until
            // Bounded: a cooldown is kept per origin, and ended ones are dropped when the map grows.
            if cooldowns.count > 10_000 {
                let now = ContinuousClock.now
                cooldowns = cooldowns.filter { $0.value > now }
            }
        }
    }
}

extension Duration {
    /// Seconds as a `Double`: a service's `Retry-After` or a cooldown's remainder (both at most a day here).
    var pushSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
