import Synchronization

/// Stops a running transfer from another thread: the progress callback sees it and aborts with `.cancelled`.
/// Signal it from a task cancellation handler so a cancelled job does not wait for its transfer to finish.
public final class CurlAbortSignal: Sendable {
    private let signalled = Atomic<Bool>(false)

    public init() {}

    public func signal() { signalled.store(true, ordering: .relaxed) }

    public var isSignalled: Bool { signalled.load(ordering: .relaxed) }
}
