import ConveyorCore
internal import CShims
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One running `conveyor helper` child: its pid and the two pipe ends the parent owns.
final class HelperProcess: Sendable {
    let pid: pid_t
    let requests: Int32
    let responses: Int32
    /// Jobs served so far (touched only by the pool thread that holds the helper).
    let served = Atomic<Int>(0)
    /// Why the parent killed the child, if it did (set before the SIGKILL, read after the pipe closes).
    let killReason = Mutex<String?>(nil)
    private let reaped = Atomic<Bool>(false)
    /// The kernel's count of out-of-memory kills in this cgroup when the helper started (nil where unreadable):
    /// a SIGKILL counts as out-of-memory only if the count grew.
    let oomKillsAtSpawn: Int?
    /// The helper's private folder, removed once the helper has been reaped.
    let scratch: HelperScratch?

    private init(pid: pid_t, requests: Int32, responses: Int32, scratch: HelperScratch?) {
        self.pid = pid
        self.requests = requests
        self.responses = responses
        self.scratch = scratch
        self.oomKillsAtSpawn = OOMKills.count()
    }

    /// Starts `executable arguments...` with pipes on its stdin and stdout; stderr is inherited. `scratch` is
    /// removed when the helper has ended (or here, when it cannot start).
    static func spawn(
        executable: String, arguments: [String], environment: [String: String], scratch: HelperScratch? = nil
    ) throws -> HelperProcess {
        do {
            return try start(executable: executable, arguments: arguments, environment: environment, scratch: scratch)
        } catch {
            scratch?.remove()
            throw error
        }
    }

    private static func start(
        executable: String, arguments: [String], environment: [String: String], scratch: HelperScratch?
    ) throws -> HelperProcess {
        var toChild: [Int32] = [0, 0]
        var fromChild: [Int32] = [0, 0]
        // Pipes are created and marked close-on-exec under one lock, so a helper spawned at the same moment
        // from another thread cannot inherit this helper's pipe ends (which would hide its EOF).
        spawnLock.lock()
        defer { spawnLock.unlock() }
        guard pipe(&toChild) == 0 else { throw spawnError("pipe", errno, executable) }
        guard pipe(&fromChild) == 0 else {
            let e = errno
            close(toChild[0]); close(toChild[1])
            throw spawnError("pipe", e, executable)
        }
        for fd in toChild + fromChild { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        // Nothing else crosses into the helper: not the worker's Redis, PostgreSQL or SMTP sockets (a decoder
        // exploit must not reach them), and not pipes other code in this process made without close-on-exec
        // (an inherited write end would hide another child's EOF).
        let closing = conveyor_spawn_file_actions_addclosefrom(&actions, 3)
        guard closing == 0 else {
            for fd in toChild + fromChild { close(fd) }
            throw spawnError("posix_spawn_file_actions_addclosefrom_np", closing, executable)
        }

        let argv = [executable] + arguments
        let envp = environment.map { "\($0.key)=\($0.value)" }
        var cArgv: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        var cEnvp: [UnsafeMutablePointer<CChar>?] = envp.map { strdup($0) } + [nil]
        defer {
            for p in cArgv { free(p) }
            for p in cEnvp { free(p) }
        }
        var pid: pid_t = 0
        let r = posix_spawn(&pid, executable, &actions, nil, &cArgv, &cEnvp)
        close(toChild[0])
        close(fromChild[1])
        guard r == 0 else {
            close(toChild[1]); close(fromChild[0])
            throw spawnError("posix_spawn", r, executable)
        }
        return HelperProcess(pid: pid, requests: toChild[1], responses: fromChild[0], scratch: scratch)
    }

    private static func spawnError(_ call: String, _ code: Int32, _ executable: String) -> JobFailure {
        .transient(.helperSpawnFailed, "could not start helper \(executable): \(call): \(String(cString: strerror(code)))")
    }

    func kill(reason: String) {
        killReason.withLock { if $0 == nil { $0 = reason } }
        _ = Glibc.kill(pid, SIGKILL)
    }

    /// Waits for the child to exit and returns its raw wait status (once; later calls return nil).
    @discardableResult
    func reap() -> Int32? {
        guard !reaped.exchange(true, ordering: .acquiringAndReleasing) else { return nil }
        close(requests)
        close(responses)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return nil }
        }
        scratch?.remove()
        return status
    }

    /// Closes stdin so the child leaves its loop, then reaps it; kills it if it does not exit promptly.
    func retire() {
        guard !reaped.load(ordering: .acquiring) else { return }
        close(requests)
        var status: Int32 = 0
        for _ in 0..<200 {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno != EINTR) {
                reaped.store(true, ordering: .releasing)
                close(responses)
                scratch?.remove()
                return
            }
            usleep(10_000)
        }
        _ = Glibc.kill(pid, SIGKILL)
        _ = waitpid(pid, &status, 0)
        reaped.store(true, ordering: .releasing)
        close(responses)
        scratch?.remove()
    }
}

private let spawnLock = NSLock()

/// Names of the signals a dying decoder shows, for error messages.
func signalName(_ signal: Int32) -> String {
    switch signal {
    case SIGSEGV: return "SIGSEGV"
    case SIGBUS: return "SIGBUS"
    case SIGABRT: return "SIGABRT"
    case SIGILL: return "SIGILL"
    case SIGFPE: return "SIGFPE"
    case SIGKILL: return "SIGKILL"
    case SIGTERM: return "SIGTERM"
    case SIGXCPU: return "SIGXCPU"
    case SIGXFSZ: return "SIGXFSZ"
    case SIGTRAP: return "SIGTRAP"
    case SIGPIPE: return "SIGPIPE"
    case SIGSYS: return "SIGSYS"
    default: return "signal \(signal)"
    }
}

/// The out-of-memory kills the kernel reports for this process's memory cgroup, which counts the cgroup and
/// everything below it (helpers live in their worker's cgroup): `oom_kill` in `memory.events` (cgroup v2) or in
/// `memory.oom_control` (v1). Nil where neither can be read.
public enum OOMKills {
    public static func count(cgroupRoot: String = "/sys/fs/cgroup") -> Int? {
        guard let membership = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else { return nil }
        for line in membership.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            let file: String
            if parts[1].split(separator: ",").contains("memory") {
                file = cgroupRoot + "/memory" + parts[2] + "/memory.oom_control"
            } else if parts[0] == "0" && parts[1].isEmpty {
                file = cgroupRoot + parts[2] + "/memory.events"
            } else {
                continue
            }
            guard let events = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            for entry in events.split(separator: "\n") where entry.hasPrefix("oom_kill ") {
                return Int(entry.dropFirst("oom_kill ".count))
            }
        }
        return nil
    }
}
