import ConveyorCore
import Foundation
import Sandbox
import Testing

/// The real `conveyor` binary (scripts/test.sh exports CONVEYOR_BIN); falls back to the debug build.
func conveyorBinary() -> String {
    if let bin = ProcessInfo.processInfo.environment["CONVEYOR_BIN"], !bin.isEmpty { return bin }
    let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return here.appendingPathComponent(".build/debug/conveyor").path
}

func makePool(size: Int = 2, maxJobs: Int = 100, limits: HelperLimits = HelperLimits()) -> HelperPool {
    HelperPool(.init(size: size, maxJobsPerHelper: maxJobs, executable: conveyorBinary(), limits: limits))
}

func selftest(_ pool: HelperPool, _ pairs: [(String, JSONValue)], seconds: Int = 20) async throws -> JSONValue {
    try await pool.run("sandbox.selftest", JSONObject(pairs), deadline: .now + .seconds(seconds))
}

func failure(_ body: () async throws -> JSONValue) async -> JobFailure? {
    do {
        _ = try await body()
        return nil
    } catch {
        return JobFailure(error)
    }
}

@Suite struct HelperPoolTests {
    @Test func answersFromAWarmHelperAndReusesIt() async throws {
        let pool = makePool(size: 1)
        defer { pool.shutdown() }
        let first = try await selftest(pool, [("echo", "héllo")])
        let second = try await selftest(pool, [("echo", 42)])
        #expect(first["echo"] == "héllo")
        #expect(second["echo"] == 42)
        #expect(first["pid"] == second["pid"])
        #expect(first["pid"]?.intValue != Int(getpid()))
        #expect(pool.helpersStarted == 1)
    }

