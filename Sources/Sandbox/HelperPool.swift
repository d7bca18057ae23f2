public import ConveyorCore
import Synchronization
import Tracing
#if canImport(Glibc)
import Glibc
#endif

/// A pool of warm `conveyor helper` processes that run native decoding away from the worker.
///
/// Up to `size` helpers are started lazily and reused; each is retired after `maxJobsPerHelper` jobs. A helper
/// that crashes, is killed by the kernel, or passes its job's deadline (the pool SIGKILLs it) costs only that
/// job, which fails with a transient `HelperCrashed`, `HelperOutOfMemory`, `HelperCPULimit` or
/// `HelperTimeout`; the next job gets a fresh helper.
public final class HelperPool: Sendable {
    public struct Configuration: Sendable {
        /// Helpers running at once (and jobs served at once).
        public var size: Int
        /// A helper is retired after this many jobs, so a slow leak in a decoder cannot grow forever.
        public var maxJobsPerHelper: Int
        /// The `conveyor` binary to start; `/proc/self/exe` (this binary) by default.
        public var executable: String
        /// Arguments before the limit options; `["helper"]` by default.
        public var arguments: [String]
        public var limits: HelperLimits
        /// Extra environment for helpers, on top of the few variables they inherit from the worker (locale, PATH,
        /// VIPS_*, MALLOC_*: see `ProcessEnvironment.forHelpers`; never the worker's secrets). `TMPDIR` is always
        /// the helper's own scratch folder.
        public var environment: [String: String]
        /// Time the pool waits past a job's deadline for the helper's own answer before killing it, so the
        /// helper can stop libvips cleanly and report which limit was hit.
        public var killGrace: Duration
        /// Run operations on a thread of this process instead of in helpers. For debugging only: a crash
        /// then takes the worker down.
        public var inProcess: Bool

        public init(
            size: Int = 2, maxJobsPerHelper: Int = 200, executable: String = "/proc/self/exe",
            arguments: [String] = ["helper"], limits: HelperLimits = HelperLimits(), environment: [String: String] = [:],
            killGrace: Duration = .milliseconds(500), inProcess: Bool = false
        ) {
            self.size = max(1, size)
            self.maxJobsPerHelper = max(1, maxJobsPerHelper)
            self.executable = executable
            self.arguments = arguments
            self.limits = limits
            self.environment = environment
            self.killGrace = killGrace
            self.inProcess = inProcess
        }
    }

    private struct State {
        var idle: [HelperProcess] = []
        var busy = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
        var started = 0
        var closed = false
    }

    public let configuration: Configuration
    /// What an in-process pool runs (helper processes serve what `conveyor helper` was built with).
    public let operations: HelperOperations
    private let state = Mutex(State())
    private let threads: BlockingPool

    /// - Parameter operations: the operations an `inProcess` pool runs; the built-in `sandbox.selftest` alone by default.
    public init(_ configuration: Configuration = Configuration(), operations: HelperOperations = HelperOperations()) {
        self.configuration = configuration
        self.operations = operations
        self.threads = BlockingPool(name: "conveyor-helper", maximumThreads: configuration.size)
        // A write to a helper that just died must fail with EPIPE, not kill the worker.
        signal(SIGPIPE, SIG_IGN)
        // Helpers run as this process's user: without this, one could read /proc/<worker>/environ.
        if !configuration.inProcess {
            ProcessHardening.forbidInspection()
            HelperScratch.removeAbandoned(in: ProcessEnvironment.temporaryDirectory)
        }
    }

    deinit { shutdown() }

    /// Helpers started since the pool was created (crashed, recycled and replaced ones included).
    public var helpersStarted: Int { state.withLock { $0.started } }

    /// Runs a typed operation in a helper: sends its request, decodes its response.
    ///
    /// - Throws: as `run(_:_:deadline:)`, or the response's own decoding failure.
    public func run<Request, Response>(
        _ operation: HelperOperation<Request, Response>, _ request: Request, deadline: ContinuousClock.Instant
    ) async throws -> Response {
        try Response(helperResult: try await run(operation.name, request.helperArguments, deadline: deadline))
    }

    /// Runs the operation named `operation` in a helper and returns its result.
    ///
    /// - Throws: the operation's own `JobFailure`, or a transient `HelperCrashed` / `HelperOutOfMemory` /
    ///   `HelperCPULimit` / `HelperTimeout` when the helper died or overran `deadline`.
    public func run(_ operation: String, _ arguments: JSONObject, deadline: ContinuousClock.Instant) async throws -> JSONValue {
        try await Traced.span(
            "helper \(operation)", kind: .internal,
            attributes: ["conveyor.helper.operation": "\(operation)", "conveyor.helper.sandboxed": .bool(!configuration.inProcess)]
        ) { _ in
            try await perform(operation, arguments, deadline: deadline)
        }
    }

