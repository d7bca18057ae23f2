public import ConveyorCore
internal import CShims
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Resource limits a helper applies to itself before it serves its first request.
public struct HelperLimits: Sendable, Equatable {
    /// RLIMIT_AS: the helper's whole address space. A decoder that allocates past it gets NULL from malloc
    /// (libvips reports an error) or dies; either way only this helper and its job are lost.
    public var addressSpaceMB: Int
    /// RLIMIT_CPU for one request, in CPU seconds (re-armed before each request; SIGXCPU kills the helper).
    public var cpuSecondsPerJob: Int
    /// RLIMIT_NOFILE.
    public var openFiles: Int
    /// The sandbox, on unless `CONVEYOR_HELPER_SANDBOX=off`: as it is loaded, before any thread exists, the helper
    /// makes itself non-dumpable, keeps only the file capabilities (`keptCapabilities`) and Landlock confines its
    /// files (`writablePaths`, its scratch folder, `HelperServer.readablePaths`), its access to other processes
    /// and, from ABI 6, its signals; then the seccomp filter
    /// (`conveyor_install_helper_syscall_filter`: no sockets, no exec, no ptrace, no kernel administration, and
    /// signals only to itself where Landlock cannot scope them). A helper that cannot install the filter refuses
    /// to start rather than decode unfiltered. Landlock is best effort: a kernel without it leaves the filesystem
    /// unconfined (the helper says so on stderr).
    public var sandbox: Bool
    /// With the sandbox on, the paths below which the helper may write besides its scratch folder (the media
    /// root, or an object store's staging folder); it reads only there and below the system directories.
    public var writablePaths: [String]
    /// The highest Landlock ABI the helper uses; nil: the kernel's. Lower it to get an older kernel's behaviour
    /// (5: signals guarded by the seccomp filter instead of Landlock's scoping; 0: no Landlock at all).
    public var maximumLandlockABI: Int?

    public init(addressSpaceMB: Int = 4096, cpuSecondsPerJob: Int = 120, openFiles: Int = 256, sandbox: Bool = true,
                writablePaths: [String] = [], maximumLandlockABI: Int? = nil) {
        self.addressSpaceMB = addressSpaceMB
        self.cpuSecondsPerJob = cpuSecondsPerJob
        self.openFiles = openFiles
        self.sandbox = sandbox
        self.writablePaths = writablePaths
        self.maximumLandlockABI = maximumLandlockABI
    }

    /// The accepted ranges: what a helper can apply without overflowing its rlimit arithmetic.
    public static let addressSpaceMBRange = 1...(1 << 40)
    public static let cpuSecondsRange = 1...Int(Int32.max)
    public static let openFilesRange = 1...(1 << 20)
    public static let landlockABIRange = 0...Int(Int32.max)

    /// What is out of range, naming the setting and its value; nil when every value can be applied.
    public var problem: String? {
        if !Self.addressSpaceMBRange.contains(addressSpaceMB) {
            return "helper address-space limit \(addressSpaceMB) MiB is outside \(Self.addressSpaceMBRange)"
        }
        if !Self.cpuSecondsRange.contains(cpuSecondsPerJob) {
            return "helper CPU seconds per job \(cpuSecondsPerJob) is outside \(Self.cpuSecondsRange)"
        }
        if !Self.openFilesRange.contains(openFiles) {
            return "helper open-file limit \(openFiles) is outside \(Self.openFilesRange)"
        }
        if let abi = maximumLandlockABI, !Self.landlockABIRange.contains(abi) {
            return "helper Landlock ABI \(abi) is outside \(Self.landlockABIRange)"
        }
        return nil
    }

    /// The `conveyor helper` options that carry these limits to the child.
    public var arguments: [String] {
        ["--address-space-mb", String(addressSpaceMB), "--cpu-seconds", String(cpuSecondsPerJob), "--open-files", String(openFiles)]
            + (sandbox ? [] : ["--no-sandbox"]) + writablePaths.flatMap { ["--writable", $0] }
            + (maximumLandlockABI.map { ["--landlock-abi", String($0)] } ?? [])
    }

