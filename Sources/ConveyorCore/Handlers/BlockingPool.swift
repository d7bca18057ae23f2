import Foundation

/// App-owned threads for blocking native calls (libcurl, libpq, waiting on a helper process), so they never
/// occupy Swift's cooperative pool.
public final class BlockingPool: @unchecked Sendable {
    private let condition = NSCondition()
    private var work: [() -> Void] = []
    private var idle = 0
    private var threads = 0
    private let maximumThreads: Int
    private let name: String

    /// - Parameters:
    ///   - maximumThreads: threads are started on demand up to this many and then kept.
    public init(name: String, maximumThreads: Int) {
        self.name = name
        self.maximumThreads = max(1, maximumThreads)
    }

    /// A pool shared by handlers that have no pool of their own.
    public static let shared = BlockingPool(name: "conveyor-blocking", maximumThreads: 64)

    /// Runs `body` on a pool thread and returns its result.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            submit {
                do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
            }
        }
    }

    private func submit(_ item: @escaping () -> Void) {
        condition.lock()
        work.append(item)
        if idle == 0 && threads < maximumThreads {
            threads += 1
            let thread = Thread { [self] in loop() }
            thread.name = "\(name)-\(threads)"
            thread.start()
        } else {
            condition.signal()
        }
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while work.isEmpty {
                idle += 1
                condition.wait()
                idle -= 1
            }
            let item = work.removeFirst()
            condition.unlock()
            item()
        }
    }
}
