import ConveyorCore
import Foundation
import Postgres
import Redis
import SidekiqQueue
import Testing

/// The config file's `limits:` through real `conveyor worker` processes on one Redis, judged by the `job_results` rows
/// they write: per-key concurrency and rate across processes, fairness between keys, and a killed worker's slot.
@Suite(.enabled(if: TestEnv.hasServers && TestEnv.binary != nil, "needs REDIS_URL, DATABASE_URL and CONVEYOR_BIN"), .serialized)
struct FlowLimitTests {
    /// The slots a `<limit>:slots:K` hash counts for live leases (`n:<process>` fields whose `e:<process>` is ahead).
    static func slotsHeld(_ key: String, on r: RedisConnection) throws -> Int {
        let flat = try r.command(RedisCommand("HGETALL", key)).check().array?.compactMap(\.text) ?? []
        var counts: [String: Int] = [:]
        var ends: [String: Double] = [:]
        for i in stride(from: 0, to: flat.count - 1, by: 2) {
            let field = flat[i]
            if field.hasPrefix("n:") { counts[String(field.dropFirst(2))] = Int(flat[i + 1]) }
            if field.hasPrefix("e:") { ends[String(field.dropFirst(2))] = Double(flat[i + 1]) }
        }
        let now = Date().timeIntervalSince1970 * 1000
        return counts.reduce(0) { $0 + ((ends[$1.key] ?? 0) > now ? max(0, $1.value) : 0) }
    }