    /// `CONVEYOR_HELPER_SANDBOX` (`ImagesSettings.helperSandbox`): `on` (the default) or `off`, from a plain
    /// environment through a reader of the families' settings.
    public static func sandbox(environment: [String: String]) throws(JobFailure) -> Bool {
        let settings = SettingsReader(families: environment)
        try settings.refuse([ImagesSettings.helperSandbox])
        return settings.bool(ImagesSettings.helperSandbox)
    }
}

/// The child side: `conveyor helper` calls `HelperServer.serve(operations:limits:)`, which answers requests on
/// stdin/stdout until stdin closes.
public enum HelperServer {
    /// Applies the limits, then serves requests for `operations` one at a time until the parent closes stdin.
    /// Returns the process exit status.
    /// - Parameter scratch: the helper's own folder (made by its pool, which also sets `TMPDIR` to it): with the
    ///   sandbox, the only place it may write besides `limits.writablePaths`.
    public static func serve(operations: HelperOperations, limits: HelperLimits, scratch: String? = nil) -> Int32 {
        // The protocol owns the original stdout; anything a library prints goes to stderr instead.
        let output = dup(1)
        guard output >= 0 else { return 70 }
        _ = dup2(2, 1)
        signal(SIGPIPE, SIG_IGN)
        // Landlock confines the calling thread and the threads it starts from then on: requests are served on
        // this thread, and the decoders' own threads start from it, after the limits.
        if let problem = applyLimits(limits, scratch: scratch) {
            logError("conveyor helper: \(problem)")
            return 71
        }
        watchParent()
        while true {
            let frame: [UInt8]
            do {
                switch try HelperWire.readFrame(from: 0, until: nil) {
                case .endOfFile, .timedOut: return 0
                case .frame(let bytes): frame = bytes
                }
            } catch {
                logError("conveyor helper: \(error)")
                return 74
            }
            armCPULimit(seconds: limits.cpuSecondsPerJob)
            let response = handle(frame, operations: operations)
            do {
                try HelperWire.writeFrame(response.bytes, to: output)
            } catch {
                return 74
            }
        }
    }

    /// A helper outlives a worker that was killed (SIGKILL, the OOM killer) only as long as its current job:
    /// a transcode would burn CPU for up to its whole limit, a decoder stuck without using CPU would stay
    /// forever. Ten times a second a thread checks that the parent is still the worker that started it, and
    /// ends the helper when it is not, well within a second of the worker's death. (PR_SET_PDEATHSIG would fire when the spawning *thread* ends, which a worker's
    /// pool threads do.)
    private static func watchParent() {
        let parent = getppid()
        guard parent > 1 else { return }
        let thread = Thread {
            // What /proc/<pid>/task/*/comm shows (15 characters at most).
            _ = conveyor_set_thread_name("parent-watch")
            while true {
                usleep(100_000)
                if getppid() != parent {
                    logError("conveyor helper: the worker (pid \(parent)) is gone; exiting")
                    _exit(75)
                }
            }
        }
        thread.start()
    }

    static func handle(_ frame: [UInt8], operations: HelperOperations) -> JSONValue {
        let request: JSONObject
        do {
            guard let object = try JSONValue(parsing: frame).objectValue else {
                return HelperWire.errorFrame(.permanent(.helperProtocolError, "helper request is not a JSON object"))
            }
            request = object
        } catch {
            return HelperWire.errorFrame(.permanent(.helperProtocolError, "helper request is not valid JSON: \(error)"))
        }
        guard let name = request["operation"]?.stringValue else {
            return HelperWire.errorFrame(.permanent(.helperProtocolError, "helper request has no operation"))
        }
        guard let operation = operations.operation(named: name) else {
            return HelperWire.errorFrame(.permanent(
                .unknownHelperOperation,
                "this conveyor helper has no operation \(name); known: \(operations.names.joined(separator: ", "))"))
        }
        let arguments = request["arguments"]?.objectValue ?? JSONObject()
        let deadline = request["deadline_ms"]?.intValue.map { ContinuousClock.now + .milliseconds($0) }
        return perform(operation, arguments: arguments, deadline: deadline)
    }

