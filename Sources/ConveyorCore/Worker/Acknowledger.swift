import Logging
import Redis
import Synchronization

/// Writes job completions to Redis in batches: every move out of the in-flight list that piles up while one round
/// trip is under way goes in the next transaction (`JobTransitions.batchCommands`), counters and outcome journal
/// entries included. An entry leaves the buffer only after Redis answered it, so a Redis outage delays acks but
/// loses none; and because each transaction sets a numbered marker, a batch whose reply was lost is recognised as
/// applied instead of being applied and counted twice.
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
    private let identity: String
    private let deadSet: DeadSetLimits
    private let logger: Logger
    private let outage = OutageLog("writing job completions to redis")
    /// Called after Redis answered a batch, with its moves, whether the transaction was executed (false only when
    /// Redis refused it as a whole, which is a bug) and its number (its journal field is `a<number>`).
    private let onApplied: @Sendable ([JobTransitions.Move], Bool, UInt64) -> Void

    init(
        redis: RedisThread, keys: QueueKeys, identity: String, deadSet: DeadSetLimits, logger: Logger,
        onApplied: @escaping @Sendable ([JobTransitions.Move], Bool, UInt64) -> Void
    ) {
        self.redis = redis
        self.keys = keys
        self.identity = identity
        self.source = keys.inflight(identity)
        self.journalKey = keys.outcomes(identity)
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
        var sequence: UInt64 = 0
        // A batch whose send failed may have been applied (only the reply lost): its number and size.
        var uncertain: (sequence: UInt64, count: Int)?
        while true {
            await ready.wait()
            ready.reset()
            let batch = state.withLock { s -> [JobTransitions.Move]? in
                if s.pending.isEmpty {
                    if s.stopped { return nil }
                    return []
                }
                s.writing = true
                // The uncertain batch is sent again exactly as it was, under its own number.
                if let uncertain { return Array(s.pending.prefix(uncertain.count)) }
                return s.pending
            }
            guard let batch else { return }
            if batch.isEmpty { continue }
            let number: UInt64
            if let uncertain {
                number = uncertain.sequence
            } else {
                sequence += 1
                number = sequence
            }
            do {
                let executed = try await write(batch, sequence: number, mayHaveApplied: uncertain != nil)
                uncertain = nil
                outage.succeeded(logger: logger)
                onApplied(batch, executed, number)
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
                uncertain = (number, batch.count)
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

    /// Sends one batch as a transaction (`JobTransitions.batchCommands`); returns whether Redis executed it. After a
    /// failed send (`mayHaveApplied`) the batch's marker is read first: if that send applied, it is not sent again.
    private func write(_ batch: [JobTransitions.Move], sequence: UInt64, mayHaveApplied: Bool) async throws -> Bool {
        let marker = keys.acknowledged(identity)
        let commands = JobTransitions.batchCommands(
            keys: keys, source: source, journal: journalKey, marker: marker, sequence: sequence, moves: batch,
            now: JobTime.now(), limits: deadSet)
        let count = batch.count
        let logger = logger
        return try await redis.run { [commands] connection in
            if mayHaveApplied, try connection.command("GET", marker).check().text == String(sequence) {
                // Applied before the reply was lost: whole, journal included.
                return true
            }
            let replies = try connection.pipeline(commands)
            do throws(RedisError) {
                try JobTransitions.checkBatch(replies, count: count)
                return true
            } catch where error.isTransient {
                throw error
            } catch {
                // A refused transaction is a bug, not an outage: sending it again would fail again. Report it and move on.
                logger.critical("redis rejected a batch of job completions", metadata: ["error": "\(error)", "moves": "\(count)"])
                return false
            }
        }
    }
}
