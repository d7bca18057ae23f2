import Foundation

/// A blocking client connection (hiredis, libpq) that can tell when it is no longer usable.
public protocol BlockingConnection: AnyObject {
    var isBroken: Bool { get }
}

/// A dedicated thread that owns one blocking connection and runs calls on it, one at a time, so a C client
/// library never blocks Swift's cooperative thread pool.
///
/// The connection is opened on first use; a broken one is dropped and reopened on the next call. Calls queued
/// together run back to back without waking the thread in between.
public final class ConnectionThread<Connection: BlockingConnection, Failure: Error>: @unchecked Sendable {
    public let name: String
    private let open: () throws(Failure) -> Connection
    private let stoppedFailure: Failure
    private let condition = NSCondition()
    private var pending: [(Result<Connection, Failure>) -> Void] = []
    private var stopped = false

    /// `open` runs on the thread whenever there is no usable connection; calls made after `stop()` fail with
    /// `stopped`.
    public init(name: String, stopped: Failure, open: @escaping () throws(Failure) -> Connection) {
        self.name = name
        self.open = open
        self.stoppedFailure = stopped
        let thread = Thread { self.loop() }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Runs `body` with the connection on this thread and returns its result.
    public func run<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            enqueue { connection in
                do { continuation.resume(returning: try body(try connection.get())) } catch { continuation.resume(throwing: error) }
            }
        }
    }

    /// Runs `body` on this thread and blocks the caller until it returns: for threads that are not Swift tasks
    /// (a flusher thread, a CLI's main thread).
    public func runBlocking<T>(_ body: @escaping (Connection) throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var outcome: Result<T, any Error>?
        enqueue { connection in
            outcome = Result { try body(try connection.get()) }
            done.signal()
        }
        done.wait()
        return try outcome!.get()
    }

    /// Stops the thread once the calls already queued have run. The thread keeps this object alive until then.
    public func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func enqueue(_ work: @escaping (Result<Connection, Failure>) -> Void) {
        condition.lock()
        if stopped {
            condition.unlock()
            work(.failure(stoppedFailure))
            return
        }
        pending.append(work)
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        var connection: Connection?
        while true {
            condition.lock()
            while pending.isEmpty && !stopped { condition.wait() }
            if pending.isEmpty && stopped {
                condition.unlock()
                return
            }
            let batch = pending
            pending.removeAll(keepingCapacity: true)
            condition.unlock()
            for work in batch {
                if let current = connection, !current.isBroken {
                    work(.success(current))
                    continue
                }
                connection = nil
                do throws(Failure) {
                    let fresh = try open()
                    connection = fresh
                    work(.success(fresh))
                } catch {
                    work(.failure(error))
                }
            }
        }
    }
}
