import Synchronization

/// A flag that async tasks wait on: `set` wakes every waiter and stays set until `reset`.
final class AsyncEvent: Sendable {
    private struct State {
        var isSet = false
        var waiters: [UInt64: CheckedContinuation<Bool, Never>] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    init(isSet: Bool = false) {
        state.withLock { $0.isSet = isSet }
    }

    var isSet: Bool { state.withLock { $0.isSet } }

    func set() {
        let waiters = state.withLock { s -> [CheckedContinuation<Bool, Never>] in
            s.isSet = true
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    func reset() {
        state.withLock { $0.isSet = false }
    }

    /// Waits until the event is set; returns false if `timeout` passed first.
    @discardableResult
    func wait(timeout: Duration? = nil) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let id = state.withLock { s -> UInt64? in
                if s.isSet { return nil }
                let id = s.nextID
                s.nextID += 1
                s.waiters[id] = continuation
                return id
            }
            guard let id else {
                continuation.resume(returning: true)
                return
            }
            if let timeout {
                Task {
                    try? await Task.sleep(for: timeout)
                    if let waiter = self.state.withLock({ $0.waiters.removeValue(forKey: id) }) {
                        waiter.resume(returning: false)
                    }
                }
            }
        }
    }
}

/// Resumes a continuation once, whichever of several racers gets there first.
final class OnceResume<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T, Never>?>

    init(_ continuation: CheckedContinuation<T, Never>) {
        self.continuation = Mutex(continuation)
    }

    /// Whether the continuation was resumed already.
    var isResumed: Bool { continuation.withLock { $0 == nil } }

    /// Returns true if this call resumed the continuation.
    @discardableResult
    func resume(_ value: T) -> Bool {
        guard let c = continuation.withLock({ c -> CheckedContinuation<T, Never>? in
            defer { c = nil }
            return c
        }) else { return false }
        c.resume(returning: value)
        return true
    }
}
