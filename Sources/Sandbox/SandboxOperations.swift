public import ConveyorCore
import Foundation
import Synchronization

/// Native work that runs inside a `conveyor helper` process: takes the request's argument object, returns a
/// JSON result. Throw a `JobFailure` to choose the error class the job records.
public typealias HelperOperation = @Sendable (JSONObject) throws -> JSONValue

/// The process-global table of helper operations, filled by each handler family before `conveyor helper`
/// serves (and before a `HelperPool` runs in-process).
public enum SandboxOperations {
    private static let table = Mutex<[String: HelperOperation]>(["sandbox.selftest": SelfTest.run])

    /// Adds an operation, replacing one of the same name.
    public static func register(_ name: String, _ operation: @escaping HelperOperation) {
        table.withLock { $0[name] = operation }
    }

    public static func operation(named name: String) -> HelperOperation? {
        table.withLock { $0[name] }
    }

    public static var names: [String] { table.withLock { $0.keys.sorted() } }

    /// The deadline of the request the helper is serving, for native code that can stop itself
    /// (libvips kill flag, FFmpeg interrupt callback). Nil outside a request.
    /// Per thread, because in-process runs serve several requests at once.
    public static var currentDeadline: ContinuousClock.Instant? {
        (Thread.current.threadDictionary[deadlineKey] as? DeadlineBox)?.instant
    }

    private static let deadlineKey = "conveyor.sandbox.deadline"

    private final class DeadlineBox: NSObject {
        let instant: ContinuousClock.Instant
        init(_ instant: ContinuousClock.Instant) { self.instant = instant }
    }

    static func withDeadline<T>(_ instant: ContinuousClock.Instant?, _ body: () throws -> T) rethrows -> T {
        let dictionary = Thread.current.threadDictionary
        dictionary[deadlineKey] = instant.map(DeadlineBox.init)
        defer { dictionary.removeObject(forKey: deadlineKey) }
        return try body()
    }
}
