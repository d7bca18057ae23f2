import ArgumentParser
import Sandbox

/// `conveyor helper`: the child side of a `HelperPool`. Not for people: the worker starts it and speaks
/// length-prefixed JSON to it over stdin/stdout.
struct HelperCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "helper",
        abstract: "Serve native decoding requests on stdin/stdout for a worker (started by the worker itself).",
        shouldDisplay: false)

    @Option(help: "Address-space limit (RLIMIT_AS) in MiB.")
    var addressSpaceMb: Int = HelperLimits().addressSpaceMB

    @Option(help: "CPU seconds per request (RLIMIT_CPU, re-armed before each request).")
    var cpuSeconds: Int = HelperLimits().cpuSecondsPerJob

    @Option(help: "Open-file limit (RLIMIT_NOFILE).")
    var openFiles: Int = HelperLimits().openFiles

    @Flag(inversion: .prefixedNo, help: "Sandbox the helper: non-dumpable, file capabilities only, Landlock, and the seccomp filter (no sockets, exec, ptrace, kernel administration or signals to other processes).")
    var sandbox = true

    @Option(help: "With the sandbox, confine the filesystem: write only below this path (repeatable) and the scratch folder.")
    var writable: [String] = []

    @Option(help: "The helper's own scratch folder (made by the pool, also its TMPDIR): with the sandbox, writable.")
    var scratch: String?

    @Option(help: "Use at most this Landlock ABI (default: the kernel's; 0: no Landlock). For tests of older kernels.")
    var landlockAbi: Int?

    var limits: HelperLimits {
        HelperLimits(addressSpaceMB: addressSpaceMb, cpuSecondsPerJob: cpuSeconds, openFiles: openFiles,
                     sandbox: sandbox, writablePaths: writable, maximumLandlockABI: landlockAbi)
    }

    func validate() throws {
        if let problem = limits.problem { throw ValidationError(problem) }
    }

    func run() throws {
        // Every family that runs native code in helpers adds its operations here.
        let status = HelperServer.serve(
            operations: Composition.helperOperations,
            limits: limits, scratch: scratch)
        throw ExitCode(status)
    }
}
