import Foundation
import Redis
import Testing

@testable import BullMQQueue
import ConveyorCore

/// `conveyor worker --bullmq-queues`, the real binary, against jobs the real BullMQ queued.
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["CONVEYOR_BIN"] != nil, "needs CONVEYOR_BIN"))
struct BullMQWorkerProcessTests {
    static func launch(_ peer: BullMQPeer, queues: String, extra: [String: String] = [:], arguments: [String] = []) throws -> Process {
        try launchLogged(peer, queues: queues, extra: extra, arguments: arguments).0
    }

    static func launchLogged(_ peer: BullMQPeer, queues: String, extra: [String: String] = [:], arguments: [String] = []) throws -> (Process, URL) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ProcessInfo.processInfo.environment["CONVEYOR_BIN"]!)
        process.arguments = ["worker", "--bullmq-queues", queues, "--concurrency", "2"] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["CONVEYOR_BULLMQ_PREFIX"] = peer.prefix
        environment["CONVEYOR_BULLMQ_LOCK_DURATION"] = "2s"
        environment["CONVEYOR_BULLMQ_STALLED_INTERVAL"] = "1s"
        environment["CONVEYOR_LOG_LEVEL"] = "warning"
        environment["CONVEYOR_QUEUES"] = nil
        environment["CONVEYOR_METRICS_ADDR"] = nil
        for (k, v) in extra { environment[k] = v }
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("bullmq-worker-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        return (process, log)
    }

    /// `conveyor bullmq stats`: the jobs a BullMQ producer queued, by state, as BullMQ's keys hold them; an unknown
    /// queue reads zeros, a malformed name and no queue at all are usage errors.
    @Test func bullmqStatsCountsTheQueuesJobsByState() async throws {
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        _ = try peer.add("st", [
            ["name": "noop", "data": [:]], ["name": "noop", "data": [:]], ["name": "noop", "data": [:], "opts": ["priority": 3]],
            ["name": "noop", "data": [:], "opts": ["delay": 3_600_000]],
        ])
        func stats(_ arguments: [String], queues: String? = nil) throws -> (Int32, String, String) {
            try Self.bullmq(peer, ["stats"] + arguments, queues: queues)
        }
        let (code, text, _) = try stats(["--json"], queues: "st,nothing")
        #expect(code == 0)
        let counts = try JSONValue(parsing: Array(text.utf8))
        #expect(counts["st"] == ["waiting": 2, "prioritized": 1, "delayed": 1, "delayed_due": 0, "active": 0, "paused": 0, "completed": 0, "failed": 0, "stalled": 0, "ready": 3])
        #expect(counts["nothing"]?["ready"] == 0)
        let (tableCode, table, _) = try stats(["st"])
        #expect(tableCode == 0 && table.contains("PRIORITIZED") && table.split(separator: "\n").last?.hasPrefix("st ") == true, "\(table)")
        #expect(try stats([]).0 == 64, "no queue named or configured")
        #expect(try stats(["a:b"]).0 == 64, "a BullMQ queue name cannot hold a colon")
    }

    /// `conveyor bullmq <arguments>` with the peer's prefix (and `CONVEYOR_BULLMQ_QUEUES`, or none): exit status,
    /// standard output, standard error.
    static func bullmq(_ peer: BullMQPeer, _ arguments: [String], queues: String? = nil) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ProcessInfo.processInfo.environment["CONVEYOR_BIN"]!)
        process.arguments = ["bullmq"] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["CONVEYOR_BULLMQ_PREFIX"] = peer.prefix
        environment["CONVEYOR_BULLMQ_QUEUES"] = queues
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let error = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text, error)
    }

    /// Failed BullMQ jobs listed and retried from the CLI with BullMQ's own reprocessJob: one by id (a second retry
    /// of it, and an unknown id, are reported and exit 1), the rest with --all; `--reset-attempts` clears the count;
    /// an active job without a lock is shown stalled.
    @Test func failedJobsAreListedAndRetriedFromTheCLI() async throws {
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        let ids = try peer.add("fq", (1...3).map { i -> JSONValue in ["name": "no.such.class", "data": ["n": .init(i)], "opts": ["attempts": 1]] })
        let (worker, log) = try Self.launchLogged(peer, queues: "fq")
        defer {
            if worker.isRunning { kill(worker.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: log)
        }
        try await eventually(30, "three failed") { try await peer.command("ZCARD", "\(peer.prefix):fq:failed").int == 3 }
        worker.terminate()
        worker.waitUntilExit()

        let (code, text, _) = try Self.bullmq(peer, ["failed", "fq", "--json"])
        #expect(code == 0)
        let listed = try JSONValue(parsing: Array(text.utf8))
        #expect(listed["total"] == 3)
        let jobs = listed["jobs"]?.arrayValue ?? []
        #expect(Set(jobs.compactMap { $0["id"]?.stringValue }) == Set(ids))
        #expect(jobs.allSatisfy { $0["name"] == "no.such.class" && $0["attemptsMade"] == 1 && $0["attempts"] == 1 })
        #expect(jobs.allSatisfy { $0["failedReason"]?.stringValue?.contains("no handler for class no.such.class") == true }, "\(text)")
        let table = try Self.bullmq(peer, ["failed", "fq"])
        #expect(table.0 == 0 && table.1.hasPrefix("3 failed in fq"), "\(table.1)")

        let one = try Self.bullmq(peer, ["retry", "fq", ids[0], "--reset-attempts", "--json"])
        #expect(one.0 == 0, "\(one.2)")
        #expect(try JSONValue(parsing: Array(one.1.utf8))[ids[0]] == "retried")
        #expect(try await peer.command("LRANGE", "\(peer.prefix):fq:wait", 0, -1).array?.compactMap(\.text) == [ids[0]])
        #expect(try await peer.command("HEXISTS", "\(peer.prefix):fq:\(ids[0])", "atm").int == 0, "--reset-attempts clears attemptsMade")
        let events = try await peer.command("XREVRANGE", "\(peer.prefix):fq:events", "+", "-", "COUNT", 1).array?.first?.array?.last?.array?.compactMap(\.text) ?? []
        #expect(events == ["event", "waiting", "jobId", ids[0], "prev", "failed"], "BullMQ's waiting event: \(events)")

        let again = try Self.bullmq(peer, ["retry", "fq", ids[0], "999999"])
        #expect(again.0 == 1)
        #expect(again.1.contains("\(ids[0]): not failed") && again.1.contains("999999: missing"), "\(again.1)")
        #expect(try Self.bullmq(peer, ["retry", "fq", "a:b"]).0 == 64)
        #expect(try Self.bullmq(peer, ["retry", "fq"]).0 == 64, "neither ids nor --all")
        #expect(try Self.bullmq(peer, ["failed", "fq", "--limit", "0"]).0 == 64)

        let all = try Self.bullmq(peer, ["retry", "fq", "--all", "--json"])
        let allCount = try JSONValue(parsing: Array(all.1.utf8))["retried"]
        #expect(all.0 == 0 && allCount == 2, "\(all.1)")
        #expect(try await peer.command("ZCARD", "\(peer.prefix):fq:failed").int == 0)
        #expect(try await peer.command("LLEN", "\(peer.prefix):fq:wait").int == 3)
        #expect(try await peer.command("HGET", "\(peer.prefix):fq:\(ids[1])", "atm").text == "1", "kept without --reset-attempts")

        // A job taken into active without a lock (a worker that died before locking it) is stalled.
        _ = try await peer.command("LMOVE", "\(peer.prefix):fq:wait", "\(peer.prefix):fq:active", "RIGHT", "LEFT")
        let active = try Self.bullmq(peer, ["active", "fq", "--json"])
        let shown = try JSONValue(parsing: Array(active.1.utf8))
        #expect(shown["total"] == 1 && shown["jobs"]?[0]?["stalled"] == true, "\(active.1)")
    }

    /// The worker's `limiter` (`CONVEYOR_BULLMQ_LIMITER=5/1s`) as BullMQ's: fixed windows of the queue's limiter key,
    /// five starts each, the next window's jobs taken as soon as it opens; bad values exit 64.
    @Test func theWorkersLimiterStartsAtMostMaxJobsPerWindow() async throws {
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        let ids = try peer.add("lim", (1...15).map { _ -> JSONValue in ["name": "noop", "data": [:]] })
        let (worker, log) = try Self.launchLogged(peer, queues: "lim", extra: ["CONVEYOR_BULLMQ_LIMITER": "5/1s"], arguments: ["--concurrency", "10"])
        defer {
            if worker.isRunning { kill(worker.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: log)
        }
        try await eventually(30, "all completed") { try await peer.command("ZCARD", "\(peer.prefix):lim:completed").int == 15 }
        worker.terminate()
        worker.waitUntilExit()
        var started: [Int] = []
        for id in ids { started.append(try #require(try await peer.command("HGET", "\(peer.prefix):lim:\(id)", "processedOn").int)) }
        started.sort()
        // Window k opens with job 5k: five jobs in each, the sixth not before the window's second ended.
        for k in 1..<3 { #expect(started[5 * k] - started[5 * (k - 1)] >= 990, "window \(k): \(started)") }
        // And no time lost between windows: three windows of a second take about two seconds from first to last start.
        #expect(started[14] - started[0] < 2800, "\(started)")
        for bad in ["0/1s", "5/0s", "5/inf", "1e308/1s", "9223372036854775807/1s", "5/1", "5"] {
            let (refused, refusedLog) = try Self.launchLogged(peer, queues: "lim", extra: ["CONVEYOR_BULLMQ_LIMITER": bad])
            defer { try? FileManager.default.removeItem(at: refusedLog) }
            let deadline = Date().addingTimeInterval(20)
            while refused.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
            if refused.isRunning { kill(refused.processIdentifier, SIGKILL) }
            refused.waitUntilExit()
            #expect(refused.terminationStatus == 64, "\(bad): exit \(refused.terminationStatus)")
            #expect(((try? String(contentsOf: refusedLog, encoding: .utf8)) ?? "").contains("CONVEYOR_BULLMQ_LIMITER"), "\(bad)")
        }
    }

    /// A BullMQ job's outcome is in the worker's Redis journal from the instant its script ran: a worker that cannot
    /// reach PostgreSQL and is then killed with `kill -9` loses no row; another worker's reaper orphans its journal
    /// and that worker's result store writes the rows, one per job, then empties the journal.
    @Test func outcomesSurviveAKillBeforeTheyReachPostgreSQL() async throws {
        guard ProcessInfo.processInfo.environment["DATABASE_URL"] != nil else { return }
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        let namespace = "bj\(peer.prefix)"
        let ids = try peer.add("jq", (1...5).map { i -> JSONValue in ["name": "noop", "data": ["n": .init(i)]] } + [["name": "no.such.class", "data": [:]]])
        let heartbeat = ["CONVEYOR_NAMESPACE": namespace, "CONVEYOR_HEARTBEAT_INTERVAL": "200ms", "CONVEYOR_HEARTBEAT_TTL": "1s"]
        let (blind, blindLog) = try Self.launchLogged(
            peer, queues: "jq", extra: heartbeat.merging(["DATABASE_URL": "postgres://conveyor@127.0.0.1:1/nowhere"]) { a, _ in a })
        defer {
            if blind.isRunning { kill(blind.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: blindLog)
        }
        try await eventually(30, "all finished in BullMQ") {
            let done = try await peer.command("ZCARD", "\(peer.prefix):jq:completed").int ?? 0
            let failed = try await peer.command("ZCARD", "\(peer.prefix):jq:failed").int ?? 0
            return done == 5 && failed == 1
        }
        // The six outcomes wait in the journal, in fields of BullMQ's (`a<n>b`).
        let journals = try await peer.command("KEYS", "\(namespace):conveyor:outcomes:*").array?.compactMap(\.text) ?? []
        let journal = try #require(journals.first, "the worker's journal")
        let fields = try await peer.command("HGETALL", journal).array?.compactMap(\.text) ?? []
        var lines = 0
        for i in stride(from: 0, to: fields.count - 1, by: 2) {
            #expect(fields[i].hasPrefix("a") && fields[i].hasSuffix("b"), "\(fields[i])")
            lines += fields[i + 1].split(separator: "\n").count
        }
        #expect(lines == 6)
        kill(blind.processIdentifier, SIGKILL)
        blind.waitUntilExit()
        let jids = ids.map { "\(peer.prefix):jq:\($0)" }
        let list = jids.map { "'\($0)'" }.joined(separator: ",")
        #expect(try Self.psql("SELECT count(*) FROM conveyor.job_results WHERE jid IN (\(list))") == "0", "nothing reached PostgreSQL")

        let (healer, healerLog) = try Self.launchLogged(peer, queues: "jq", extra: heartbeat)
        defer {
            if healer.isRunning { kill(healer.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: healerLog)
        }
        try await eventually(30, "the rows written from the dead worker's journal") {
            try Self.psql("SELECT count(*) FROM conveyor.job_results WHERE jid IN (\(list))") == "6"
        }
        #expect(try Self.psql("SELECT status, count(*) FROM conveyor.job_results WHERE jid IN (\(list)) GROUP BY status ORDER BY status") == "dead|1\nsucceeded|5")
        try await eventually(20, "the journal emptied") { try await peer.command("EXISTS", journal).int == 0 }
        healer.terminate()
        healer.waitUntilExit()
    }

    /// Media jobs a BullMQ producer queued end as from Sidekiq: `media.ingest` of a video and of a photo through the
    /// sandboxed helpers, their outputs in the media root, `media_uploads` rows naming the BullMQ job, the job's
    /// `returnvalue` the handler's result, and one `job_results` row each. A hostile upload fails with its class.
    @Test func mediaJobsFromABullMQProducerEndAsFromSidekiq() async throws {
        guard ProcessInfo.processInfo.environment["DATABASE_URL"] != nil else { return }
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("bullmq-media-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("uploads"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        func ffmpeg(_ arguments: [String]) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/ffmpeg")
            process.arguments = ["-nostdin", "-v", "error", "-y"] + arguments
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
        }
        try ffmpeg(["-f", "lavfi", "-i", "testsrc=s=320x240:r=25:d=1", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", root.path + "/uploads/v.mp4"])
        try ffmpeg(["-f", "lavfi", "-i", "testsrc=s=640x480", "-frames:v", "1", root.path + "/uploads/p.jpg"])
        try Data("#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n".utf8).write(to: root.appendingPathComponent("uploads/evil.mp4"))
        let tag = UUID().uuidString.prefix(8).lowercased()
        let uploads = ["bv-\(tag)", "bp-\(tag)", "be-\(tag)"]
        let ids = try peer.add("media", [
            ["name": "media.ingest", "data": ["upload_id": .string(uploads[0]), "source": "uploads/v.mp4"]],
            ["name": "media.ingest", "data": ["upload_id": .string(uploads[1]), "source": "uploads/p.jpg"]],
            ["name": "media.ingest", "data": ["upload_id": .string(uploads[2]), "source": "uploads/evil.mp4"], "opts": ["attempts": 3]],
        ])
        _ = try Self.runConveyor(["migrate"])
        let (worker, log) = try Self.launchLogged(peer, queues: "media", extra: ["CONVEYOR_MEDIA_ROOT": root.path])
        defer {
            if worker.isRunning { kill(worker.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: log)
        }
        try await eventually(120, "the three finished") {
            let done = try await peer.command("ZCARD", "\(peer.prefix):media:completed").int ?? 0
            let failed = try await peer.command("ZCARD", "\(peer.prefix):media:failed").int ?? 0
            return done == 2 && failed == 1
        }
        worker.terminate()
        worker.waitUntilExit()
        let jids = ids.map { "\(peer.prefix):media:\($0)" }
        func row(_ upload: String) throws -> String {
            try Self.psql(
                "SELECT status || '|' || coalesce(kind, '') || '|' || coalesce(jid, '') || '|' || coalesce(error_class, '') FROM conveyor.media_uploads WHERE upload_id = '\(upload)'")
        }
        #expect(try row(uploads[0]) == "ready|video|\(jids[0])|")
        #expect(try row(uploads[1]) == "ready|image|\(jids[1])|")
        let hostile = try row(uploads[2])
        #expect(hostile.hasPrefix("failed|") && hostile.hasSuffix("|\(jids[2])|MediaPlaylistRefused"), "\(hostile)")
        for (i, jid) in jids.prefix(2).enumerated() {
            let value = try JSONValue(parsing: Array((try await peer.command("HGET", "\(peer.prefix):media:\(ids[i])", "returnvalue").text ?? "").utf8))
            let variants = value["variants"]?.arrayValue ?? []
            #expect(!variants.isEmpty, "\(jid): \(value)")
            for variant in variants {
                let key = try #require(variant["key"]?.stringValue)
                #expect(FileManager.default.fileExists(atPath: root.path + "/" + key), "\(key)")
            }
        }
        #expect(try await peer.command("HGET", "\(peer.prefix):media:\(ids[2])", "atm").text == "1", "a permanent failure spends one attempt of three")
        try await eventually(20, "one outcome row each") {
            try Self.psql("SELECT string_agg(status, ',' ORDER BY jid) FROM conveyor.job_results WHERE jid IN ('\(jids.joined(separator: "','"))')")
                == "succeeded,succeeded,dead"
        }
    }

    /// `conveyor ARGUMENTS` with the test's environment; its exit status.
    static func runConveyor(_ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ProcessInfo.processInfo.environment["CONVEYOR_BIN"]!)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// A queue's own limits (BullMQ's `Queue.setGlobalConcurrency` and `setGlobalRateLimit`, in its `meta` hash) hold
    /// across two Conveyor worker processes of four slots each: one job at a time on one queue, three starts per
    /// second on the other.
    @Test func theQueuesGlobalConcurrencyAndRateLimitHoldAcrossWorkers() async throws {
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        _ = try await peer.command("HSET", "\(peer.prefix):gc:meta", "concurrency", 1)
        _ = try await peer.command("HSET", "\(peer.prefix):gr:meta", "max", 3, "duration", 1000)
        let serial = try peer.add("gc", (1...6).map { _ -> JSONValue in ["name": "sleep", "data": ["ms": 200]] })
        let limited = try peer.add("gr", (1...9).map { _ -> JSONValue in ["name": "noop", "data": [:]] })
        let workers = try (0..<2).map { _ in try Self.launchLogged(peer, queues: "gc,gr", arguments: ["--concurrency", "4"]) }
        defer {
            for (worker, log) in workers {
                if worker.isRunning { kill(worker.processIdentifier, SIGKILL) }
                try? FileManager.default.removeItem(at: log)
            }
        }
        try await eventually(40, "all completed") {
            let a = try await peer.command("ZCARD", "\(peer.prefix):gc:completed").int ?? 0
            let b = try await peer.command("ZCARD", "\(peer.prefix):gr:completed").int ?? 0
            return a == 6 && b == 9
        }
        for (worker, _) in workers {
            worker.terminate()
            worker.waitUntilExit()
        }
        func times(_ queue: String, _ id: String) async throws -> (Int, Int) {
            let v = try await peer.command("HMGET", "\(peer.prefix):\(queue):\(id)", "processedOn", "finishedOn").array ?? []
            return (try #require(v.first?.int), try #require(v.last?.int))
        }
        var runs: [(Int, Int)] = []
        for id in serial { runs.append(try await times("gc", id)) }
        runs.sort { $0.0 < $1.0 }
        var idle = 0
        for (a, b) in zip(runs, runs.dropFirst()) {
            // Each 200 ms run starts when the one before it finished (a few ms of clock between the two scripts).
            #expect(b.0 >= a.1 - 30, "overlapping runs: \(runs)")
            idle += max(0, b.0 - a.1)
        }
        // And as soon as it finished: the finishing worker's marker wakes a waiting one (a waiter that only woke at its
        // one-second timeout would leave about half a second between runs).
        #expect(idle < 1500, "\(idle) ms between runs: \(runs)")
        var starts: [Int] = []
        for id in limited { starts.append(try await times("gr", id).0) }
        starts.sort()
        for k in 1..<3 { #expect(starts[3 * k] - starts[3 * (k - 1)] >= 990, "window \(k): \(starts)") }
    }

    static func psql(_ sql: String) throws -> String {
        guard let url = ProcessInfo.processInfo.environment["DATABASE_URL"] else { return "" }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["psql", url, "-Atc", sql]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// kill -9 of a worker mid-job: the job is redone once, by another worker, and completes; recovered within lock
    /// duration + stalled interval (+ a second of slack), and its outcome row names it `<prefix>:<queue>:<id>`.
    @Test func killNineMidJobRedoesTheJobOnce() async throws {
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        try peer.add("kq", [["name": "sleep", "data": ["ms": 2500]]])
        let jobKey = "\(peer.prefix):kq:1"
        let (first, firstLog) = try Self.launchLogged(peer, queues: "kq")
        defer { try? FileManager.default.removeItem(at: firstLog) }
        do {
            // A worker starts after its migrations, which may wait for other tests' PostgreSQL sessions.
            try await eventually(60, "the first worker took the job") {
                try await peer.command("EXISTS", "\(jobKey):lock").int == 1
            }
        } catch {
            kill(first.processIdentifier, SIGKILL)
            Issue.record("first worker's log: \((try? String(contentsOf: firstLog, encoding: .utf8)) ?? "")")
            throw error
        }
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let killed = Date()
        let second = try Self.launch(peer, queues: "kq")
        defer { if second.isRunning { kill(second.processIdentifier, SIGKILL) } }
        try await eventually(30, "the job completed") {
            try await peer.command("ZSCORE", "\(peer.prefix):kq:completed", "1").isNull == false
        }
        let state = try peer.state("kq")
        #expect(state["jobs", "1", "returnvalue"] == #"{"slept_ms":2500}"#)
        #expect(state["jobs", "1", "ats"] == "2", "run twice: the killed run and the redo")
        #expect(state["jobs", "1", "stc"] == "1")
        // The sleep job reports progress while it runs (each run's events between active and the next step).
        let events = (state["events", "1"]?.arrayValue ?? []).compactMap(\.stringValue)
        #expect(events.filter { $0 != "progress" } == ["added", "waiting", "active", "waiting", "stalled", "active", "completed"], "\(events)")
        #expect(events.contains("progress"))
        // Back in wait within lock duration (2 s) + stalled interval (1 s) + 1 s, measured to the redo's completion
        // minus the job's own 2.5 s.
        #expect(Date().timeIntervalSince(killed) < 2 + 1 + 1 + 2.5 + 1.5)
        second.terminate()
        second.waitUntilExit()
        #expect(second.terminationStatus == 0)
        if ProcessInfo.processInfo.environment["DATABASE_URL"] != nil {
            try await eventually(10, "the outcome row") {
                try Self.psql("SELECT status FROM conveyor.job_results WHERE jid = '\(jobKey)'") == "succeeded"
            }
        }
    }

    /// Scripts that are not the pinned ones, a queue name BullMQ cannot use, a queue named on both sides, and an old
    /// Bull queue each refuse the start with exit 64 and a message naming the problem.
    @Test func refusalsAtStart() async throws {
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("no-bullmq-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        let cases: [(String, [String: String], String)] = [
            ("kq", ["CONVEYOR_BULLMQ_SCRIPTS": empty.path], "moveToActive-11.lua is missing"),
            ("a:b", [:], "must not contain ':'"),
            ("default", ["CONVEYOR_QUEUES": "default"], "named by both"),
            ("oldbull", [:], "old Bull (v3/v4) queue"),
        ]
        try await peer.command("SET", "\(peer.prefix):oldbull:meta-paused", "1")
        for (queues, extra, message) in cases {
            let (process, log) = try Self.launchLogged(peer, queues: queues, extra: extra)
            defer { try? FileManager.default.removeItem(at: log) }
            let deadline = Date().addingTimeInterval(20)
            while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            #expect(process.terminationStatus == 64, "\(queues): exit \(process.terminationStatus)")
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            #expect(text.contains(message), "\(queues): \(text.suffix(400))")
        }
    }
}

extension BullMQWorkerProcessTests {
    /// One worker serves a Sidekiq queue and a BullMQ queue at once: each job leaves through its own backend.
    /// The worker's keep settings (BullMQ's worker `removeOnComplete`/`removeOnFail`) for jobs that say nothing, and a
    /// job's own option winning over them.
    @Test func keepSettingsTrimCompletedAndFailedJobs() async throws {
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        _ = try peer.add("bk2", [
            ["name": "noop", "data": [:]], ["name": "noop", "data": [:]], ["name": "noop", "data": [:]],
            ["name": "noop", "data": [:], "opts": ["removeOnComplete": false]],
            ["name": "no.such.class", "data": [:], "opts": ["attempts": 1]],
        ])
        let (worker, log) = try Self.launchLogged(
            peer, queues: "bk2", extra: ["CONVEYOR_BULLMQ_REMOVE_ON_COMPLETE": "1", "CONVEYOR_BULLMQ_REMOVE_ON_FAIL": "remove"])
        defer {
            if worker.isRunning { kill(worker.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: log)
        }
        try await eventually(30, "every job finished") {
            let waiting = try await peer.command("LLEN", "\(peer.prefix):bk2:wait").int ?? 1
            let active = try await peer.command("LLEN", "\(peer.prefix):bk2:active").int ?? 1
            let failedJob = try await peer.command("EXISTS", "\(peer.prefix):bk2:5").int ?? 1
            return waiting == 0 && active == 0 && failedJob == 0
        }
        worker.terminate()
        worker.waitUntilExit()
        let completed = try await peer.command("ZRANGE", "\(peer.prefix):bk2:completed", 0, -1).array?.compactMap(\.text) ?? []
        // Count 1 keeps the newest of the trimmed ones; job 4 said keep (false) and stays whatever the setting.
        #expect(completed.contains("4"), "\(completed)")
        #expect(completed.count <= 2, "\(completed)")
        #expect(try await peer.command("ZCARD", "\(peer.prefix):bk2:failed").int == 0, "removed at once")
    }

    /// The BullMQ queues' sizes on the worker's /metrics, as KEDA's Prometheus scaler reads them: delayed jobs are
    /// counted, and not as ready until their time.
    @Test func queueDepthIsOnMetrics() async throws {
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        _ = try peer.add("bd", [["name": "noop", "data": [:], "opts": ["delay": 3_600_000]], ["name": "noop", "data": [:], "opts": ["delay": 3_600_000]]])
        let port = Int.random(in: 20_000...40_000)
        let (worker, log) = try Self.launchLogged(
            peer, queues: "bd", extra: ["CONVEYOR_METRICS_ADDR": "127.0.0.1:\(port)", "CONVEYOR_METRICS_POLL_SECONDS": "0.5"])
        defer {
            if worker.isRunning { kill(worker.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: log)
        }
        var text = ""
        try await eventually(30, "the BullMQ gauges on /metrics") {
            let fetch = Process()
            fetch.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            fetch.arguments = [
                "python3", "-c", "import sys, urllib.request\ntry: sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())\nexcept Exception: pass",
                "http://127.0.0.1:\(port)/metrics",
            ]
            let out = Pipe()
            fetch.standardOutput = out
            try fetch.run()
            text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            fetch.waitUntilExit()
            return text.contains("conveyor_bullmq_queue_jobs{queue=\"bd\",state=\"delayed\"} 2")
        }
        #expect(text.contains("conveyor_bullmq_queue_jobs{queue=\"bd\",state=\"delayed_due\"} 0"))
        #expect(text.contains("conveyor_bullmq_queue_depth{queue=\"bd\"} 0"), "delayed jobs are not ready")
        worker.terminate()
        worker.waitUntilExit()
    }

    /// A handler's progress reaches BullMQ's own `progress` (what `job.progress`, QueueEvents and bull-board read) and
    /// a `progress` event on the queue's stream, beside Conveyor's hash.
    @Test func progressIsWrittenTheBullMQWay() async throws {
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        let ids = try peer.add("bp", [["name": "sleep", "data": ["ms": 4000]]])
        let id = try #require(ids.first)
        let (worker, log) = try Self.launchLogged(peer, queues: "bp")
        defer {
            if worker.isRunning { kill(worker.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: log)
        }
        var seen: JSONValue = .null
        try await eventually(30, "a progress between 0 and 100 while the job runs") {
            seen = try peer.progress("bp", id: id)
            guard let p = seen.doubleValue else { return false }
            return p > 0 && p < 100
        }
        let events = try await peer.command("XRANGE", "\(peer.prefix):bp:events", "-", "+")
        // Each entry: [id, [field, value, ...]]; the event names.
        let names = (events.array ?? []).compactMap { entry -> String? in
            guard let fields = entry.array?.last?.array, fields.count >= 2 else { return nil }
            return fields[1].text
        }
        #expect(names.contains("progress"), "a progress event on the stream: \(names)")
        try await eventually(30, "the job completed") { try await peer.command("ZSCORE", "\(peer.prefix):bp:completed", id).isNull == false }
        worker.terminate()
        worker.waitUntilExit()
    }

    @Test func oneWorkerServesSidekiqAndBullMQQueues() async throws {
        let peer = try BullMQPeer()
        defer { Task { [peer] in try? await peer.clean() } }
        let sidekiqQueue = "mix\(Job.newJID().prefix(8))"
        try peer.add("bq", [["name": "noop", "data": [:]]])
        let envelope = Job.envelope(jobClass: "noop", arguments: [:], queue: sidekiqQueue)
        try await peer.command("LPUSH", "queue:\(sidekiqQueue)", envelope.bytes)
        let (worker, log) = try Self.launchLogged(peer, queues: "bq", extra: ["CONVEYOR_QUEUES": sidekiqQueue])
        defer {
            if worker.isRunning { kill(worker.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: log)
        }
        try await eventually(60, "both jobs done") {
            let bull = try await peer.command("ZSCORE", "\(peer.prefix):bq:completed", "1").isNull == false
            let sidekiq = try await peer.command("LLEN", "queue:\(sidekiqQueue)").int == 0
            return bull && sidekiq
        }
        worker.terminate()
        worker.waitUntilExit()
        #expect(worker.terminationStatus == 0)
        #expect(try peer.state("bq")["jobs", "1", "returnvalue"] == "{}")
        if ProcessInfo.processInfo.environment["DATABASE_URL"] != nil {
            let jid = envelope["jid"]!.stringValue!
            try await eventually(10, "both outcome rows") {
                try Self.psql("SELECT count(*) FROM conveyor.job_results WHERE jid IN ('\(jid)', '\(peer.prefix):bq:1') AND status = 'succeeded'") == "2"
            }
        }
        try await peer.command("DEL", "queue:\(sidekiqQueue)")
    }
}
