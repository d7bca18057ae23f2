import Foundation
public import ServiceLifecycle

/// A part that runs on threads of its own (a blocking accept loop, a flusher, helper processes) as a service of
/// a `ServiceGroup`: it waits for the group's graceful shutdown, or its cancellation, then calls `stop` on a thread
/// of its own, since stopping may block (a final flush, a helper's exit).
public struct StoppingService: Service, CustomStringConvertible {
    public let description: String
    private let stop: @Sendable () -> Void

    public init(_ name: String, stop: @escaping @Sendable () -> Void) {
        self.description = name
        self.stop = stop
    }

    public func run() async throws {
        // Cancellation ends the wait too: the part is stopped either way.
        try? await gracefulShutdown()
        let stop = stop
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                stop()
                done.resume()
            }
        }
    }
}
