import Synchronization

/// At most `count` transcodes at a time in this process, whichever job runs them: `video.transcode` itself and the
/// video half of `media.ingest` take a slot from the same gate, so image uploads (which never transcode) are not
/// held back by a class limit meant for video.
///
/// Waiters are served in arrival order; a waiter whose task is cancelled (its job timed out, or the worker is
/// stopping) leaves the line with `CancellationError` and takes no slot.
final class TranscodeSlots: Sendable {
    private struct State {
        var free: Int
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var nextID: UInt64 = 0
    }

    private let state: Mutex<State>

    init(_ count: Int) {
        state = Mutex(State(free: max(1, count)))
    }

    /// Runs `body` holding a slot.
    func withSlot<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await acquire()
        defer { release() }
        return try await body()
    }

    /// Slots free and transcodes waiting, for tests.
    var snapshot: (free: Int, waiting: Int) { state.withLock { ($0.free, $0.waiters.count) } }

    private func acquire() async throws {
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let now: Result<Void, any Error>? = state.withLock { s in
                    // Checked under the lock: a cancellation that ran its handler before this waiter joined the
                    // line is seen here, so no cancelled waiter is left behind.
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if s.free > 0 {
                        s.free -= 1
                        return .success(())
                    }
                    s.waiters.append((id, continuation))
                    return nil
                }
                if let now { continuation.resume(with: now) }
            }
        } onCancel: {
            let waiting = state.withLock { s -> CheckedContinuation<Void, any Error>? in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: i).continuation
            }
            waiting?.resume(throwing: CancellationError())
        }
    }

    private func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, any Error>? in
            if s.waiters.isEmpty {
                s.free += 1
                return nil
            }
            return s.waiters.removeFirst().continuation
        }
        next?.resume()
    }
}
