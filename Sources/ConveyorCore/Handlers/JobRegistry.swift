/// A job class: its name, its handler, and how the worker runs it.
public struct JobClass: Sendable {
    /// The `class` field of the job JSON: `image.thumbnail`, `email.send`.
    public var name: String
    public var handler: any JobHandler
    /// The queue `conveyor enqueue` uses when none is given.
    public var queue: String
    public var retry: RetryPolicy
    /// Hard limit on one run; the job fails with `JobTimeout` (and is retried) when it is reached.
    public var timeout: Duration
    /// At most this many jobs of the class run at once in one process (nil: only the worker's concurrency).
    public var concurrency: Int?

    public init(
        _ name: String, queue: String = "default", retry: RetryPolicy = .default, timeout: Duration = .seconds(600),
        concurrency: Int? = nil, handler: any JobHandler
    ) {
        self.name = name
        self.handler = handler
        self.queue = queue
        self.retry = retry
        self.timeout = timeout
        self.concurrency = concurrency
    }
}

/// The job classes a worker runs, by name.
public struct JobRegistry: Sendable {
    public private(set) var classes: [String: JobClass] = [:]

    public init() {}

    /// Adds a class, replacing one of the same name.
    public mutating func register(_ jobClass: JobClass) {
        classes[jobClass.name] = jobClass
    }

    public subscript(name: String) -> JobClass? { classes[name] }

    public var names: [String] { classes.keys.sorted() }

    /// Changes the options of a registered class (from the command line or configuration).
    public mutating func configure(_ name: String, _ change: (inout JobClass) -> Void) throws(JobFailure) {
        guard var jobClass = classes[name] else {
            throw .permanent(.unknownJobClass, "no job class named \(name); known: \(names.joined(separator: ", "))")
        }
        change(&jobClass)
        classes[name] = jobClass
    }
}
