import Foundation

/// A dedicated thread that owns one PostgreSQL connection and runs blocking calls on it, one at a time,
/// so libpq never blocks Swift's cooperative thread pool.
///
/// The connection is opened on first use; a broken one is dropped and reopened on the next call.
public final class PostgresThread: @unchecked Sendable {
    public let url: String
    public let name: String
    private let condition = NSCondition()
    private var pending: [(Result<PostgresConnection, PostgresError>) -> Void] = []
    private var stopped = false

    public init(url: String, name: String) {
        self.url = url
        self.name = name
        let thread = Thread { self.loop() }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Runs `body` with the connection on this thread and returns its result.
    public func run<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            enqueue { connection in
                do { continuation.resume(returning: try body(try connection.get())) } catch { continuation.resume(throwing: error) }
            }
        }
    }

    /// Runs `body` on this thread and blocks the caller until it returns: for threads that are not Swift tasks
    /// (a flusher thread, a CLI's main thread).
    public func runBlocking<T>(_ body: @escaping (PostgresConnection) throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var outcome: Result<T, any Error>?
        enqueue { connection in
            outcome = Result { try body(try connection.get()) }
            done.signal()
        }
        done.wait()
        return try outcome!.get()
    }

    /// Stops the thread once the calls already queued have run.
    public func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func enqueue(_ work: @escaping (Result<PostgresConnection, PostgresError>) -> Void) {
        condition.lock()
        if stopped {
            condition.unlock()
            work(.failure(PostgresError(kind: .connection, message: "\(name): stopped")))
            return
        }
        pending.append(work)
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        var connection: PostgresConnection?
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
                do throws(PostgresError) {
                    let fresh = try PostgresConnection(url: url)
                    connection = fresh
                    work(.success(fresh))
                } catch {
                    work(.failure(error))
                }
            }
        }
    }
}
