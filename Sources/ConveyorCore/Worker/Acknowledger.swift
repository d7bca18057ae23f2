import Logging
import Redis
import Synchronization

/// Writes job completions to Redis in batches: every move out of the in-flight list that piles up while one round
/// trip is under way goes in the next script call (`JobTransitions.applyCommands`), counters included. An entry
/// leaves the buffer only after Redis answered it, so a Redis outage delays acks but loses none; and because the
/// script counts only what it moved, a batch sent again after its reply was lost counts nothing twice.
final class Acknowledger: Sendable {
    private struct State {
        var pending: [JobTransitions.Move] = []
        var writing = false
        var flushWaiters: [CheckedContinuation<Void, Never>] = []
        var stopped = false
    }

    private let state = Mutex(State())
    private let ready = AsyncEvent()
    private let redis: RedisThread
    private let keys: QueueKeys
    private let source: String
    private let journalKey: String
    private let deadSet: DeadSetLimits
    private let logger: Logger
    private let outage = OutageLog("writing job completions to redis")
    /// Called after Redis answered a batch, with each move and whether it was applied.
    private let onApplied: @Sendable ([JobTransitions.Move], [Bool]) -> Void

    init(
        redis: RedisThread, keys: QueueKeys, source: String, journalKey: String, deadSet: DeadSetLimits, logger: Logger,
        onApplied: @escaping @Sendable ([JobTransitions.Move], [Bool]) -> Void
    ) {
        self.redis = redis
        self.keys = keys
        self.source = source
        self.journalKey = journalKey
        self.deadSet = deadSet
        self.logger = logger
        self.onApplied = onApplied
    }

    func add(_ move: JobTransitions.Move) {
        state.withLock { $0.pending.append(move) }
        ready.set()
    }

    /// Writes until `stop` is called and nothing is pending.
    func run() async {
        while true {
            await ready.wait()
            ready.reset()
            let batch = state.withLock { s -> [JobTransitions.Move]? in
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
                let applied = try await write(batch)
                outage.succeeded(logger: logger)
                onApplied(batch, applied)
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
                outage.failed(error, logger: logger, metadata: ["pending": "\(batch.count)"])
                try? await Task.sleep(for: .milliseconds(250))
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

    private func write(_ batch: [JobTransitions.Move]) async throws -> [Bool] {
        let commands = JobTransitions.applyCommands(
            keys: keys, source: source, journal: journalKey, moves: batch, now: JobTime.now(), limits: deadSet)
        let count = batch.count
        let logger = logger
        return try await redis.run { [commands] connection in
            let replies = try connection.pipeline(commands)
            do throws(RedisError) {
                return try JobTransitions.applied(replies, count: count)
            } catch where error.isTransient {
                throw error
            } catch {
                // A script error is a bug, not an outage: sending it again would fail again. Report it and move on.
                logger.critical("redis rejected a batch of job completions", metadata: ["error": "\(error)", "moves": "\(count)"])
                return Array(repeating: false, count: count)
            }
        }
    }
}