    @Test func helpersInheritNoDescriptorsButTheirPipes() async throws {
        // A pipe made without close-on-exec, as other code in a worker makes them (libraries, Foundation's Process).
        var leaky: [Int32] = [0, 0]
        #expect(pipe(&leaky) == 0)
        defer { close(leaky[0]); close(leaky[1]) }
        var buffer = [CChar](repeating: 0, count: 256)
        let n = readlink("/proc/self/fd/\(leaky[1])", &buffer, 255)
        let target = String(decoding: buffer[0..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        #expect(target.hasPrefix("pipe:["))

        let pool = makePool(size: 1)
        defer { pool.shutdown() }
        let answer = try await selftest(pool, [("descriptors", true)])
        let descriptors = try #require(answer["descriptors"]?.arrayValue).compactMap(\.stringValue)
        #expect(!descriptors.contains(target), "the helper holds the parent's pipe: \(descriptors)")
        // The helper's own runtime opens an epoll, an eventfd, a timerfd and a wake-up pipe; never a socket.
        #expect(descriptors.allSatisfy { !$0.hasPrefix("socket:") }, "\(descriptors)")
    }

    @Test func helpersCannotOpenSocketsOrStartPrograms() async throws {
        let pool = makePool(size: 1)
        defer { pool.shutdown() }
        let answer = try await selftest(pool, [("escape", true)])
        let escape = try #require(answer["escape"]?.objectValue)
        #expect(escape["socket"]?.intValue == Int(EPERM), "\(escape)")
        #expect(escape["socketpair"]?.intValue == Int(EPERM), "\(escape)")
        #expect(escape["exec"]?.intValue == Int(EPERM), "\(escape)")
        // The filter leaves the helper working: it still answers, from the same process.
        let after = try await selftest(pool, [("echo", "filtered")])
        #expect(after["echo"] == "filtered")
        #expect(after["pid"] == answer["pid"])
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["REDIS_URL"] != nil, "scripts/test.sh exports REDIS_URL"))
    func helpersInheritNoSecretsFromTheWorker() async throws {
        // The test process stands for a worker: scripts/test.sh gives it REDIS_URL and DATABASE_URL.
        let pool = HelperPool(.init(size: 1, maxJobsPerHelper: 10, executable: conveyorBinary(),
                                    environment: ["VIPS_CONCURRENCY": "1", "EXTRA_FOR_HELPERS": "x"]))
        defer { pool.shutdown() }
        let names = try #require(try await selftest(pool, [("environment", true)])["environment"]?.arrayValue).compactMap(\.stringValue)
        for secret in ["REDIS_URL", "DATABASE_URL"] {
            #expect(!names.contains(secret), "the helper sees \(secret): \(names)")
        }
        // What the libraries need, and what the pool passes on purpose, still arrive.
        #expect(names.contains("PATH"))
        #expect(names.contains("VIPS_CONCURRENCY"))
        #expect(names.contains("MALLOC_ARENA_MAX"))
        #expect(names.contains("EXTRA_FOR_HELPERS"))
    }

    @Test(.enabled(if: HelperServer.availableLandlockABI > 0, "this kernel has no Landlock (helpers then run unconfined, and say so)"))
    func landlockConfinesTheFilesystemToTheMediaRoot() async throws {
        // Under /var/tmp: neither the temporary directory nor a system directory, so only a rule opens it.
        let base = "/var/tmp/conveyor-landlock-\(UUID().uuidString)"
        let media = base + "/media", outside = base + "/outside"
        for directory in [media, outside] { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        defer { try? FileManager.default.removeItem(atPath: base) }
        try Data("secret".utf8).write(to: URL(fileURLWithPath: outside + "/secret.txt"))
        try Data("photo".utf8).write(to: URL(fileURLWithPath: media + "/upload.jpg"))

        func probe(_ limits: HelperLimits) async throws -> JSONObject {
            let pool = makePool(size: 1, limits: limits)
            defer { pool.shutdown() }
            var answers = JSONObject()
            for (name, pairs) in [
                ("read_media", [("read", JSONValue.string(media + "/upload.jpg"))]),
                ("write_media", [("write", JSONValue.string(media + "/thumb.webp"))]),
                ("read_outside", [("read", JSONValue.string(outside + "/secret.txt"))]),
                ("write_outside", [("write", JSONValue.string(outside + "/planted"))]),
                ("read_system", [("read", JSONValue.string("/etc/ld.so.cache"))]),
                ("read_etc", [("read", JSONValue.string("/etc/hostname"))]),
            ] as [(String, [(String, JSONValue)])] {
                let answer = try await selftest(pool, pairs)
                answers[name] = answer["read"] ?? answer["write"] ?? .null
                answers["landlock"] = answer["landlock"]
            }
            return answers
        }
        let confined = try await probe(HelperLimits(writablePaths: [media]))
        try #require(confined["landlock"]?.intValue ?? 0 > 0, "this kernel has no Landlock: \(confined)")
        #expect(confined["read_media"]?.intValue == 0, "\(confined)")
        #expect(confined["write_media"]?.intValue == 0, "\(confined)")
        #expect(confined["read_system"]?.intValue == 0, "\(confined)")
        #expect(confined["read_outside"]?.intValue == Int(EACCES), "\(confined)")
        #expect(confined["write_outside"]?.intValue == Int(EACCES), "\(confined)")
        #expect(!FileManager.default.fileExists(atPath: outside + "/planted"))
        // From /etc only what glibc reads: not the host's name, not /etc/shadow.
        if FileManager.default.fileExists(atPath: "/etc/hostname") {
            #expect(confined["read_etc"]?.intValue == Int(EACCES), "\(confined)")
        }
        // The same probe unconfined reaches everything: the EACCES above is Landlock's.
        let open = try await probe(HelperLimits(sandbox: false, writablePaths: [media]))
        #expect(open["landlock"]?.intValue == 0)
        #expect(open["read_outside"]?.intValue == 0, "\(open)")
        #expect(open["write_outside"]?.intValue == 0, "\(open)")
    }

    @Test func aHelperWhoseWorkerDiedEndsItself() async throws {
        // A shell stands for the worker: it starts a helper whose stdin stays open (the sleep holds it) and gives
        // it a job that never ends; then the shell is killed with SIGKILL, as a worker the OOM killer picks.
        let request = #"{"operation":"sandbox.selftest","arguments":{"hang":true}}"#
        let frame = "printf '\\000\\000\\000\\\(String(request.utf8.count, radix: 8))%s' '\(request)'"
        let pidFile = NSTemporaryDirectory() + "conveyor-orphan-\(UUID().uuidString)"
        defer {
            if let feeder = Int32((try? String(contentsOfFile: pidFile + ".feeder", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") { kill(feeder, SIGKILL) }
            for path in [pidFile, pidFile + ".feeder"] { try? FileManager.default.removeItem(atPath: path) }
        }
        // The subshell records its own pid (the inner sh's parent), which the sleep then takes over, so the
        // test can end it too.
        let script = "( sh -c 'echo $PPID' > '\(pidFile).feeder'; \(frame); exec sleep 30 ) "
            + "| '\(conveyorBinary())' helper >/dev/null 2>&1 & echo $! > '\(pidFile)'; exec sleep 25"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()

        func gone(_ pid: Int32) -> Bool {
            let state = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.split(separator: " ").dropFirst(2).first
            return state == nil || state == "Z" || state == "X"
        }
        func within(_ limit: Duration, _ condition: () -> Bool) async throws -> Bool {
            let start = ContinuousClock.now
            while !condition() {
                if ContinuousClock.now - start > limit { return false }
                try await Task.sleep(for: .milliseconds(50))
            }
            return true
        }
        var pid: Int32 = 0
        #expect(try await within(.seconds(20)) {
            pid = Int32((try? String(contentsOfFile: pidFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
            return pid > 0
        })
        defer { if pid > 0 { kill(pid, SIGKILL) } }
        // The helper is watching once its watch thread runs.
        let watching = try await within(.seconds(20)) {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
            return tasks.contains { (try? String(contentsOfFile: "/proc/\(pid)/task/\($0)/comm", encoding: .utf8))?.hasPrefix("parent-watch") == true }
        }
        #expect(watching, "helper \(pid) never started its parent watch")
        kill(process.processIdentifier, SIGKILL)
        // (Not waitUntilExit: Foundation also waits for descriptors the shell's children still hold.)
        #expect(try await within(.seconds(20)) { gone(process.processIdentifier) })
        // Without the watch the helper would live until the sleep ends (30 s); with it, within a second.
        let ended = try await within(.seconds(1)) { gone(pid) }
        #expect(ended, "the orphaned helper \(pid) was still running a second after its worker died")
    }

    @Test func theFilterIsWhatStopsThem() async throws {
        // The same probe with the filter off succeeds, so the EPERMs above come from the filter.
        let pool = makePool(size: 1, limits: HelperLimits(sandbox: false))
        defer { pool.shutdown() }
        let escape = try #require(try await selftest(pool, [("escape", true)])["escape"]?.objectValue)
        #expect(escape["socket"]?.intValue == 0, "\(escape)")
        #expect(escape["socketpair"]?.intValue == 0, "\(escape)")
        #expect(escape["exec"]?.intValue == 0, "\(escape)")
    }

    @Test func sandboxSetting() throws {
        #expect(try HelperLimits.sandbox(environment: [:]))
        #expect(try HelperLimits.sandbox(environment: ["CONVEYOR_HELPER_SANDBOX": "on"]))
        #expect(try !HelperLimits.sandbox(environment: ["CONVEYOR_HELPER_SANDBOX": "off"]))
        #expect(throws: JobFailure.self) { try HelperLimits.sandbox(environment: ["CONVEYOR_HELPER_SANDBOX": "maybe"]) }
        #expect(HelperLimits(sandbox: false).arguments.contains("--no-sandbox"))
        #expect(!HelperLimits().arguments.contains("--no-sandbox"))
    }

    @Test func crashCostsOnlyThatJob() async throws {
        let pool = makePool(size: 2)
        defer { pool.shutdown() }
        let before = try await selftest(pool, [])
        async let crashed = failure { try await selftest(pool, [("crash", true)]) }
        async let others = withThrowingTaskGroup(of: JSONValue.self) { group in
            for i in 0..<6 { group.addTask { try await selftest(pool, [("echo", JSONValue(i))]) } }
            var results: [JSONValue] = []
            for try await r in group { results.append(r) }
            return results
        }
        let crash = await crashed
        let results = try await others
        #expect(crash?.errorClass == "HelperCrashed")
        #expect(crash?.message.contains("SIGSEGV") == true)
        #expect(crash?.isPermanent == false)
        #expect(results.count == 6)
        let after = try await selftest(pool, [("echo", "still here")])
        #expect(after["echo"] == "still here")
        #expect(before["pid"] != nil)
    }

    @Test func abortIsReportedWithItsSignal() async throws {
        let pool = makePool(size: 1)
        defer { pool.shutdown() }
        let f = await failure { try await selftest(pool, [("abort", true)]) }
        #expect(f?.errorClass == "HelperCrashed")
        #expect(f?.message.contains("SIGABRT") == true)
        let next = try await selftest(pool, [("echo", 1)])
        #expect(next["echo"] == 1)
        #expect(pool.helpersStarted == 2)
    }

    @Test func hangIsKilledAtTheDeadlineWhileOthersRun() async throws {
        let pool = HelperPool(.init(size: 2, executable: conveyorBinary(), killGrace: .milliseconds(100)))
        defer { pool.shutdown() }
        let start = ContinuousClock.now
        async let hung = failure { try await pool.run("sandbox.selftest", JSONObject([("hang", true)]), deadline: .now + .seconds(1)) }
        async let other = selftest(pool, [("echo", "ok")])
        let f = await hung
        let elapsed = ContinuousClock.now - start
        #expect(f?.errorClass == "HelperTimeout")
        #expect(f?.isPermanent == false)
        // The hang is endless: finishing at all proves the kill (the bound allows for a loaded CI machine).
        #expect(elapsed < .seconds(60))
        #expect(try await other["echo"] == "ok")
        #expect(try await selftest(pool, [("echo", 2)])["echo"] == 2)
    }

    @Test func allocationPastTheAddressSpaceLimitFailsOnlyThatJob() async throws {
        let pool = makePool(size: 1, limits: HelperLimits(addressSpaceMB: 768))
        defer { pool.shutdown() }
        let small = try await selftest(pool, [("allocate_mb", 64)])
        #expect(small["allocated_mb"] == 64)
        let f = await failure { try await selftest(pool, [("allocate_mb", 2048)]) }
        #expect(f?.errorClass == "HelperOutOfMemory")
        #expect(f?.isPermanent == false)
        #expect(try await selftest(pool, [("echo", 3)])["echo"] == 3)
    }

    @Test func aSigkillFromOutsideIsACrashNotOutOfMemory() async throws {
        let pool = makePool(size: 1)
        defer { pool.shutdown() }
        let pid = try #require(try await selftest(pool, [])["pid"]?.intValue)
        let oomBefore = OOMKills.count()
        async let hung = failure { try await selftest(pool, [("hang", true)], seconds: 60) }
        // The helper is inside the request once the thread serving it sleeps in the hang (clock_nanosleep or
        // nanosleep; the parent watch sleeps too, and is told apart by its name).
        func inHang() -> Bool {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
            return tasks.contains { task in
                let base = "/proc/\(pid)/task/\(task)/"
                guard (try? String(contentsOfFile: base + "comm", encoding: .utf8))?.hasPrefix("parent-watch") == false else { return false }
                let call = (try? String(contentsOfFile: base + "syscall", encoding: .utf8))?.split(separator: " ").first
                return call == "230" || call == "35"
            }
        }
        var sleeping = false
        for _ in 0..<1000 where !sleeping {
            sleeping = inHang()
            if !sleeping { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(sleeping, "helper \(pid) never reached the hang")
        kill(pid_t(pid), SIGKILL)
        let f = await hung
        if oomBefore == nil || OOMKills.count() == oomBefore {
            #expect(f?.errorClass == "HelperCrashed", "\(String(describing: f))")
            #expect(f?.message.contains("SIGKILL") == true)
        }
        #expect(try await selftest(pool, [("echo", 4)])["echo"] == 4)
    }

    @Test func cpuLimitKillsASpinningHelper() async throws {
        let pool = makePool(size: 1, limits: HelperLimits(cpuSecondsPerJob: 1))
        defer { pool.shutdown() }
        let f = await failure { try await selftest(pool, [("spin", true)], seconds: 30) }
        #expect(f?.errorClass == "HelperCPULimit")
        #expect(f?.message.contains("SIGXCPU") == true)
    }

    @Test func helpersAreRecycledAfterMaxJobs() async throws {
        let pool = makePool(size: 1, maxJobs: 2)
        defer { pool.shutdown() }
        var pids: [Int] = []
        for _ in 0..<4 { pids.append(try await selftest(pool, [])["pid"]?.intValue ?? -1) }
        #expect(pids[0] == pids[1])
        #expect(pids[2] == pids[3])
        #expect(pids[1] != pids[2])
        #expect(pool.helpersStarted == 2)
    }

    @Test func operationErrorsKeepTheirClassAndPermanence() async throws {
        let pool = makePool(size: 1)
        defer { pool.shutdown() }
        let f = await failure { try await selftest(pool, [("fail", "ImageTooLarge"), ("permanent", true)]) }
        #expect(f == JobFailure.permanent("ImageTooLarge", "sandbox.selftest failed on request"))
        let unknown = await failure { try await pool.run("no.such.op", JSONObject(), deadline: .now + .seconds(10)) }
        #expect(unknown?.errorClass == "UnknownHelperOperation")
        #expect(unknown?.isPermanent == true)
        // The helper survived both errors.
        #expect(pool.helpersStarted == 1)
    }

    /// `conveyor helper` serves every family's operations, handed to it as one value.
    @Test func theHelperServesEveryFamilysOperations() async throws {
        let pool = makePool(size: 1)
        defer { pool.shutdown() }
        let unknown = await failure { try await pool.run("no.such.op", JSONObject(), deadline: .now + .seconds(10)) }
        #expect(unknown?.message.hasSuffix("known: audio.transcode, audio.waveform, image.strip_metadata, image.thumbnail, sandbox.selftest, video.probe, video.transcode") == true,
                "\(String(describing: unknown))")
    }

    /// An in-process pool runs only the operations it was given, as a helper does.
    @Test func inProcessPoolsRunTheOperationsTheyAreGiven() async throws {
        let echo = HelperOperation<JSONObject, JSONValue>("test.echo") { arguments, _ in .object(arguments) }
        let operations = HelperOperations().adding(echo)
        #expect(operations.names == ["sandbox.selftest", "test.echo"])
        #expect(HelperOperations().merging(operations).names == operations.names)
        let given = HelperPool(.init(size: 1, inProcess: true), operations: operations)
        #expect(try await given.run(echo, JSONObject([("a", 1)]), deadline: .now + .seconds(5)) == ["a": 1])
        let bare = HelperPool(.init(size: 1, inProcess: true))
        let missing = await failure { try await bare.run(echo, JSONObject(), deadline: .now + .seconds(5)) }
        #expect(missing?.errorClass == "UnknownHelperOperation")
        #expect(missing?.isPermanent == true)
    }

    @Test func inProcessModeRunsTheSameOperations() async throws {
        let pool = HelperPool(.init(size: 1, inProcess: true))
        let result = try await pool.run("sandbox.selftest", JSONObject([("echo", "x")]), deadline: .now + .seconds(5))
        #expect(result["pid"]?.intValue == Int(getpid()))
        #expect(result["echo"] == "x")
    }

    @Test func operationsSeeTheirRequestsDeadline() async throws {
        let deadline = HelperOperation<JSONObject, JSONValue>("test.deadline") { _, context in
            guard let deadline = context.deadline else { return .null }
            return JSONValue(Int((deadline - .now).components.seconds))
        }
        let pool = HelperPool(.init(size: 2, inProcess: true), operations: HelperOperations().adding(deadline))
        async let a = pool.run("test.deadline", JSONObject(), deadline: .now + .seconds(100))
        async let b = pool.run("test.deadline", JSONObject(), deadline: .now + .seconds(10))
        let (left100, left10) = try await (a, b)
        #expect((90...100).contains(left100.intValue ?? -1))
        #expect((1...10).contains(left10.intValue ?? -1))
    }
}
