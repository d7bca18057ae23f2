public import ConveyorCore
public import Logging
import Glibc
import Synchronization

extension JobContext {
    /// A job as a handler sees it, for a handler's unit test: no worker, no Redis. `progress(_:detail:)` calls go to
    /// `progress` when given (a `ProgressRecorder`).
    public static func testing(
        _ jobClass: String, arguments: JSONObject = JSONObject(), jid: String = Job.newJID(), queue: String = "default", attempt: Int = 1,
        timeout: Duration = .seconds(60), progress: ProgressRecorder? = nil
    ) -> JobContext {
        JobContext(
            jid: jid, jobClass: jobClass, queue: queue, arguments: arguments, attempt: attempt, deadline: .now + timeout,
            payload: Job.envelope(jobClass: jobClass, arguments: arguments, queue: queue, jid: jid), logger: Logger(label: "test.\(jobClass)"),
            progressReporter: progress?.reporter)
    }
}

/// Collects a handler's progress reports as written (the latest value of each second, as the worker writes them).
public final class ProgressRecorder: Sendable {
    private final class Writes: Sendable {
        let list = Mutex<[[String: String]]>([])
    }

    private let writes: Writes
    public let reporter: JobProgressReporter

    public init() {
        let writes = Writes()
        self.writes = writes
        reporter = JobProgressReporter { fields, _ in writes.list.withLock { $0.append(Dictionary(fields, uniquingKeysWith: { $1 })) } }
    }

    /// The writes so far, oldest first: `progress`, `detail`, `updated_at`, `status`.
    public var all: [[String: String]] { writes.list.withLock { $0 } }
}

/// The outcomes a worker reports, by jid (a `JobObserver` to pass to `Worker`).
public final class OutcomeRecorder: JobObserver {
    private let seen = Mutex<[String: JobOutcome]>([:])

    public init() {}

    public func jobFinished(_ outcome: JobOutcome) { seen.withLock { $0[outcome.jid] = outcome } }

    public subscript(jid: String) -> JobOutcome? { seen.withLock { $0[jid] } }

    public var count: Int { seen.withLock { $0.count } }
}

/// Waits (polling every 10 ms, at most `timeout`) until `condition` holds; throws naming `what` when it never does.
public func waitUntil(_ what: String, timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    if try await condition() { return }
    throw WaitTimedOut(what: what, timeout: timeout)
}

public struct WaitTimedOut: Error, CustomStringConvertible {
    public var what: String
    public var timeout: Duration
    public var description: String { "timed out after \(timeout) waiting for \(what)" }
}

/// A loopback TCP port nothing listens on now (bound to 0 and released), for a server a test starts.
public func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw WaitTimedOut(what: "a socket", timeout: .zero) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw WaitTimedOut(what: "a free loopback port", timeout: .zero) }
    return Int(UInt16(bigEndian: address.sin_port))
}
