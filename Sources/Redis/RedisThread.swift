import Foundation

/// A dedicated thread that owns one Redis connection and runs blocking calls on it, one at a time,
/// so hiredis never blocks Swift's cooperative thread pool.
///
/// A broken connection is dropped and replaced on the next call.
public final class RedisThread: @unchecked Sendable {
    public let endpoint: RedisEndpoint
    public let name: String
    private let commandTimeout: Double
    private let condition = NSCondition()
    private var pending: [(Result<RedisConnection, RedisError>) -> Void] = []
    private var stopped = false
    private var thread: Thread?

    public init(_ endpoint: RedisEndpoint, name: String, commandTimeout: Double = 30) {
        self.endpoint = endpoint
        self.name = name
        self.commandTimeout = commandTimeout
        let thread = Thread { self.loop() }
        thread.name = name
        thread.stackSize = 1 << 20
        self.thread = thread
        thread.start()
    }

    /// Runs `body` with the connection on this thread and returns its result.
    public func run<T: Sendable>(_ body: @escaping @Sendable (RedisConnection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            enqueue { connection in
                do { continuation.resume(returning: try body(try connection.get())) } catch { continuation.resume(throwing: error) }
            }
        }
    }

    /// Stops the thread once the calls already queued have run. The thread keeps this object alive until then.
    public func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func enqueue(_ work: @escaping (Result<RedisConnection, RedisError>) -> Void) {
        condition.lock()
        if stopped {
            condition.unlock()
            work(.failure(.connection("\(name): stopped")))
            return
        }
        pending.append(work)
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        var connection: RedisConnection?
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
                do throws(RedisError) {
                    let fresh = try RedisConnection(endpoint, commandTimeout: commandTimeout)
                    connection = fresh
                    work(.success(fresh))
                } catch {
                    work(.failure(error))
                }
            }
        }
    }
}
