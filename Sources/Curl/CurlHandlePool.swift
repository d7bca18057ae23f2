import Foundation

/// Idle `CurlEasy` handles shared by a process's blocking threads: a transfer borrows one, so kept-alive
/// connections are reused across jobs while no handle is ever used by two threads at once.
public final class CurlHandlePool: @unchecked Sendable {
    private let lock = NSLock()
    private var idle: [CurlEasy] = []
    private let maximumIdle: Int

    /// - Parameters:
    ///   - maximumIdle: handles kept for reuse; extra ones are closed when returned.
    public init(maximumIdle: Int = 16) {
        self.maximumIdle = max(1, maximumIdle)
    }

    /// Runs `body` with a handle borrowed for its duration. Call it from a blocking thread.
    public func withHandle<T>(_ body: (CurlEasy) throws -> T) throws -> T {
        lock.lock()
        let borrowed = idle.popLast()
        lock.unlock()
        let easy = try borrowed ?? CurlEasy()
        defer {
            lock.lock()
            if idle.count < maximumIdle { idle.append(easy) }
            lock.unlock()
        }
        return try body(easy)
    }

    /// Handles currently idle in the pool.
    public var idleCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return idle.count
    }
}
