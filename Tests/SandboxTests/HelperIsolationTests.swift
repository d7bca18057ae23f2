import ConveyorCore
import Foundation
import Sandbox
import Testing

/// A helper that a hostile file has taken over must not reach its worker: not its secrets through /proc, not its
/// life through signals, not the files of other helpers and jobs in TMPDIR. Each test asks the real `conveyor
/// helper`, started by a real pool, to try (`sandbox.selftest`), and checks which layer refused.
@Suite struct HelperIsolationTests {
    /// A media root for the pool, outside TMPDIR (`/var/tmp`), removed at the end.
    final class Root {
        let path = "/var/tmp/conveyor-isolation-\(UUID().uuidString)"
        init() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    static let landlock = HelperServer.availableLandlockABI
    static var temporary: String { ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp" }

    func probeParent(_ limits: HelperLimits) async throws -> (answer: JSONValue, parent: JSONObject) {
        let pool = makePool(size: 1, limits: limits)
        defer { pool.shutdown() }
        let answer = try await selftest(pool, [("parent", true)])
        let parent = try #require(answer["parent"]?.objectValue)
        #expect(parent["pid"]?.intValue == Int(getpid()), "the helper's parent is not this process: \(parent)")
        return (answer, parent)
    }

    @Test func aPoolMakesItsProcessNonDumpable() {
        let pool = makePool(size: 1)
        defer { pool.shutdown() }
        #expect(!ProcessHardening.isDumpable)
    }

    /// A dumpable process of the test's user, standing for anything else the worker's user runs (another
    /// helper, a sidecar): only Landlock keeps a helper out of its /proc files. It holds no capabilities (setpriv
    /// empties them when the test runs as root), so a helper's lack of CAP_SYS_PTRACE alone does not refuse it.
    final class Bystander {
        let process = Process()
        init() throws {
            if getuid() == 0 {
                process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
                process.arguments = ["--inh-caps=-all", "--bounding-set=-all", "/bin/sleep", "60"]
            } else {
                process.executableURL = URL(fileURLWithPath: "/bin/sleep")
                process.arguments = ["60"]
            }
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }
        var environ: String { "/proc/\(process.processIdentifier)/environ" }
        deinit {
            // SIGKILL: the test process may ignore SIGTERM, and its children inherit that.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    @Test(.enabled(if: landlock > 0, "this kernel has no Landlock"))
    func landlockKeepsHelpersOutOfOtherProcesses() async throws {
        let root = try Root()
        let bystander = try Bystander()
        let (answer, parent) = try await probeParent(HelperLimits(writablePaths: [root.path]))
        #expect(answer["landlock"]?.intValue == Self.landlock, "\(answer)")
        #expect(parent["environ"]?.intValue == Int(EACCES), "\(parent)")
        #expect(parent["self_status"]?.intValue == 0, "\(parent)")
        #expect(answer["dumpable"]?.intValue == 0, "\(answer)")
        func read(_ limits: HelperLimits) async throws -> Int? {
            let pool = makePool(size: 1, limits: limits)
            defer { pool.shutdown() }
            return try await selftest(pool, [("read", .string(bystander.environ))])["read"]?.intValue
        }
        // The bystander is dumpable and of the same user: Landlock's ptrace scoping is what refuses it...
        #expect(try await read(HelperLimits(writablePaths: [root.path])) == Int(EACCES))
        // ...for without Landlock the same helper (non-dumpable, file capabilities only) reads it.
        #expect(try await read(HelperLimits(writablePaths: [root.path], maximumLandlockABI: 0)) == 0)
    }

    @Test func withoutLandlockTheWorkersEnvironIsStillRefused() async throws {
        // An older kernel (or a container that refuses Landlock): the worker being non-dumpable and the helper
        // having no CAP_SYS_PTRACE are what refuse it.
        let (answer, parent) = try await probeParent(HelperLimits(maximumLandlockABI: 0))
        #expect(answer["landlock"]?.intValue == 0, "\(answer)")
        #expect(parent["environ"]?.intValue == Int(EACCES), "\(parent)")
        let capabilities = UInt64(answer["capabilities"]?.stringValue ?? "", radix: 16)
        let ptrace: UInt64 = 1 << 19, kill: UInt64 = 1 << 5, admin: UInt64 = 1 << 21
        #expect(capabilities.map { $0 & (ptrace | kill | admin) == 0 } == true, "\(answer)")
        #expect(capabilities.map { $0 & ~UInt64(0b1111) == 0 } == true, "only file capabilities are kept: \(answer)")
        #expect(answer["dumpable"]?.intValue == 0, "\(answer)")
    }

    @Test(.enabled(if: getuid() == 0, "only a root helper keeps CAP_SYS_PTRACE when unsandboxed"))
    func unsandboxedARootHelperReadsTheEnviron() async throws {
        // The control: with the sandbox off the same probe reads the (non-dumpable) worker's environ and signals
        // it, so the refusals above are the sandbox's.
        let (answer, parent) = try await probeParent(HelperLimits(sandbox: false))
        #expect(answer["signals"] == "none")
        #expect(parent["environ"]?.intValue == 0, "\(parent)")
        #expect(parent["kill0"]?.intValue == 0, "\(parent)")
        #expect(parent["setown"]?.intValue == 0, "\(parent)")
        #expect(parent["prlimit"]?.intValue == 0, "\(parent)")
    }

    @Test func noHelperSetsItsWorkersLimits() async throws {
        // prlimit needs only the same user: a helper could set its worker's RLIMIT_CPU (SIGXCPU ends it).
        // Landlock does not cover it; the filter does, whatever the kernel.
        let root = try Root()
        for abi in [nil, 5, 0] as [Int?] {
            let (_, parent) = try await probeParent(HelperLimits(writablePaths: [root.path], maximumLandlockABI: abi))
            #expect(parent["prlimit"]?.intValue == Int(EPERM), "ABI \(String(describing: abi)): \(parent)")
            #expect(parent["self_prlimit"]?.intValue == 0, "\(parent)")
        }
    }

    @Test(.enabled(if: landlock >= 6, "this kernel's Landlock cannot scope signals (ABI < 6)"))
    func landlockRefusesSignalsToTheWorker() async throws {
        let root = try Root()
        let (answer, parent) = try await probeParent(HelperLimits(writablePaths: [root.path]))
        #expect(answer["signals"] == "landlock", "\(answer)")
        for attempt in ["kill0", "sigcont", "tgkill", "pidfd"] {
            #expect(parent[attempt]?.intValue == Int(EPERM), "\(attempt): \(parent)")
        }
        for own in ["self_kill0", "self_tgkill", "self_pidfd"] {
            #expect(parent[own]?.intValue == 0, "the helper can no longer signal itself: \(own): \(parent)")
        }
    }

    @Test func seccompRefusesSignalsToTheWorkerWithoutLandlockScoping() async throws {
        let root = try Root()
        // ABI 5 stands for a kernel with Landlock but no signal scoping; 0 for one without Landlock.
        for abi in [5, 0] {
            let (answer, parent) = try await probeParent(HelperLimits(writablePaths: [root.path], maximumLandlockABI: abi))
            #expect(answer["signals"] == "seccomp", "\(answer)")
            for attempt in ["kill0", "sigcont", "tgkill", "pidfd"] {
                #expect(parent[attempt]?.intValue == Int(EPERM), "ABI \(abi) \(attempt): \(parent)")
            }
            #expect(parent["setown"]?.intValue == Int(EPERM), "ABI \(abi) F_SETOWN: \(parent)")
            // The filter compares the target with the helper's own pid: signals to itself still work.
            #expect(parent["self_kill0"]?.intValue == 0, "\(parent)")
            #expect(parent["self_tgkill"]?.intValue == 0, "\(parent)")
            // pidfd_send_signal is refused whatever its target (the filter cannot see a descriptor's process).
            #expect(parent["self_pidfd"]?.intValue == Int(EPERM), "\(parent)")
        }
    }

    @Test func theWorkerSurvivesItsHelpersAttempts() async throws {
        // SIGCONT and signal 0 are harmless even when delivered; SIGCONT is also what a handler would see.
        let pool = makePool(size: 1)
        defer { pool.shutdown() }
        let first = try await selftest(pool, [("parent", true)])
        #expect(first["parent"]?["sigcont"]?.intValue == Int(EPERM), "\(first)")
        // The worker (this process) and the helper both carry on.
        let next = try await selftest(pool, [("echo", "alive")])
        #expect(next["echo"] == "alive")
        #expect(next["pid"] == first["pid"])
    }

    @Test(.enabled(if: landlock > 0, "this kernel has no Landlock"))
    func aHelperWritesOnlyInItsScratchAndTheMediaRoot() async throws {
        let root = try Root()
        let pool = makePool(size: 1, limits: HelperLimits(writablePaths: [root.path]))
        defer { pool.shutdown() }
        let answer = try await selftest(pool, [])
        let scratch = try #require(answer["tmpdir"]?.stringValue)
        #expect(scratch.hasPrefix(Self.temporary + "/conveyor-helper-"), "\(scratch)")
        let mode = try FileManager.default.attributesOfItem(atPath: scratch)[.posixPermissions] as? Int
        #expect(mode == 0o700)
        let planted = Self.temporary + "/conveyor-planted-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: planted) }
        func write(_ path: String) async throws -> Int? { try await selftest(pool, [("write", .string(path))])["write"]?.intValue }
        #expect(try await write(scratch + "/decoder.tmp") == 0)
        #expect(try await write(root.path + "/thumb.webp") == 0)
        #expect(try await write(planted) == Int(EACCES), "the helper wrote into the worker's TMPDIR")
        #expect(!FileManager.default.fileExists(atPath: planted))
        // Another helper's scratch is TMPDIR too: made by a second pool, refused to this one.
        let other = makePool(size: 1, limits: HelperLimits(writablePaths: [root.path]))
        defer { other.shutdown() }
        let otherScratch = try #require(try await selftest(other, [])["tmpdir"]?.stringValue)
        #expect(otherScratch != scratch)
        #expect(try await write(otherScratch + "/stolen") == Int(EACCES))
        #expect(try await selftest(pool, [("read", .string(otherScratch))])["read"]?.intValue == Int(EACCES))
    }

    @Test func theScratchIsRemovedWhenItsHelperEnds() async throws {
        let root = try Root()
        let outside = root.path + "/kept.txt"
        try Data("kept".utf8).write(to: URL(fileURLWithPath: outside))
        func gone(_ path: String) async throws -> Bool {
            let deadline = ContinuousClock.now + .seconds(20)
            while FileManager.default.fileExists(atPath: path) {
                if ContinuousClock.now > deadline { return false }
                try await Task.sleep(for: .milliseconds(20))
            }
            return true
        }
        // Retired after its jobs (maxJobs 3), with a file and a link to a file outside left in its scratch.
        let pool = makePool(size: 1, maxJobs: 3, limits: HelperLimits(writablePaths: [root.path]))
        defer { pool.shutdown() }
        let first = try await selftest(pool, [])
        let scratch = try #require(first["tmpdir"]?.stringValue)
        try FileManager.default.createSymbolicLink(atPath: scratch + "/link", withDestinationPath: outside)
        #expect(try await selftest(pool, [("write", .string(scratch + "/left-behind"))])["write"]?.intValue == 0)
        #expect(FileManager.default.fileExists(atPath: scratch + "/left-behind"))
        #expect(try await selftest(pool, [])["tmpdir"]?.stringValue == scratch)
        #expect(try await gone(scratch), "the retired helper's scratch \(scratch) is still there")
        #expect(FileManager.default.fileExists(atPath: outside), "removing the scratch followed its link")
        // Crashed.
        let crashing = try #require(try await selftest(pool, [])["tmpdir"]?.stringValue)
        #expect(crashing != scratch)
        #expect(FileManager.default.fileExists(atPath: crashing))
        let crash = await failure { try await selftest(pool, [("crash", true)]) }
        #expect(crash?.errorClass == "HelperCrashed")
        #expect(try await gone(crashing))
        // Idle at shutdown.
        let idle = try #require(try await selftest(pool, [])["tmpdir"]?.stringValue)
        pool.shutdown()
        #expect(try await gone(idle))
    }

    @Test func aNewPoolRemovesTheScratchOfAWorkerThatDied() async throws {
        // A worker killed with SIGKILL leaves its helpers' folders; the pid of an exited process stands for it.
        let exited = Process()
        exited.executableURL = URL(fileURLWithPath: "/bin/true")
        try exited.run()
        exited.waitUntilExit()
        let dead = exited.processIdentifier
        let abandoned = Self.temporary + "/conveyor-helper-\(dead)-\(UUID().uuidString.prefix(6))"
        let live = Self.temporary + "/conveyor-helper-\(getppid())-\(UUID().uuidString.prefix(6))"
        for folder in [abandoned, live] {
            try FileManager.default.createDirectory(atPath: folder + "/sub", withIntermediateDirectories: true)
        }
        defer { for folder in [abandoned, live] { try? FileManager.default.removeItem(atPath: folder) } }
        let pool = makePool(size: 1)
        defer { pool.shutdown() }
        #expect(!FileManager.default.fileExists(atPath: abandoned))
        // A running process's folders stay (here this test's parent stands for another worker).
        #expect(FileManager.default.fileExists(atPath: live + "/sub"))
    }

    @Test func everyThreadOfTheHelperIsConfined() async throws {
        // Landlock and capabilities act per thread: the runtime's threads that existed before the helper served
        // anything (the main thread, Dispatch's workers, which a decoder exploit can hand work to) must be
        // confined as the serving thread is ("main" is Dispatch's main queue, on whichever thread runs it).
        let root = try Root()
        let pool = makePool(size: 1, limits: HelperLimits(writablePaths: [root.path]))
        defer { pool.shutdown() }
        let bystander = try Bystander()
        let answer = try await selftest(pool, [("threads", .string(bystander.environ))])
        let threads = try #require(answer["threads"]?.objectValue)
        let serving = try #require(threads["serving"]?.objectValue)
        let dispatch = try #require(threads["dispatch"]?.objectValue, "no Dispatch thread ran the probe: \(threads)")
        #expect(dispatch["tid"] != serving["tid"], "\(threads)")
        var probed = [("serving", serving), ("dispatch", dispatch)]
        if let main = threads["main"]?.objectValue { probed.append(("main", main)) }
        for (name, thread) in probed {
            if Self.landlock > 0 {
                #expect(thread["path"]?.intValue == Int(EACCES), "\(name): \(thread)")
            }
            #expect(thread["environ"]?.intValue == Int(EACCES), "\(name): \(thread)")
            #expect(thread["kill0"]?.intValue == Int(EPERM), "\(name): \(thread)")
            let capabilities = UInt64(thread["capabilities"]?.stringValue ?? "", radix: 16)
            #expect(capabilities.map { $0 & ~UInt64(0b1111) == 0 } == true, "\(name): \(thread)")
        }
    }

    @Test(.enabled(if: landlock > 0, "this kernel has no Landlock"))
    func theSandboxReadsTheHelpersOptionsAsTheCommandDoes() async throws {
        // The sandbox is set up from argv before Swift parses it: both must read `--writable=path` and
        // `--writable path` alike (a mismatch makes the helper refuse to start).
        let first = try Root(), second = try Root()
        let pool = HelperPool(.init(
            size: 1, executable: conveyorBinary(), arguments: ["helper", "--writable=\(first.path)", "--writable", second.path]))
        defer { pool.shutdown() }
        for root in [first, second] {
            let answer = try await selftest(pool, [("write", .string(root.path + "/out"))])
            #expect(answer["write"]?.intValue == 0, "\(root.path): \(answer)")
            #expect(answer["landlock"]?.intValue == Self.landlock)
        }
        #expect(pool.helpersStarted == 1)
    }

    @Test func outOfRangeLimitsAreRefusedNotTrapped() async throws {
        // Through the real binary: a clean usage error (64) naming the option, never a trap (132/133).
        for (option, value) in [
            ("--cpu-seconds", "9223372036854775807"), ("--cpu-seconds", "0"), ("--cpu-seconds", "-9223372036854775808"),
            ("--address-space-mb", "-1"), ("--address-space-mb", "17592186044416"), ("--address-space-mb", "1e400"),
            ("--open-files", "0"), ("--open-files", "9223372036854775807"), ("--landlock-abi", "-1"),
        ] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: conveyorBinary())
            process.arguments = ["helper", option, value]
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationReason == .exit && process.terminationStatus == 64, "\(option) \(value): \(process.terminationStatus) \(message)")
        }
        // Through a pool: the job fails cleanly and says which limit, and no helper starts.
        let pool = makePool(size: 1, limits: HelperLimits(cpuSecondsPerJob: Int.max))
        defer { pool.shutdown() }
        let refused = await failure { try await selftest(pool, []) }
        #expect(refused?.errorClass == "HelperSpawnFailed", "\(String(describing: refused))")
        #expect(refused?.message.contains("CPU seconds per job 9223372036854775807") == true, "\(String(describing: refused))")
        #expect(pool.helpersStarted == 0)
    }