    private func perform(_ operation: String, _ arguments: JSONObject, deadline: ContinuousClock.Instant) async throws -> JSONValue {
        if configuration.inProcess {
            guard let body = operations.operation(named: operation) else {
                throw JobFailure.permanent(.unknownHelperOperation, "no helper operation named \(operation)")
            }
            let response = try await threads.run {
                HelperServer.perform(body, arguments: arguments, deadline: deadline)
            }
            return try Self.decode(response, operation: operation)
        }
        let request = JSONValue.object(JSONObject([
            ("operation", .string(operation)),
            ("arguments", .object(arguments)),
            ("deadline_ms", JSONValue(Self.milliseconds(deadline - .now))),
        ]))
        let requestBytes = request.bytes
        guard requestBytes.count <= HelperWire.maximumFrame else {
            throw JobFailure.permanent(
                .helperProtocolError,
                "\(operation): a request of \(requestBytes.count) bytes exceeds the helpers' \(HelperWire.maximumFrame) byte limit")
        }
        await acquireSlot()
        let helper: HelperProcess
        do {
            helper = try takeHelper()
        } catch {
            releaseSlot(returning: nil)
            throw error
        }
        let hardDeadline = deadline + configuration.killGrace
        let maxJobs = configuration.maxJobsPerHelper
        let outcome: Result<JSONValue, JobFailure> = await withTaskCancellationHandler {
            do {
                return try await threads.run { Self.exchange(helper, request: requestBytes, operation: operation, hardDeadline: hardDeadline) }
            } catch {
                return .failure(JobFailure(error))
            }
        } onCancel: {
            helper.kill(reason: "cancelled")
        }
        switch outcome {
        case .success(let response):
            let keep = helper.served.add(1, ordering: .relaxed).newValue < maxJobs && helper.killReason.withLock({ $0 }) == nil
            if keep {
                releaseSlot(returning: helper)
            } else {
                releaseSlot(returning: nil)
                _ = try? await threads.run { helper.retire() }
            }
            return try Self.decode(response, operation: operation)
        case .failure(let failure):
            releaseSlot(returning: nil)
            throw failure
        }
    }

    /// Kills idle helpers and refuses new work. Jobs in flight finish or fail on their own.
    public func shutdown() {
        let idle = state.withLock { state -> [HelperProcess] in
            state.closed = true
            defer { state.idle = [] }
            return state.idle
        }
        for helper in idle { helper.retire() }
    }

    // MARK: - Slots

