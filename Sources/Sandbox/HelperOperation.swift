public import ConveyorCore

/// What a helper operation gets besides its request.
public struct HelperContext: Sendable {
    /// The request's deadline, for native code that can stop itself (libvips kill flag, FFmpeg interrupt
    /// callback). Nil when the request names none.
    public var deadline: ContinuousClock.Instant?

    public init(deadline: ContinuousClock.Instant?) {
        self.deadline = deadline
    }
}

/// A helper operation's request: what it decodes from the wire's `arguments` object, and how the worker writes it.
public protocol HelperRequest: Sendable {
    init(helperArguments: JSONObject) throws(JobFailure)
    var helperArguments: JSONObject { get }
}

/// A helper operation's response: how the helper writes the wire's `result`, and how the worker reads it back.
public protocol HelperResponse: Sendable {
    init(helperResult: JSONValue) throws(JobFailure)
    var helperResult: JSONValue { get }
}

/// Untyped arguments, for operations that read them field by field (`sandbox.selftest`).
extension JSONObject: HelperRequest {
    public init(helperArguments: JSONObject) { self = helperArguments }
    public var helperArguments: JSONObject { self }
}

/// An untyped result, for operations whose result the worker passes on as the job's.
extension JSONValue: HelperResponse {
    public init(helperResult: JSONValue) { self = helperResult }
    public var helperResult: JSONValue { self }
}

/// Native work that runs inside a `conveyor helper` process (or, for debugging, on a worker thread), typed by
/// its request and response. The worker runs it by value (`pool.run(operation, request, deadline:)`); the helper
/// serves it from the `HelperOperations` it was given. Throw a `JobFailure` to choose the error class the job records.
public struct HelperOperation<Request: HelperRequest, Response: HelperResponse>: Sendable {
    /// The name on the wire (`image.thumbnail`).
    public let name: String
    let body: @Sendable (Request, HelperContext) throws(JobFailure) -> Response

    public init(_ name: String, _ body: @escaping @Sendable (Request, HelperContext) throws(JobFailure) -> Response) {
        self.name = name
        self.body = body
    }

    /// The operation on wire values: decodes the arguments, runs, encodes the result.
    var wire: HelperOperations.Wire {
        let body = self.body
        return { arguments, context throws(JobFailure) in
            try body(try Request(helperArguments: arguments), context).helperResult
        }
    }
}

/// The operations a helper serves, by name. Each family builds its own value (`ImagesJobs.helperOperations`); the
/// executable merges them for `conveyor helper`, and a `HelperPool` running in-process is given the same value.
/// A job family that runs native code in helpers: `conveyor helper` serves every declared operation.
public protocol DeclaresHelperOperations {
    static var helperOperations: HelperOperations { get }
}

public struct HelperOperations: Sendable {
    typealias Wire = @Sendable (JSONObject, HelperContext) throws(JobFailure) -> JSONValue

    private var table: [String: Wire]

    /// The built-in `sandbox.selftest` alone.
    public init() {
        table = [SelfTest.operation.name: SelfTest.operation.wire]
    }

    /// These operations and `operation`, which replaces one of the same name.
    public func adding<Request, Response>(_ operation: HelperOperation<Request, Response>) -> HelperOperations {
        var result = self
        result.table[operation.name] = operation.wire
        return result
    }

    /// These operations and `other`'s; `other`'s win on a name both have.
    public func merging(_ other: HelperOperations) -> HelperOperations {
        var result = self
        result.table.merge(other.table) { _, theirs in theirs }
        return result
    }

    public var names: [String] { table.keys.sorted() }

    func operation(named name: String) -> Wire? { table[name] }
}
