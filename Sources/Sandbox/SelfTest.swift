import ConveyorCore
internal import CShims
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `sandbox.selftest`: a harmless operation that proves the supervision works. It always answers with the
/// helper's pid; on request it crashes, hangs, burns CPU or allocates memory, as a hostile file could make a
/// decoder do.
///
/// Arguments: `{"echo": any}`, `{"crash": true}` (SIGSEGV), `{"abort": true}` (SIGABRT), `{"hang": true}`,
/// `{"spin": true}` (burns CPU until RLIMIT_CPU), `{"allocate_mb": N}` (allocates and touches N MiB),
/// `{"fail": "ErrorClass", "permanent": bool}`, `{"descriptors": true}` (what the helper's descriptors from 3 up
/// point at, as `/proc/self/fd` shows them: `pipe:[inode]`, `socket:[inode]`, a path), `{"escape": true}` (tries
/// what the system-call filter forbids, as an exploited decoder would: a TCP socket, a Unix socket pair, and
/// starting `/bin/true`; answers each one's errno, 0 where it worked), `{"environment": true}` (the names, not the
/// values, of the helper's environment variables), `{"read": path}` / `{"write": path}` (opens the file for
/// reading, or creates it, and answers the errno, 0 where it worked), `{"parent": true}` (what an exploited decoder
/// would try on its worker: read `/proc/<parent>/environ` and `/proc/<parent>/status`, send it signal 0 and SIGCONT
/// with kill, signal 0 with tgkill and through a pidfd, make it a pipe's SIGIO owner, read its RLIMIT_NOFILE with
/// prlimit (which could also set it); and the same to itself; answers each one's errno), `{"threads": path}` (the
/// parent's environ, signal 0 to it and opening `path`, from the runtime's other threads too). Every answer
/// carries `landlock` (the Landlock ABI confining the helper, 0 when none), `signals` (what keeps its signals from
/// other processes: `landlock`, `seccomp` or `none`), `dumpable` (0 or 1), `capabilities` (the effective set,
/// hexadecimal) and `tmpdir` (its TMPDIR: its scratch folder).
enum SelfTest {
    static let operation = HelperOperation<JSONObject, JSONValue>("sandbox.selftest") { arguments, _ throws(JobFailure) in
        try run(arguments)
    }

    static func run(_ arguments: JSONObject) throws(JobFailure) -> JSONValue {
        if arguments["crash"]?.boolValue == true {
            // A real invalid write, as a decoder bug would do (raise() would return after a handler ran).
            let address = UnsafeMutablePointer<Int>(bitPattern: 8)
            address!.pointee = 1
        }
        if arguments["abort"]?.boolValue == true {
            abort()
        }
        if arguments["hang"]?.boolValue == true {
            while true { sleep(60) }
        }
        if arguments["spin"]?.boolValue == true {
            var x: UInt64 = 1
            while x != 0 { x = x &* 6364136223846793005 &+ 1442695040888963407 }
        }
        if let errorClass = arguments["fail"]?.stringValue {
            let permanent = arguments["permanent"]?.boolValue ?? false
            throw JobFailure(errorClass: ErrorClass(rawValue: errorClass), message: "sandbox.selftest failed on request", isPermanent: permanent)
        }
        var result = JSONObject([("pid", JSONValue(Int(getpid())))])
        if let megabytes = arguments["allocate_mb"]?.intValue, megabytes > 0 {
            let size = megabytes << 20
            guard let block = malloc(size) else {
                throw JobFailure.transient(
                    .helperOutOfMemory,
                    "sandbox.selftest could not allocate \(megabytes) MiB inside the helper's address-space limit")
            }
            defer { free(block) }
            // Touch every page so the memory is really committed.
            let bytes = block.assumingMemoryBound(to: UInt8.self)
            var offset = 0
            while offset < size { bytes[offset] = 1; offset += 4096 }
            result["allocated_mb"] = JSONValue(megabytes)
        }
        if let echo = arguments["echo"] { result["echo"] = echo }
        result["landlock"] = JSONValue(HelperServer.landlockABI.withLock { $0 })
        result["signals"] = .string(HelperServer.signalGuard.withLock { $0 })
        result["dumpable"] = JSONValue(Int(conveyor_dumpable()))
        result["capabilities"] = .string(String(conveyor_effective_capabilities(), radix: 16))
        result["tmpdir"] = ProcessEnvironment.current["TMPDIR"].map { JSONValue.string($0) } ?? .null
        if arguments["parent"]?.boolValue == true { result["parent"] = .object(reachParent()) }
        if let path = arguments["threads"]?.stringValue { result["threads"] = .object(fromOtherThreads(opening: path)) }
        if let path = arguments["read"]?.stringValue {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            result["read"] = JSONValue(Int(fd >= 0 ? 0 : errno))
            if fd >= 0 { close(fd) }
        }
        if let path = arguments["write"]?.stringValue {
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            result["write"] = JSONValue(Int(fd >= 0 ? 0 : errno))
            if fd >= 0 { close(fd) }
        }
        if arguments["environment"]?.boolValue == true {
            result["environment"] = .array(ProcessEnvironment.current.keys.sorted().map { JSONValue.string($0) })
        }
        if arguments["escape"]?.boolValue == true { result["escape"] = .object(tryToEscape()) }
        if arguments["descriptors"]?.boolValue == true { result["descriptors"] = .array(openDescriptors().map { JSONValue($0) }) }
        return .object(result)
    }

