import Logging
import Redis
import Synchronization

/// Writes job completions to Redis in batches: every completion that piles up while one round trip is under
/// way goes in the next pipeline, with the `stat:*` counters added up. An entry leaves the buffer only after
/// Redis answered it, so a Redis outage delays acks but loses none.
final class Acknowledger: Sendable {
    struct Entry: Sendable {
        var command: RedisCommand
        var processed: Int
        var failed: Int
    }

    private struct State {
        var pending: [Entry] = []
        var writing = false
        var flushWaiters: [CheckedContinuation<Void, Never>] = []
        var stopped = false
    }

    private let state = Mutex(State())
    private let ready = AsyncEvent()
    private let redis: RedisThread
    private let keys: QueueKeys
    private let logger: Logger
    private let onError: @Sendable (any Error) -> Void

    init(redis: RedisThread, keys: QueueKeys, logger: Logger, onError: @escaping @Sendable (any Error) -> Void) {
        self.redis = redis
        self.keys = keys
        self.logger = logger
        self.onError = onError
    }

    func add(_ entry: Entry) {
        state.withLock { $0.pending.append(entry) }
        ready.set()
    }

    /// Writes until `stop` is called and nothing is pending.
    func run() async {
        while true {
            await ready.wait()
            ready.reset()
            let batch = state.withLock { s -> [Entry]? in
                if s.pending.isEmpty {
                    if s.stopped { return nil }
                    return []
                }
                s.writing = true
                return s.pending
            }
            guard let batch else { return }
            if batch.isEmpty { continue }
            do {
                try await write(batch)
                let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                    s.pending.removeFirst(batch.count)
                    s.writing = false
                    if s.pending.isEmpty {
                        defer { s.flushWaiters.removeAll() }
                        return s.flushWaiters
                    }
                    return []
                }
                for w in waiters { w.resume() }
                if state.withLock({ !$0.pending.isEmpty || $0.stopped }) { ready.set() }
            } catch {
                state.withLock { $0.writing = false }
                onError(error)
                logger.error("cannot write job completions to redis, will retry", metadata: ["error": "\(error)", "pending": "\(batch.count)"])
                try? await Task.sleep(for: .milliseconds(500))
                ready.set()
            }
        }
    }

    /// Waits until everything added so far is written.
    func flush() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done = state.withLock { s -> Bool in
                if s.pending.isEmpty && !s.writing { return true }
                s.flushWaiters.append(c)
                return false
            }
            if done { c.resume() }
        }
    }

    /// Lets `run` return once the buffer is empty.
    func stop() {
        state.withLock { $0.stopped = true }
        ready.set()
    }

    private func write(_ batch: [Entry]) async throws {
        var commands = batch.map(\.command)
        let processed = batch.reduce(0) { $0 + $1.processed }
        let failed = batch.reduce(0) { $0 + $1.failed }
        let day = JobTime.day(JobTime.now())
        let fiveYears = 5 * 365 * 86_400
        if processed > 0 {
            commands.append(RedisCommand("INCRBY", keys.processed, processed))
            commands.append(RedisCommand("INCRBY", keys.processed(day: day), processed))
            commands.append(RedisCommand("EXPIRE", keys.processed(day: day), fiveYears))
        }
        if failed > 0 {
            commands.append(RedisCommand("INCRBY", keys.failed, failed))
            commands.append(RedisCommand("INCRBY", keys.failed(day: day), failed))
            commands.append(RedisCommand("EXPIRE", keys.failed(day: day), fiveYears))
        }
        let logger = logger
        try await redis.run { [commands] connection in
            for reply in try connection.pipeline(commands) {
                if case .error(let message) = reply {
                    // A script error is a bug, not an outage: report it and drop only that command's effect.
                    logger.error("redis rejected a completion command", metadata: ["error": "\(message)"])
                }
            }
        }
    }
}
