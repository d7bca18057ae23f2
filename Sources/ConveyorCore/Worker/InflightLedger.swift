import Synchronization

/// What this process holds of its own in-flight list: every job a fetch delivered (by its receipt's member), until a
/// move that takes it out of the list has been answered by Redis. Whatever else is in the list is a job whose fetch ran in Redis
/// while its reply was lost with the connection; `orphans(in:)` finds those.
///
/// Fetches pass through a gate so that the list can be compared with the ledger while no fetch is under way
/// (a fetch in flight has moved jobs into the list that the ledger cannot know yet).
final class InflightLedger: Sendable {
    private struct State {
        var held: [RawJob: Int] = [:]
        var fetching = 0
        var closed = false
        var openWaiters: [CheckedContinuation<Void, Never>] = []
        var quietWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// Waits while the gate is closed, then counts a fetch as under way.
    func beginFetch() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let go = state.withLock { s -> Bool in
                if s.closed {
                    s.openWaiters.append(c)
                    return false
                }
                s.fetching += 1
                return true
            }
            if go { c.resume() }
        }
    }

    /// Ends a fetch, holding what it delivered.
    func endFetch(delivered: [[UInt8]]) {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            for raw in delivered { s.held[RawJob(raw), default: 0] += 1 }
            s.fetching -= 1
            guard s.fetching == 0 else { return [] }
            defer { s.quietWaiters.removeAll() }
            return s.quietWaiters
        }
        for w in waiters { w.resume() }
    }

    /// Holds a job that entered the list by other means (a rewritten payload).
    func hold(_ raw: [UInt8]) {
        state.withLock { $0.held[RawJob(raw), default: 0] += 1 }
    }

    /// The job is out of the list (or was never there).
    func release(_ raw: [UInt8]) {
        let key = RawJob(raw)
        state.withLock { s in
            guard let n = s.held[key] else { return }
            if n <= 1 { s.held.removeValue(forKey: key) } else { s.held[key] = n - 1 }
        }
    }

    /// Closes the gate and waits until no fetch is under way.
    func close() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done = state.withLock { s -> Bool in
                s.closed = true
                if s.fetching == 0 { return true }
                s.quietWaiters.append(c)
                return false
            }
            if done { c.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.closed = false
            s.fetching += s.openWaiters.count
            defer { s.openWaiters.removeAll() }
            return s.openWaiters
        }
        for w in waiters { w.resume() }
    }

    /// The jobs of `list` (the in-flight list as the backend has it) that this process does not hold, counting
    /// duplicates. Call with the gate closed.
    func orphans(in list: [FetchedJob]) -> [FetchedJob] {
        state.withLock { s in
            var remaining = s.held
            var out: [FetchedJob] = []
            for job in list {
                let key = RawJob(job.receipt.member)
                if let n = remaining[key], n > 0 {
                    remaining[key] = n - 1
                } else {
                    out.append(job)
                }
            }
            return out
        }
    }
}

/// A job's bytes as a dictionary key, hashed in one call over the whole buffer (an `[UInt8]` hashes byte by byte,
/// which showed up in profiles at tens of thousands of jobs a second).
struct RawJob: Hashable {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}