    /// Each forbidden action's errno (0: it worked, and whatever it made is undone).
    static func tryToEscape() -> JSONObject {
        var outcome = JSONObject()
        #if canImport(Glibc)
        let tcp = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let tcp = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        outcome["socket"] = JSONValue(Int(tcp >= 0 ? 0 : errno))
        if tcp >= 0 { close(tcp) }
        var pair: [Int32] = [-1, -1]
        #if canImport(Glibc)
        let paired = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair)
        #else
        let paired = socketpair(AF_UNIX, SOCK_STREAM, 0, &pair)
        #endif
        outcome["socketpair"] = JSONValue(Int(paired == 0 ? 0 : errno))
        if paired == 0 { close(pair[0]); close(pair[1]) }
        // posix_spawn reports the child's failed execve as its own result.
        var pid: pid_t = 0
        let path = "/bin/true"
        let spawned = path.withCString { p -> Int32 in
            var argv: [UnsafeMutablePointer<CChar>?] = [strdup(p), nil]
            defer { free(argv[0]) }
            return posix_spawn(&pid, p, nil, nil, &argv, environ)
        }
        if spawned == 0 {
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        outcome["exec"] = JSONValue(Int(spawned))
        return outcome
    }

    /// Each attempt on the parent's secrets and on its life: its errno, 0 where it worked. Only harmless signals
    /// (0 checks permission and delivers nothing; SIGCONT does nothing to a running process).
    static func reachParent() -> JSONObject {
        let parent = getppid()
        let me = getpid()
        func opening(_ path: String) -> Int {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            defer { if fd >= 0 { close(fd) } }
            return fd >= 0 ? 0 : Int(errno)
        }
        func killing(_ pid: pid_t, _ signal: Int32) -> Int { kill(pid, signal) == 0 ? 0 : Int(errno) }
        // F_SETOWN on a pipe of its own would have the kernel send the parent SIGIO (which ends a process).
        func owning(_ pid: pid_t) -> Int {
            var ends: [Int32] = [-1, -1]
            guard pipe(&ends) == 0 else { return Int(errno) }
            defer { close(ends[0]); close(ends[1]) }
            return fcntl(ends[0], F_SETOWN, pid) == 0 ? 0 : Int(errno)
        }
        return JSONObject([
            ("pid", JSONValue(Int(parent))),
            ("environ", JSONValue(opening("/proc/\(parent)/environ"))),
            ("status", JSONValue(opening("/proc/\(parent)/status"))),
            ("kill0", JSONValue(killing(parent, 0))),
            ("sigcont", JSONValue(killing(parent, SIGCONT))),
            ("tgkill", JSONValue(Int(conveyor_tgkill(parent, parent, 0)))),
            ("pidfd", JSONValue(Int(conveyor_pidfd_signal(parent, 0)))),
            ("setown", JSONValue(owning(parent))),
            ("prlimit", JSONValue(Int(conveyor_prlimit_read(parent)))),
            ("self_status", JSONValue(opening("/proc/self/status"))),
            ("self_kill0", JSONValue(killing(me, 0))),
            ("self_tgkill", JSONValue(Int(conveyor_tgkill(me, conveyor_gettid(), 0)))),
            ("self_pidfd", JSONValue(Int(conveyor_pidfd_signal(me, 0)))),
            ("self_prlimit", JSONValue(Int(conveyor_prlimit_read(me)))),
        ])
    }

    /// The parent probe's key attempts, and opening `path`, run on the serving thread and on the runtime's threads
    /// (Dispatch's main queue and a global-queue worker, started before the helper served anything), each with that
    /// thread's id and effective capabilities; null where no thread ran the probe within 5 s.
    static func fromOtherThreads(opening path: String) -> JSONObject {
        @Sendable func probe() -> JSONValue {
            let parent = getppid()
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            let opened = fd >= 0 ? 0 : Int(errno)
            if fd >= 0 { close(fd) }
            let environ = open("/proc/\(parent)/environ", O_RDONLY | O_CLOEXEC)
            let environError = environ >= 0 ? 0 : Int(errno)
            if environ >= 0 { close(environ) }
            return .object(JSONObject([
                ("tid", JSONValue(Int(conveyor_gettid()))),
                ("path", JSONValue(opened)),
                ("environ", JSONValue(environError)),
                ("kill0", JSONValue(kill(parent, 0) == 0 ? 0 : Int(errno))),
                ("capabilities", .string(String(conveyor_effective_capabilities(), radix: 16))),
            ]))
        }
        func on(_ queue: DispatchQueue) -> JSONValue {
            let answer = Mutex<JSONValue>(.null)
            let done = DispatchSemaphore(value: 0)
            queue.async {
                let value = probe()
                answer.withLock { $0 = value }
                done.signal()
            }
            return done.wait(timeout: .now() + 5) == .success ? answer.withLock { $0 } : .null
        }
        return JSONObject([
            ("serving", probe()),
            ("dispatch", on(.global())),
            ("main", on(.main)),
        ])
    }

    /// Targets of this process's descriptors from 3 up, leaving out the one reading the directory.
    static func openDescriptors() -> [String] {
        guard let directory = opendir("/proc/self/fd") else { return ["error: cannot read /proc/self/fd"] }
        defer { closedir(directory) }
        let own = dirfd(directory)
        var targets: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let fd = Int32(name), fd >= 3, fd != own else { continue }
            var buffer = [CChar](repeating: 0, count: 4096)
            let n = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
            targets.append(n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "fd \(fd)")
        }
        return targets
    }
}