    /// Writes a config file holding `limits` (YAML under `limits:`) and returns its path.
    static func configFile(_ limits: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("limits-\(UUID().uuidString).yml").path
        try ("limits:\n" + limits).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func push(_ payloads: [String], queue: String = "default", keys: QueueKeys, on r: RedisConnection) throws {
        var commands = [RedisCommand("SADD", keys.queues, queue)]
        var start = 0
        while start < payloads.count {
            let chunk = payloads[start..<min(payloads.count, start + 1000)]
            commands.append(RedisCommand(["LPUSH", keys.queue(queue)] + chunk.map { $0 as any RedisArgument }))
            start += chunk.count
        }
        for reply in try r.pipeline(commands) { try reply.check() }
    }

    static func sleepJob(jid: String, tenant: String?, ms: Int) -> String {
        let tenantField = tenant.map { #","tenant":"\#($0)""# } ?? ""
        return #"{"class":"sleep","args":[{"ms":\#(ms)\#(tenantField)}],"queue":"default","jid":"\#(jid)","enqueued_at":\#(Date().timeIntervalSince1970)}"#
    }

    struct Row {
        var jid: String
        var status: String
        var started: Double
        var finished: Double
    }

    /// The rows of the jobs whose jid starts with `prefix`.
    static func rows(_ db: PostgresConnection, prefix: String) throws -> [Row] {
        try db.query(
            "SELECT jid, status, extract(epoch FROM started_at)::float8, extract(epoch FROM finished_at)::float8 FROM conveyor.job_results WHERE jid LIKE $1",
            [prefix + "%"]
        ).rows.map { Row(jid: $0[0] ?? "", status: $0[1] ?? "", started: Double($0[2] ?? "") ?? 0, finished: Double($0[3] ?? "") ?? 0) }
    }

    /// The most intervals that hold one instant (a start counts before a finish at the same instant is let go).
    static func maximumOverlap(_ rows: [Row]) -> Int {
        var events: [(time: Double, delta: Int)] = []
        for row in rows {
            events.append((row.started, 1))
            events.append((row.finished, -1))
        }
        events.sort { a, b in a.time == b.time ? a.delta < b.delta : a.time < b.time }
        var running = 0
        var most = 0
        for (_, delta) in events {
            running += delta
            most = max(most, running)
        }
        return most
    }

    static func waitForRows(_ db: PostgresConnection, prefix: String, count: Int, timeout: Double, workers: [WorkerProcess]) throws -> [Row] {
        let deadline = Date().addingTimeInterval(timeout)
        var rows: [Row] = []
        while Date() < deadline {
            rows = try Self.rows(db, prefix: prefix)
            if rows.count >= count { return rows }
            if let dead = workers.first(where: { !$0.isRunning }) { throw TestFailure("a worker exited:\n\(dead.log.suffix(3000))") }
            usleep(100_000)
        }
        throw TestFailure("\(rows.count) of \(count) rows within \(timeout) s:\n\(workers.first?.log.suffix(3000) ?? "")")
    }

    /// Three tenants, `concurrency: 2`, `rate: 30` per window, four worker processes of eight slots each: no tenant
    /// ever has more than two jobs running, no window holds more than 30 of a tenant's starts, and the first window
    /// is used to at least 90 %. The window is 6 s instead of a minute so the run takes seconds; the rules are the same.
    @Test func concurrencyAndRateHoldPerKeyAcrossFourWorkers() throws {
        let namespace = TestEnv.unique("limits")
        let keys = QueueKeys(namespace: namespace)
        let config = try Self.configFile("""
              per-tenant:
                classes: [sleep]
                key: args.tenant
                concurrency: 2
                rate: 30/6s
            """)
        defer { try? FileManager.default.removeItem(atPath: config) }
        let prefix = "lim" + namespace.suffix(8)
        var payloads: [String] = []
        for i in 0..<40 {
            for tenant in ["t1", "t2", "t3"] { payloads.append(Self.sleepJob(jid: "\(prefix)-\(tenant)-\(i)", tenant: tenant, ms: 150)) }
        }
        let r = try TestEnv.redis()
        try Self.push(payloads, keys: keys, on: r)
        var workers: [WorkerProcess] = []
        for _ in 0..<4 { workers.append(try WorkerProcess(namespace: namespace, arguments: ["--config", config, "--queues", "default", "-c", "8"])) }
        for worker in workers { try worker.waitUntilServing() }
        let db = try PostgresConnection(url: TestEnv.databaseURL!)
        let rows = try Self.waitForRows(db, prefix: prefix, count: 120, timeout: 90, workers: workers)
        #expect(rows.count == 120)
        #expect(rows.allSatisfy { $0.status == "succeeded" })
        for tenant in ["t1", "t2", "t3"] {
            let mine = rows.filter { $0.jid.hasPrefix("\(prefix)-\(tenant)-") }
            #expect(mine.count == 40)
            #expect(Self.maximumOverlap(mine) <= 2, "\(tenant): more than two running at once")
            #expect(Self.maximumOverlap(mine) == 2, "\(tenant): the two slots were never both used")
            let starts = mine.map(\.started).sorted()
            // A start is taken in Redis a few milliseconds before its row's started_at: 50 ms of slack at the far edge.
            for (i, s) in starts.enumerated() {
                let inWindow = starts[i...].prefix { $0 < s + 5.95 }.count
                #expect(inWindow <= 30, "\(tenant): \(inWindow) starts within 6 s from \(s)")
            }
            let first = starts[0]
            let firstWindow = starts.filter { $0 < first + 6 }.count
            #expect(firstWindow >= 27, "\(tenant): \(firstWindow) of 30 starts used in the first window")
            // And the jobs past the budget waited for the next window rather than failing or being dropped.
            #expect(starts[39] >= first + 5.9, "\(tenant): the 40th start came \(starts[39] - first) s after the first")
        }
        let stats = try r.command(RedisCommand("HGET", keys.conveyor("limit:per-tenant"), "waiting")).check().text
        #expect(stats == nil || stats == "0", "jobs left waiting: \(stats ?? "")")
    }

    /// A lone job of a fourth tenant starts within one slot while a first tenant has 10,000 jobs queued ahead of it,
    /// and the gauges on /metrics say what waits.
    @Test func aLoneKeyIsNotStarvedByTenThousandJobsOfAnother() throws {
        let namespace = TestEnv.unique("limits-fair")
        let keys = QueueKeys(namespace: namespace)
        let config = try Self.configFile("""
              per-tenant:
                classes: [sleep]
                key: args.tenant
                concurrency: 2
            """)
        defer { try? FileManager.default.removeItem(atPath: config) }
        let prefix = "fair" + namespace.suffix(8)
        let slot = 2_000
        var payloads = (0..<10_000).map { Self.sleepJob(jid: "\(prefix)-a-\($0)", tenant: "a", ms: slot) }
        payloads.append(Self.sleepJob(jid: "\(prefix)-d-0", tenant: "d", ms: 10))
        let r = try TestEnv.redis()
        try Self.push(payloads, keys: keys, on: r)
        let worker = try WorkerProcess(
            namespace: namespace, arguments: ["--config", config, "--queues", "default", "-c", "10"],
            environment: ["CONVEYOR_METRICS_POLL_SECONDS": "0.5"])
        try worker.waitUntilServing()
        let db = try PostgresConnection(url: TestEnv.databaseURL!)
        let lone = try Self.waitForRows(db, prefix: "\(prefix)-d-", count: 1, timeout: 30, workers: [worker])
        let firstOfA = try Self.waitForRows(db, prefix: "\(prefix)-a-", count: 2, timeout: 30, workers: [worker])
        let aStart = firstOfA.map(\.started).min() ?? 0
        #expect(lone[0].status == "succeeded")
        // Within one slot of the first tenant's first start (it had 10,000 jobs ahead of d's one in the queue).
        #expect(lone[0].started < aStart + Double(slot) / 1000, "d started \(lone[0].started - aStart) s after a's first")
        #expect(firstOfA.count == 2, "a ran more than its two slots in its first slot")
        var metrics = ""
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            metrics = (try? RawHTTP.get(port: worker.port, path: "/metrics", timeout: 2)).map { String(decoding: $0.body, as: UTF8.self) } ?? ""
            if metrics.contains(#"conveyor_limit_running{limit="per-tenant"} 2"#) { break }
            usleep(100_000)
        }
        #expect(metrics.contains(#"conveyor_limit_running{limit="per-tenant"} 2"#), "\(metrics.split(separator: "\n").filter { $0.contains("limit") })")
        #expect(metrics.contains(#"conveyor_limit_throttled_keys{limit="per-tenant"} 1"#))
        let waiting = metrics.split(separator: "\n").first { $0.hasPrefix(#"conveyor_limit_waiting{limit="per-tenant"}"#) }
            .flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
        #expect(waiting > 9_900 && waiting <= 9_998, "waiting: \(waiting)")
        // `conveyor stats` reads the limit the worker declared, without the config file.
        let stats = try TestEnv.conveyor(["stats", "--namespace", namespace])
        #expect(stats.code == 0, "\(stats.err)")
        #expect(stats.out.contains("limit per-tenant  running 2  waiting "), "\(stats.out)")
        #expect(stats.out.contains("keys waiting 1  classes sleep  key args.tenant  concurrency 2"), "\(stats.out)")
        let json = try JSONValue(parsing: Array(try TestEnv.conveyor(["stats", "--json", "--namespace", namespace]).out.utf8))
        #expect(json["limits"]?[0]?["name"]?.stringValue == "per-tenant")
        #expect(json["limits"]?[0]?["running"]?.intValue == 2)
        worker.stop()
    }

    /// The fetch judges a job by its bytes where they say enough and decodes it where they do not: a class named once
    /// (spaces around the colon too) is read without a decode; a second `"class"` (one nested in the arguments) or a
    /// backslash sends the job to the decoder, so a job of another class that carries a limited one's name is not
    /// limited, and an escaped limited name is. The jobs in the key's line are the ones held back.
    @Test func theFetchReadsTheClassOnlyWhereTheBytesAreUnambiguous() async throws {
        let keys = QueueKeys(namespace: TestEnv.unique("limits-bytes"))
        let limit = FlowLimit(name: "one", classes: ["noop"], concurrency: 1)
        let backend = SidekiqBackend(redis: try RedisEndpoint(url: TestEnv.redisURL!), keys: keys, identity: TestEnv.unique("bytes"), limits: [limit])
        defer { backend.close() }
        let r = try TestEnv.redis()
        let jobs = [
            #"{"class":"noop","args":[{}],"queue":"default","jid":"plain"}"#,
            #"{"class":"other","args":[{"class":"noop"}],"queue":"default","jid":"nested"}"#,
            #"{"args":[{"x":"class"}],"queue":"default","jid":"spaced","class" : "noop"}"#,
            #"{"class":"noop","args":[{}],"queue":"default","jid":"escaped"}"#,
            #"{"args":[{"class":"noop"}],"queue":"default","jid":"classless"}"#,
        ]
        // Pushed on the left, taken from the right: in this order.
        for job in jobs { try r.command("LPUSH", keys.queue("default"), job).check() }
        let fetched = try await backend.fetch(from: ["default"], count: 10)
        let taken = fetched.compactMap { (try? JSONValue(parsing: $0.raw))?["jid"]?.stringValue }
        // "plain" takes the one slot; "spaced" and "escaped" are noop too and wait; "nested" is another class: not
        // limited. "classless" has no class of its own, only a nested one: judged by its bytes it waits with the noop
        // jobs (holding no slot), and the worker refuses it when its turn comes.
        #expect(taken == ["plain", "nested"], "\(taken)")
        #expect(fetched.first?.receipt.lease == "one\n")
        let waiting = try r.command("LRANGE", keys.conveyor("limit:one:wait::q:default"), 0, -1).check().array?.compactMap(\.text) ?? []
        #expect(waiting.compactMap { (try? JSONValue(parsing: Array($0.utf8)))?["jid"]?.stringValue } == ["classless", "escaped", "spaced"])
    }

    /// A worker killed with `kill -9` while its job holds the key's only slot: the slot is held while its lease runs
    /// (a second worker does not start the key's next job) and is free when it ends, without a new push.
    @Test func aKilledWorkersSlotIsFreeWithinALease() throws {
        let namespace = TestEnv.unique("limits-kill")
        let keys = QueueKeys(namespace: namespace)
        let config = try Self.configFile("""
              one-at-a-time:
                classes: [sleep]
                key: args.tenant
                concurrency: 1
                lease: 4s
            """)
        defer { try? FileManager.default.removeItem(atPath: config) }
        let prefix = "kill" + namespace.suffix(8)
        let r = try TestEnv.redis()
        let environment = ["CONVEYOR_HEARTBEAT_INTERVAL": "1s"]
        let first = try WorkerProcess(namespace: namespace, arguments: ["--config", config, "--queues", "default", "-c", "2"], environment: environment)
        try first.waitUntilServing()
        try Self.push([Self.sleepJob(jid: "\(prefix)-long", tenant: "x", ms: 600_000)], keys: keys, on: r)
        // Its slot is taken once the job runs (the lease is renewed while the worker lives: wait past one lease).
        let running = keys.conveyor("limit:one-at-a-time:slots:x")
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, try Self.slotsHeld(running, on: r) != 1 { usleep(50_000) }
        #expect(try Self.slotsHeld(running, on: r) == 1)
        usleep(5_000_000)
        #expect(try Self.slotsHeld(running, on: r) == 1, "the live worker's lease was not renewed")
        let second = try WorkerProcess(namespace: namespace, arguments: ["--config", config, "--queues", "default", "-c", "2"], environment: environment)
        try second.waitUntilServing()
        try Self.push([Self.sleepJob(jid: "\(prefix)-next", tenant: "x", ms: 10)], keys: keys, on: r)
        usleep(1_500_000)
        #expect(try Self.rows(try PostgresConnection(url: TestEnv.databaseURL!), prefix: "\(prefix)-next").isEmpty, "started while the slot was held")
        first.kill9()
        let killed = Date().timeIntervalSince1970
        let db = try PostgresConnection(url: TestEnv.databaseURL!)
        let next = try Self.waitForRows(db, prefix: "\(prefix)-next", count: 1, timeout: 20, workers: [second])
        #expect(next[0].status == "succeeded")
        // The lease (4 s) was last renewed within a heartbeat (1 s) of the kill; the line is served each second.
        #expect(next[0].started > killed + 2.5, "started \(next[0].started - killed) s after the kill: the slot was not held")
        #expect(next[0].started < killed + 4 + 2.5, "started \(next[0].started - killed) s after the kill")
        second.stop()
    }

    /// Redis loses its scripts (`SCRIPT FLUSH`, as after a restart) while a worker runs limited jobs: the slots are still
    /// given up with each ack (the release is sent again as an `EVAL`), so a one-slot key keeps moving and ends free.
    @Test func slotsAreGivenUpAfterRedisLostItsScripts() throws {
        let namespace = TestEnv.unique("limits-noscript")
        let keys = QueueKeys(namespace: namespace)
        let config = try Self.configFile("  one:\n    classes: [sleep]\n    concurrency: 1\n")
        defer { try? FileManager.default.removeItem(atPath: config) }
        let prefix = "nos" + namespace.suffix(8)
        let r = try TestEnv.redis()
        let worker = try WorkerProcess(namespace: namespace, arguments: ["--config", config, "--queues", "default", "-c", "4"])
        try worker.waitUntilServing()
        let db = try PostgresConnection(url: TestEnv.databaseURL!)
        try Self.push([Self.sleepJob(jid: "\(prefix)-0", tenant: nil, ms: 10)], keys: keys, on: r)
        _ = try Self.waitForRows(db, prefix: "\(prefix)-0", count: 1, timeout: 20, workers: [worker])
        try r.command(RedisCommand("SCRIPT", "FLUSH")).check()
        try Self.push((1...5).map { Self.sleepJob(jid: "\(prefix)-\($0)", tenant: nil, ms: 200) }, keys: keys, on: r)
        // With a slot lost to a release that did not run, the next job would wait for the 60 s lease.
        let rows = try Self.waitForRows(db, prefix: prefix, count: 6, timeout: 20, workers: [worker])
        #expect(rows.allSatisfy { $0.status == "succeeded" })
        #expect(Self.maximumOverlap(rows) == 1)
        var held = -1
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            held = try Self.slotsHeld(keys.conveyor("limit:one:slots:"), on: r)
            if held == 0 { break }
            usleep(50_000)
        }
        #expect(held == 0, "slots still held after every job finished")
        worker.stop()
    }

    /// `conveyor config` refuses what a worker would refuse in `limits:`, naming the file and line (exit 64).
    @Test func badLimitsAreUsageErrors() throws {
        let bad: [(String, String)] = [
            ("concurrency: 0", "concurrency"), ("concurrency: inf", "concurrency"), ("concurrency: 1e308", "concurrency"),
            ("concurrency: 9223372036854775807", "concurrency"), ("concurrency: -1", "concurrency"), ("concurrency: \"\"", "concurrency"),
            ("rate: 30/0s", "rate"), ("rate: 0/1m", "rate"), ("rate: 1e308/1m", "rate"), ("rate: 30/inf", "rate"),
            ("rate: 9223372036854775807/1s", "rate"), ("rate: 30/9223372036854775807s", "rate"), ("rate: 30", "rate"),
            ("lease: 1s", "lease"), ("lease: inf", "lease"), ("key: tenant", "key"), ("key: args.", "key"), ("key: args.a b", "key"),
            ("lease: 60s", "needs concurrency"), ("concurrency: 2\n    classes: [no.such.class]", "no job class"),
        ]
        for (body, word) in bad {
            let classes = body.contains("classes:") ? "" : "    classes: [sleep]\n"
            let path = try Self.configFile("  l1:\n\(classes)    \(body)\n")
            defer { try? FileManager.default.removeItem(atPath: path) }
            let r = try TestEnv.conveyor(["config", "--config", path])
            #expect(r.code == 64, "\(body): exit \(r.code)")
            #expect(r.err.contains(word) && r.err.contains("line"), "\(body): \(r.err)")
        }
        let twice = try Self.configFile("  a:\n    classes: [sleep]\n    concurrency: 1\n  b:\n    classes: [sleep]\n    rate: 5/1s\n")
        defer { try? FileManager.default.removeItem(atPath: twice) }
        let r = try TestEnv.conveyor(["config", "--config", twice])
        #expect(r.code == 64 && r.err.contains("already limited by a"), "\(r.err)")
        let good = try Self.configFile("  per-tenant:\n    classes: [sleep, noop]\n    key: args.tenant.id\n    concurrency: 2\n    rate: 30/m\n")
        defer { try? FileManager.default.removeItem(atPath: good) }
        let ok = try TestEnv.conveyor(["config", "--config", good])
        #expect(ok.code == 0, "\(ok.err)")
    }
}