    @Test func farDeadlinesAndHugeRequestsAreHandledNotTrapped() async throws {
        let pool = makePool(size: 1)
        defer { pool.shutdown() }
        // A deadline so far away that its milliseconds overflow Int: counted as Int.max, not a trap in the worker.
        for far in [Duration.seconds(Int64.max / 2), .seconds(Int64(Int.max / 1000) + 1)] {
            let answer = try await pool.run("sandbox.selftest", JSONObject([("echo", "far")]), deadline: .now + far)
            #expect(answer["echo"] == "far")
        }
        // Past the deadline already: the helper still answers or the job times out, never a crash.
        let late = await failure { try await pool.run("sandbox.selftest", JSONObject([("echo", 1)]), deadline: .now - .seconds(3600)) }
        #expect(late == nil || late?.errorClass == "HelperTimeout", "\(String(describing: late))")
        // A request larger than a frame is refused before any helper sees it, and the pool carries on.
        let started = pool.helpersStarted
        let huge = String(repeating: "x", count: (64 << 20) + 1)
        let refused = await failure { try await selftest(pool, [("echo", .string(huge))]) }
        #expect(refused?.errorClass == "HelperProtocolError", "\(String(describing: refused?.errorClass))")
        #expect(refused?.isPermanent == true)
        #expect(try await selftest(pool, [("echo", "after")])["echo"] == "after")
        #expect(pool.helpersStarted <= started + 1)
    }
}