    /// Runs one operation and turns its outcome into a response frame (also used for in-process runs).
    static func perform(_ operation: HelperOperations.Wire, arguments: JSONObject, deadline: ContinuousClock.Instant?) -> JSONValue {
        do throws(JobFailure) {
            let result = try operation(arguments, HelperContext(deadline: deadline))
            return .object(JSONObject([("result", result)]))
        } catch {
            return HelperWire.errorFrame(error)
        }
    }

    private static func applyLimits(_ limits: HelperLimits, scratch: String?) -> String? {
        func set(_ resource: Int32, _ soft: rlim_t, _ hard: rlim_t, _ what: String) -> String? {
            var limit = rlimit(rlim_cur: soft, rlim_max: hard)
            #if canImport(Glibc)
            let r = setrlimit(__rlimit_resource_t(UInt32(resource)), &limit)
            #else
            let r = setrlimit(resource, &limit)
            #endif
            return r == 0 ? nil : "setrlimit \(what) failed: \(String(cString: strerror(errno)))"
        }
        if let problem = limits.problem { return problem }
        // In range (problem is nil), so neither conversion nor the shift can fail.
        let addressSpace = rlim_t(limits.addressSpaceMB) << 20
        if let e = set(Int32(RLIMIT_CORE.rawValue), 0, 0, "RLIMIT_CORE") { return e }
        if let e = set(Int32(RLIMIT_AS.rawValue), addressSpace, addressSpace, "RLIMIT_AS") { return e }
        let files = rlim_t(limits.openFiles)
        if let e = set(Int32(RLIMIT_NOFILE.rawValue), files, files, "RLIMIT_NOFILE") { return e }
        guard limits.sandbox else { return nil }
        // exec made this process dumpable again, and Landlock and capabilities act per thread: the executable's
        // constructor confined the helper before any thread started (conveyor_helper_load_state). Here: check it
        // did, with the arguments read here.
        var step: UnsafePointer<CChar>?
        let state = conveyor_helper_load_state(&step)
        let failedStep = step.map { String(cString: $0) } ?? ""
        if state == 0 {
            return "the helper was not confined at start-up (it must be started as `conveyor helper ...` without --no-sandbox); "
                + "set \(ImagesSettings.helperSandbox.name)=off to run helpers with resource limits only"
        }
        if state < 0 {
            return "cannot confine the helper (\(failedStep)): \(String(cString: strerror(-state))); "
                + "set \(ImagesSettings.helperSandbox.name)=off to run helpers with resource limits only"
        }
        let loadedWritable = (0..<conveyor_helper_load_writable_count()).map { String(cString: conveyor_helper_load_writable($0)) }
        let loadedScratch = conveyor_helper_load_scratch().map { String(cString: $0) }
        let loadedMaximum = conveyor_helper_load_maximum_abi()
        guard loadedWritable == limits.writablePaths, loadedScratch == scratch,
              (loadedMaximum < 0 ? nil : Int(loadedMaximum)) == limits.maximumLandlockABI
        else {
            return "the helper's sandbox was set up at start-up for writable \(loadedWritable), scratch \(loadedScratch ?? "none"), "
                + "but its options say writable \(limits.writablePaths), scratch \(scratch ?? "none")"
        }
        let abi = Int(conveyor_helper_load_abi())
        landlockABI.withLock { $0 = abi }
        if abi == 0 {
            if limits.maximumLandlockABI.map({ $0 <= 0 }) == true {
                logError("conveyor helper: Landlock is off (--landlock-abi 0); the helper's filesystem access is not confined")
            } else {
                logError("conveyor helper: Landlock is not available here (kernel, or a container seccomp profile that refuses it); the helper's filesystem access is not confined")
            }
        }
        // Last: from here on no thread of the helper can open a socket, start a program, change another process's
        // limits or (where Landlock's scoping is missing) signal it, so nothing a hostile file makes a decoder do
        // can reach the network or leave this process.
        let scopesSignals = abi >= 6
        let e = conveyor_install_helper_syscall_filter(getpid(), scopesSignals ? 0 : 1)
        if e != 0 {
            return "cannot install the system-call filter (seccomp): \(String(cString: strerror(e))); "
                + "set \(ImagesSettings.helperSandbox.name)=off to run helpers with resource limits only"
        }
        signalGuard.withLock { $0 = scopesSignals ? "landlock" : "seccomp" }
        return nil
    }

