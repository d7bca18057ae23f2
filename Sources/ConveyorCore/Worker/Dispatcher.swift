import Synchronization

/// Decides which fetched jobs run now, under the worker's concurrency and each class's own limit.
///
/// Jobs whose class is at its limit wait here (still safe in the in-flight list); at most `limit` of them per
/// class, so a burst of transcodes cannot fill the worker while thumbnails wait in Redis. Extra ones go back
/// to the tail of their queue for this or another process to take later.
final class Dispatcher: Sendable {
    struct Entry: Sendable {
        var job: Job
        var jobClass: JobClass
    }

    enum Decision: Sendable {
        case start(Entry)
        case wait
        case pushBack
    }

    private struct State {
        var running = 0
        var runningByClass: [String: Int] = [:]
        var waiting: [Entry] = []
        var waitingByClass: [String: Int] = [:]
        var capacityWaiters: [CheckedContinuation<Void, Never>] = []
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
        var released = false
    }

    let concurrency: Int
    private let state = Mutex(State())

    init(concurrency: Int) {
        self.concurrency = max(1, concurrency)
    }

    var running: Int { state.withLock { $0.running } }
    var waiting: Int { state.withLock { $0.waiting.count } }
    /// Jobs running by class, for the heartbeat and metrics.
    var runningByClass: [String: Int] { state.withLock { $0.runningByClass.filter { $0.value > 0 } } }

    /// How many more jobs to fetch now.
    var capacity: Int { state.withLock { Self.capacity($0, concurrency) } }

    private static func capacity(_ s: State, _ concurrency: Int) -> Int { max(0, concurrency - s.running - s.waiting.count) }

    func submit(_ entry: Entry) -> Decision {
        state.withLock { s in
            let name = entry.jobClass.name
            let classRunning = s.runningByClass[name, default: 0]
            let classLimit = entry.jobClass.concurrency ?? Int.max
            if s.running < concurrency && classRunning < classLimit {
                s.running += 1
                s.runningByClass[name] = classRunning + 1
                return .start(entry)
            }
            if classRunning >= classLimit && s.waitingByClass[name, default: 0] >= classLimit {
                return .pushBack
            }
            s.waiting.append(entry)
            s.waitingByClass[name, default: 0] += 1
            return .wait
        }
    }

    /// Marks a job done and returns the next waiting job that may start in its slot.
    func finished(_ jobClass: String) -> Entry? {
        let (next, wake) = state.withLock { s -> (Entry?, [CheckedContinuation<Void, Never>]) in
            s.running -= 1
            s.runningByClass[jobClass, default: 1] -= 1
            var next: Entry?
            if !s.released, let index = s.waiting.firstIndex(where: { e in
                s.runningByClass[e.jobClass.name, default: 0] < (e.jobClass.concurrency ?? Int.max)
            }) {
                let entry = s.waiting.remove(at: index)
                s.waitingByClass[entry.jobClass.name, default: 1] -= 1
                s.running += 1
                s.runningByClass[entry.jobClass.name, default: 0] += 1
                next = entry
            }
            var wake: [CheckedContinuation<Void, Never>] = []
            if Self.capacity(s, concurrency) > 0 {
                wake += s.capacityWaiters
                s.capacityWaiters.removeAll()
            }
            if s.running == 0 {
                wake += s.drainWaiters
                s.drainWaiters.removeAll()
            }
            return (next, wake)
        }
        for w in wake { w.resume() }
        return next
    }

    /// Waits until there is room to fetch (or `release` was called).
    func waitForCapacity() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { s -> Bool in
                if s.released || Self.capacity(s, concurrency) > 0 { return true }
                s.capacityWaiters.append(c)
                return false
            }
            if ready { c.resume() }
        }
    }

    /// Waits until no job runs; false if `timeout` passed first.
    func waitUntilDrained(timeout: Duration) async -> Bool {
        let event = AsyncEvent()
        let task = Task {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let done = state.withLock { s -> Bool in
                    if s.running == 0 { return true }
                    s.drainWaiters.append(c)
                    return false
                }
                if done { c.resume() }
            }
            event.set()
        }
        let drained = await event.wait(timeout: timeout)
        if !drained {
            // Free the drain waiter so its task ends.
            let waiters = state.withLock { s in
                defer { s.drainWaiters.removeAll() }
                return s.drainWaiters
            }
            for w in waiters { w.resume() }
        }
        _ = await task.value
        return drained
    }

    /// Stops handing out waiting jobs and wakes every waiter: used at shutdown. Returns the jobs that never started.
    func release() -> [Entry] {
        let (waiting, wake) = state.withLock { s -> ([Entry], [CheckedContinuation<Void, Never>]) in
            s.released = true
            defer {
                s.waiting.removeAll()
                s.waitingByClass.removeAll()
                s.capacityWaiters.removeAll()
            }
            return (s.waiting, s.capacityWaiters)
        }
        for w in wake { w.resume() }
        return waiting
    }
}
