import ConveyorCore
internal import CShims
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a process that starts helpers does to itself so that they cannot reach its secrets.
public enum ProcessHardening {
    /// Makes this process non-dumpable (`PR_SET_DUMPABLE` 0): its `/proc/<pid>/environ`, `mem`, `maps` and `fd`
    /// then belong to root and open only for a process with CAP_SYS_PTRACE, which helpers drop, so a decoder a
    /// hostile file exploits cannot copy the worker's DATABASE_URL, REDIS_URL or API keys. The cost: the kernel
    /// writes no core dump of this process (where `fs.suid_dumpable` is 0), and a debugger or profiler attaches
    /// to it only as root. Every `HelperPool` that starts helper processes calls this.
    public static func forbidInspection() {
        let e = conveyor_set_dumpable(0)
        if e != 0 { logError("conveyor: cannot make this process non-dumpable (PR_SET_DUMPABLE): \(String(cString: strerror(e)))") }
    }

    /// Whether this process is dumpable (`PR_GET_DUMPABLE`).
    public static var isDumpable: Bool { conveyor_dumpable() != 0 }
}

/// A helper's private scratch folder: made by its pool (mode 0700, below the worker's `TMPDIR`) before the helper
/// starts, its `TMPDIR` and, with the sandbox, the only place it may write besides the media root; removed when
/// the helper has ended.
struct HelperScratch: Sendable {
    let path: String

    /// Makes `<parent>/conveyor-helper-<worker pid>-XXXXXX`.
    init(parent: String) throws(JobFailure) {
        var template = Array("\(parent)/conveyor-helper-\(getpid())-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else {
            let e = errno
            throw .transient(
                .helperSpawnFailed,
                "could not make a helper's scratch folder in \(parent): \(String(cString: strerror(e))); check TMPDIR")
        }
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Removes the scratch folders in `parent` whose worker is gone (a worker killed with SIGKILL cannot remove its
    /// helpers' folders: the next pool made in the same TMPDIR does).
    static func removeAbandoned(in parent: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: parent) else { return }
        for name in names where name.hasPrefix("conveyor-helper-") {
            let fields = name.dropFirst("conveyor-helper-".count).split(separator: "-", maxSplits: 1)
            guard fields.count == 2, let pid = pid_t(fields[0]), pid > 0, pid != getpid() else { continue }
            // EPERM: alive, under another user.
            guard kill(pid, 0) != 0, errno == ESRCH else { continue }
            HelperScratch(existing: parent + "/" + name).remove()
        }
    }

    private init(existing path: String) { self.path = path }

    /// Removes the folder and what the helper left in it (symbolic links are removed, not followed).
    func remove() {
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            if FileManager.default.fileExists(atPath: path) {
                logError("conveyor: could not remove the helper scratch folder \(path): \(error)")
            }
        }
    }
}
