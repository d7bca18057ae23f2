public import ServiceLifecycle
import Synchronization

/// A job family as the executable's composition root knows it: the static facts any command may need without
/// building anything (`conveyor enqueue` needs the queue of a class), and how to build the family for a worker.
/// A family that owns tables also conforms to `Postgres.DeclaresMigrations`; one that runs native code in
/// helpers, to `Sandbox.DeclaresHelperOperations`.
public protocol JobFamilyDefinition {
    /// The queue the family's classes go to, and their names.
    static var queue: String { get }
    static var classNames: [String] { get }
    /// Builds the family's value for one worker process, from the one configuration in `context`.
    static func family(_ context: FamilyContext) throws -> JobFamily
}

/// What one family adds to a worker process.
public struct JobFamily: Sendable {
    public var classes: [JobClass]
    /// Observers the worker adds for the family's jobs (a recorder of uploads whose job died, say).
    public var observers: [any JobObserver]
    /// Long-running parts the worker's service group runs and stops (helper pools); stopped after the worker.
    public var services: [any Service]
    /// Prometheus text the family exports beside the worker's own metrics (its circuit breakers, say).
    public var metrics: (@Sendable () -> String)?

    public init(
        classes: [JobClass], observers: [any JobObserver] = [], services: [any Service] = [],
        metrics: (@Sendable () -> String)? = nil
    ) {
        self.classes = classes
        self.observers = observers
        self.services = services
        self.metrics = metrics
    }

    /// The classes of `registry`, for a family that builds them by registering.
    public init(registry: JobRegistry, observers: [any JobObserver] = [], services: [any Service] = [],
                metrics: (@Sendable () -> String)? = nil) {
        self.init(classes: registry.names.compactMap { registry[$0] }, observers: observers, services: services, metrics: metrics)
    }
}

/// What the composition root hands every family it builds: the one configuration, where progress goes, and
/// infrastructure the families share (the first family to ask for a shared part builds it; the others get the
/// same value: one image helper pool for the image jobs and `media.ingest`, say).
public final class FamilyContext: Sendable {
    /// The one reader (flags, environment, config file): each family reads its typed settings from it.
    public let settings: SettingsReader
    /// The effective values under their variables (the reader's `effectiveEnvironment`), for what still reads a
    /// dictionary.
    public let environment: [String: String]
    /// Where long jobs report how far they are (frames done, media seconds done), for the worker's metrics.
    public let progress: (@Sendable (_ jid: String, _ frames: Int, _ seconds: Double) -> Void)?
    private let shared = Mutex<[String: any Sendable]>([:])

    public init(
        settings: SettingsReader, progress: (@Sendable (_ jid: String, _ frames: Int, _ seconds: Double) -> Void)? = nil
    ) {
        self.settings = settings
        self.environment = settings.effectiveEnvironment
        self.progress = progress
    }

    /// A context whose reader holds the families' settings from `environment` alone (tests).
    public convenience init(
        environment: [String: String], progress: (@Sendable (_ jid: String, _ frames: Int, _ seconds: Double) -> Void)? = nil
    ) {
        self.init(settings: SettingsReader(families: environment), progress: progress)
    }

    /// The shared part named `key`, built by `make` the first time it is asked for.
    public func shared<T: Sendable>(_ key: String, as type: T.Type = T.self, make: () throws -> T) throws -> T {
        if let existing = shared.withLock({ $0[key] }) {
            guard let value = existing as? T else { preconditionFailure("shared part \(key) asked for as \(T.self), built as \(Swift.type(of: existing))") }
            return value
        }
        let made = try make()
        return shared.withLock { parts in
            if let raced = parts[key] as? T { return raced }
            parts[key] = made
            return made
        }
    }
}