    /// What a sandboxed helper keeps of its capabilities (as root): CAP_CHOWN, CAP_DAC_OVERRIDE,
    /// CAP_DAC_READ_SEARCH, CAP_FOWNER, so it still reads and writes a media root owned by another user.
    /// CAP_SYS_PTRACE (a non-dumpable worker's /proc files), CAP_KILL, CAP_SYS_ADMIN, CAP_SETUID, CAP_NET_* and
    /// the rest go.
    static let keptCapabilities = UInt64(CONVEYOR_HELPER_KEPT_CAPABILITIES)

    /// Below these a confined helper may read (and execute): the system's libraries and data, the devices, the
    /// kernel's views (/sys, /proc: libdispatch reads /proc/<tid>/stat of the helper's own threads; another
    /// process's environ, mem, maps and fd stay closed, as Landlock refuses ptrace access outside the helper's
    /// domain and the worker is non-dumpable), and from /etc only the files glibc reads (the loader cache for
    /// libvips' modules, user and group names, the time zone): not /etc/shadow, not keys. Home directories,
    /// /root, /srv, /var and /run are not here. Traced with strace over the image and video tests; liborc, which
    /// tries $HOME for its JIT file first, falls back to TMPDIR (the helper's scratch folder). The list lives in
    /// CShims' landlock.c, which applies it.
    static var readablePaths: [String] {
        var count: Int32 = 0
        let paths = conveyor_helper_readable_paths(&count)
        return (0..<Int(count)).compactMap { paths?[$0].map { String(cString: $0) } }
    }

    /// What keeps this helper's signals from other processes: "landlock" (ABI 6 scoping), "seccomp" (the filter
    /// compares the target with its own pid) or "none" (sandbox off); reported by `sandbox.selftest`.
    static let signalGuard = Mutex("none")

    /// The Landlock ABI this kernel offers, 0 when Landlock is not available here.
    public static var availableLandlockABI: Int { Int(conveyor_landlock_abi()) }

    /// The Landlock ABI in force in this helper, 0 when unconfined (reported by `sandbox.selftest`).
    static let landlockABI = Mutex(0)

    /// RLIMIT_CPU counts the process's whole life, so each request gets the CPU already used plus its budget.
    private static func armCPULimit(seconds: Int) {
        var usage = rusage()
        getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
        let used = rlim_t(clamping: usage.ru_utime.tv_sec) &+ rlim_t(clamping: usage.ru_stime.tv_sec) &+ 1
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_CPU.rawValue), &limit)
        let (wanted, overflow) = used.addingReportingOverflow(rlim_t(clamping: max(1, seconds)))
        limit.rlim_cur = overflow ? limit.rlim_max : min(wanted, limit.rlim_max)
        setrlimit(__rlimit_resource_t(RLIMIT_CPU.rawValue), &limit)
    }
}

/// Writes a line to stderr (fd 2), which the helper shares with the worker.
func logError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
}
