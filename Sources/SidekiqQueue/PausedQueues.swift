import ConveyorCore
import Redis
import Synchronization

/// The queues an operator paused (`conveyor queue pause NAME`, the dashboard), as a backend's fetches see them: the
/// SET at `QueueKeys.pausedQueues`, read at most once a second, so a pause or a resume takes effect within a second
/// and costs one `SMEMBERS` a second however busy the worker is. One key: the same on a single Redis and a cluster.
final class PausedQueues: Sendable {
    private let key: String
    private let cache = Mutex<(readAt: Double, names: Set<String>)>((-1, []))

    init(keys: QueueKeys) {
        key = keys.pausedQueues
    }

    /// The paused names, from the cache when it is under a second old, else read on `redis`.
    func names(_ redis: RedisThread) async throws -> Set<String> {
        let now = JobTime.now()
        let cached = cache.withLock { $0 }
        if cached.readAt >= 0, now - cached.readAt < 1 { return cached.names }
        let key = key
        let members = try await redis.run { connection in try connection.command("SMEMBERS", key).check().array ?? [] }
        let names = Set(members.compactMap(\.text))
        cache.withLock { $0 = (now, names) }
        return names
    }

    /// A paused queue's wait: the timeout (at most a second, so a resume is seen as soon) without taking anything.
    static func idle(timeout: Double) async {
        try? await Task.sleep(for: .milliseconds(Saturating.int(Saturating.clamp(timeout, to: 0...1) * 1000)))
    }
}
