import Logging
import Synchronization

/// Writes job completions to the backend in batches: every move out of the in-flight store that piles up while one
/// round trip is under way goes in the next batch (`QueueBackend.complete`), counters and outcome journal entries
/// included. An entry leaves the buffer only after the backend answered it, so an outage delays acks but loses
/// none; and because each batch keeps its number when it is sent again, the backend can recognise a batch whose
/// reply was lost as applied instead of applying and counting it twice.
final class Acknowledger: Sendable {
    private struct State {
        var pending: [JobTransitions.Move] = []
        var writing = false
        var flushWaiters: [CheckedContinuation<Void, Never>] = []
        var stopped = false
        /// Set by `abandon`: whatever is pending is dropped, and a batch answered late changes nothing.
        var abandoned = false
    }

    private let state = Mutex(State())
    private let ready = AsyncEvent()
    private let backend: any QueueBackend
    private let logger: Logger
    private let outage = OutageLog("writing job completions")
    /// The receipts of fetched jobs not yet acknowledged: a batch's leave it once the backend answered.
    private let ledger: InflightLedger
    /// Where a batch's journal entries go once the backend applied them (the result store, to write them).
    private let journal: (any OutcomeJournal)?

    init(backend: any QueueBackend, ledger: InflightLedger, journal: (any OutcomeJournal)?, logger: Logger) {
        self.backend = backend
        self.ledger = ledger
        self.journal = journal
        self.logger = logger
    }

    /// What follows the backend's answer to batch `number` (`executed`: applied; false only when the backend refused
    /// it as a whole, which is a bug): its receipts leave the ledger and, when applied, its journal entries go on to
    /// be stored. An executed batch wrote all its entries, whether or not each job was still in the list (a job
    /// reaped meanwhile runs again, and its later outcome replaces this one). Each entry names its journal and field as
    /// the backend wrote them (`journal(for:)`, `journalField(_:for:)`: field `a<number>` unless the backend splits
    /// the batch).
    private func applied(_ moves: [JobTransitions.Move], executed: Bool, number: UInt64) {
        var entries: [String: [JobTransitions.Move.JournalEntry]] = [:]
        let field = JobTransitions.ackJournalField(number)
        for move in moves {
            ledger.release(move.receipt.member)
            if executed, var entry = move.journal {
                entry.field = backend.journalField(field, for: move.receipt)
                entries[backend.journal(for: move.receipt), default: []].append(entry)
            }
        }
        for (key, batch) in entries { journal?.journaled(key: key, entries: batch) }
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
                let executed = try await backend.complete(batch, batch: number, resent: uncertain != nil)
                uncertain = nil
                outage.succeeded(logger: logger)
                applied(batch, executed: executed, number: number)
                let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                    if s.abandoned { return [] }
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
                if s.abandoned || (s.pending.isEmpty && !s.writing) { return true }
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

    /// Gives up on what is not written yet (a stop past its deadline): `run` returns at its next turn and `flush`
    /// waiters resume. Returns how many completions were dropped (a batch under way when this was called may still
    /// land). Their jobs stay in the in-flight list, where a live process's reaper finds them.
    func abandon() -> Int {
        let (dropped, waiters) = state.withLock { s -> (Int, [CheckedContinuation<Void, Never>]) in
            s.stopped = true
            s.abandoned = true
            defer {
                s.pending.removeAll()
                s.flushWaiters.removeAll()
            }
            return (s.pending.count, s.flushWaiters)
        }
        for w in waiters { w.resume() }
        ready.set()
        return dropped
    }
}