    private func acquireSlot() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.busy < configuration.size {
                    state.busy += 1
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// Frees a slot; a healthy helper goes back to the idle list, a dead one is simply dropped.
    private func releaseSlot(returning helper: HelperProcess?) {
        let (next, retireNow) = state.withLock { state -> (CheckedContinuation<Void, Never>?, HelperProcess?) in
            var retireNow: HelperProcess?
            if let helper {
                if state.closed { retireNow = helper } else { state.idle.append(helper) }
            }
            if !state.waiters.isEmpty {
                return (state.waiters.removeFirst(), retireNow)  // the slot passes straight to the waiter
            }
            state.busy -= 1
            return (nil, retireNow)
        }
        retireNow?.retire()
        next?.resume()
    }

    private func takeHelper() throws -> HelperProcess {
        let reused = state.withLock { state -> HelperProcess? in state.idle.popLast() }
        if let reused { return reused }
        if let problem = configuration.limits.problem {
            throw JobFailure.transient(.helperSpawnFailed, "could not start a helper: \(problem)")
        }
        var environment = ProcessEnvironment.forHelpers(ProcessEnvironment.current)
        // glibc reserves a 64 MiB arena per thread: with RLIMIT_AS that wastes the address-space budget.
        environment["MALLOC_ARENA_MAX"] = environment["MALLOC_ARENA_MAX"] ?? "2"
        // The Swift runtime's crash backtracer would take seconds per crash of a hostile input; a helper crash
        // is reported by its signal instead. Set SWIFT_BACKTRACE in `environment` to get backtraces back.
        environment["SWIFT_BACKTRACE"] = "enable=no"
        for (key, value) in configuration.environment { environment[key] = value }
        // Each helper gets its own folder instead of the worker's TMPDIR, which other helpers and jobs share.
        let scratch = try HelperScratch(parent: ProcessEnvironment.temporaryDirectory)
        environment["TMPDIR"] = scratch.path
        let helper = try HelperProcess.spawn(
            executable: configuration.executable,
            arguments: configuration.arguments + configuration.limits.arguments + ["--scratch", scratch.path],
            environment: environment, scratch: scratch)
        state.withLock { $0.started += 1 }
        return helper
    }

    // MARK: - One request, on a pool thread

    private static func exchange(
        _ helper: HelperProcess, request: [UInt8], operation: String, hardDeadline: ContinuousClock.Instant
    ) -> Result<JSONValue, JobFailure> {
        do {
            try HelperWire.writeFrame(request, to: helper.requests)
        } catch {
            return .failure(death(of: helper, operation: operation))
        }
        let frame: [UInt8]
        do {
            switch try HelperWire.readFrame(from: helper.responses, until: hardDeadline) {
            case .frame(let bytes): frame = bytes
            case .endOfFile: return .failure(death(of: helper, operation: operation))
            case .timedOut:
                helper.kill(reason: "deadline")
                return .failure(death(of: helper, operation: operation))
            }
        } catch {
            helper.kill(reason: "protocol")
            helper.reap()
            return .failure(.transient(.helperProtocolError, "\(operation): \(error)"))
        }
        do {
            return .success(try JSONValue(parsing: frame))
        } catch {
            helper.kill(reason: "protocol")
            helper.reap()
            return .failure(.transient(.helperProtocolError, "\(operation): helper answered with invalid JSON: \(error)"))
        }
    }

    /// Reaps a helper whose pipe closed and explains how it ended.
    private static func death(of helper: HelperProcess, operation: String) -> JobFailure {
        // The pipe can close a moment before the process is gone; reap waits for it.
        let status = helper.reap() ?? 0
        let reason = helper.killReason.withLock { $0 }
        let who = "\(operation) helper pid \(helper.pid)"
        switch reason {
        case "deadline":
            return .transient(.helperTimeout, "\(who) did not finish before the job's deadline and was killed; retry later or raise the job timeout")
        case "cancelled":
            return .transient(.helperCancelled, "\(who) was killed because its job was cancelled")
        default:
            break
        }
        let exited = status & 0x7f == 0
        if exited {
            let code = (status >> 8) & 0xff
            return .transient(.helperCrashed, "\(who) exited with status \(code) before answering")
        }
        let signal = status & 0x7f
        switch signal {
        case SIGKILL:
            // Out of memory only when the kernel says so: its cgroup's oom_kill count grew while the helper ran.
            if let before = helper.oomKillsAtSpawn, let after = OOMKills.count(), after > before {
                return .transient(
                    .helperOutOfMemory,
                    "\(who) was killed by the kernel's out-of-memory killer (cgroup oom_kill \(before) -> \(after)); lower the job's size limits or raise the memory available")
            }
            return .transient(.helperCrashed, "\(who) was killed with SIGKILL from outside the worker (the kernel reports no out-of-memory kill)")
        case SIGXCPU:
            return .transient(.helperCPULimit, "\(who) used up its CPU-time limit (RLIMIT_CPU, \(ImagesSettings.helperCpuSeconds.name)) and was killed by SIGXCPU")
        default:
            return .transient(.helperCrashed, "\(who) crashed with \(signalName(signal)); the input may be hostile or corrupt, a fresh helper takes the next job")
        }
    }

    private static func decode(_ response: JSONValue, operation: String) throws -> JSONValue {
        if let result = response["result"] { return result }
        if let error = response["error"]?.objectValue {
            throw JobFailure(
                errorClass: error["errorClass"]?.stringValue.map(ErrorClass.init(rawValue:)) ?? .helperError,
                message: error["message"]?.stringValue ?? "\(operation) failed in its helper",
                isPermanent: error["permanent"]?.boolValue ?? false)
        }
        throw JobFailure.transient(.helperProtocolError, "\(operation): helper response has neither result nor error")
    }

    /// Whole milliseconds in `d`, 0 for a negative one, Int.max for one too long to count (a far deadline).
    static func milliseconds(_ d: Duration) -> Int {
        let c = d.components
        guard c.seconds >= 0 else { return 0 }
        let (ms, overflow) = Int(c.seconds).multipliedReportingOverflow(by: 1000)
        if overflow { return .max }
        let (total, over) = ms.addingReportingOverflow(Int(c.attoseconds / 1_000_000_000_000_000))
        return over ? .max : total
    }
}

enum ProcessEnvironment {
    /// What a helper inherits from the worker: what the C libraries and the runtime read, nothing else. The
    /// worker's own settings carry secrets (DATABASE_URL and REDIS_URL with passwords, LLM API keys, SMTP
    /// credentials) that a decoder exploited by a hostile file could otherwise copy into the image it writes.
    /// `HelperPool.Configuration.environment` adds to this explicitly.
    static func forHelpers(_ environment: [String: String]) -> [String: String] {
        environment.filter { key, _ in
            inheritedNames.contains(key) || inheritedPrefixes.contains { key.hasPrefix($0) }
        }
    }

    static let inheritedNames: Set<String> = [
        "PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "LD_LIBRARY_PATH",
    ]
    /// Locale, glibc malloc, libvips, GLib, the Swift runtime, and the helpers' own limits.
    static let inheritedPrefixes = ["LC_", "MALLOC_", "VIPS_", "G_", "SWIFT_", "CONVEYOR_HELPER_"]

    /// The worker's TMPDIR (`/tmp` when unset), where its helpers' scratch folders go.
    static var temporaryDirectory: String {
        current["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    }

    static var current: [String: String] {
        var result: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { result[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return result
    }
}
