import Foundation
import Postgres
import Redis
import Testing

@testable import ConveyorCore
import SidekiqQueue

/// Whole `conveyor worker` processes against the production Redis shapes scripts/services.sh starts.
@Suite(.serialized) struct ProductionRedisTests {
    static let environment = ProcessInfo.processInfo.environment

    /// Mutual TLS, with the CA, certificate and key from the worker's settings: jobs flow as over plain TCP.
    @Test(.enabled(if: environment["CONVEYOR_TEST_REDIS_TLS_URL"] != nil, "needs the TLS Redis of scripts/services.sh"))
    func aWorkerRunsJobsOverMutualTLS() async throws {
        let e = Self.environment
        let tls = [
            "CONVEYOR_REDIS_CA_FILE": e["CONVEYOR_TEST_REDIS_CA_FILE"]!, "CONVEYOR_REDIS_CERT_FILE": e["CONVEYOR_TEST_REDIS_CERT_FILE"]!,
            "CONVEYOR_REDIS_KEY_FILE": e["CONVEYOR_TEST_REDIS_KEY_FILE"]!,
        ]
        let url = e["CONVEYOR_TEST_REDIS_TLS_URL"]!
        let namespace = "tls-" + Job.newJID().prefix(8)
        let redis = RedisThread(try RedisEndpoint(url: url, environment: tls), name: "tls-test")
        defer { redis.stop() }
        let keys = QueueKeys(namespace: String(namespace))
        let client = JobClient(redis: redis, keys: keys)
        for _ in 0..<50 { try await client.enqueue("noop") }
        let worker = try WorkerProcess(
            redisURL: url, namespace: String(namespace), arguments: ["--queues", "default", "-c", "5"],
            environment: tls.merging(["DATABASE_URL": ""]) { _, new in new })
        try await eventually("50 jobs ran over TLS", timeout: .seconds(30)) {
            try await redis.run { try $0.command("GET", keys.processed).check().text } == "50"
        }
        #expect(try await worker.terminate() == 0)

        // The same worker without the CA refuses to trust the server, says why, and keeps trying.
        let untrusting = try WorkerProcess(
            redisURL: url, namespace: String(namespace), arguments: ["--queues", "default"],
            environment: ["DATABASE_URL": "", "CONVEYOR_REDIS_CERT_FILE": tls["CONVEYOR_REDIS_CERT_FILE"]!,
                          "CONVEYOR_REDIS_KEY_FILE": tls["CONVEYOR_REDIS_KEY_FILE"]!])
        try await eventually("the certificate is refused", timeout: .seconds(20)) { untrusting.log.contains("certificate") }
        #expect(untrusting.process.isRunning)
        kill(untrusting.pid, SIGKILL)
        try await untrusting.waitForExit()
    }
}

/// A Sentinel deployment of one test's own: a master and a replica (`PrivateRedis`, AOF fsync always) and three
/// sentinels on free loopback ports, so the test may kill the master without disturbing anything else.
final class PrivateSentinelGroup: @unchecked Sendable {
    let master: PrivateRedis
    let replica: PrivateRedis
    let sentinelPorts: [Int]
    let name = "conveyor-failover"
    private var sentinels: [Process] = []
    private let directory: URL

    var url: String { "redis+sentinel://" + sentinelPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",") + "/\(name)" }

    init() async throws {
        master = try PrivateRedis()
        replica = try PrivateRedis(arguments: ["--replicaof", "127.0.0.1", "\(master.port)"])
        directory = master.directory.appendingPathComponent("sentinels")
        var ports: [Int] = []
        for i in 0..<3 {
            let port = try PrivateRedis.freePort()
            ports.append(port)
            let dir = directory.appendingPathComponent("s\(i)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let conf = dir.appendingPathComponent("sentinel.conf")
            try """
                port \(port)
                bind 127.0.0.1
                dir \(dir.path)
                logfile \(dir.appendingPathComponent("sentinel.log").path)
                sentinel monitor \(name) 127.0.0.1 \(master.port) 2
                sentinel down-after-milliseconds \(name) 1000
                sentinel failover-timeout \(name) 3000
                sentinel parallel-syncs \(name) 1

                """.write(to: conf, atomically: true, encoding: .utf8)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
            p.arguments = [conf.path, "--sentinel"]
            p.standardInput = FileHandle.nullDevice
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            sentinels.append(p)
        }
        sentinelPorts = ports
        // Ready for a failover: the replica in sync, and every sentinel sees the replica and the two other sentinels.
        try await eventually("the sentinel group is ready", timeout: .seconds(30)) {
            for port in ports {
                guard let c = try? RedisConnection(RedisEndpoint(url: "redis://127.0.0.1:\(port)"), connectTimeout: 1, commandTimeout: 1),
                    let replicas = try? c.command("SENTINEL", "replicas", self.name).check().array,
                    let others = try? c.command("SENTINEL", "sentinels", self.name).check().array,
                    replicas.count == 1, others.count == 2
                else { return false }
            }
            return true
        }
    }

    /// The master the sentinels name now.
    func currentMasterPort() -> Int? {
        for port in sentinelPorts {
            guard let c = try? RedisConnection(RedisEndpoint(url: "redis://127.0.0.1:\(port)"), connectTimeout: 1, commandTimeout: 1),
                let address = try? c.command("SENTINEL", "get-master-addr-by-name", name).check().array, address.count == 2
            else { continue }
            return address[1].text.flatMap { Int($0) }
        }
        return nil
    }

    deinit {
        for p in sentinels where p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
    }
}

extension ProductionRedisTests {
    /// Sentinel failover mid-drain: 20,000 jobs replicated, two workers draining through the sentinels, the master
    /// killed with kill -9. Every job ends with exactly one row, no in-flight list is left, and `conveyor stats`
    /// reads the new master through the sentinels.
    @Test(.enabled(if: environment["DATABASE_URL"] != nil, "needs DATABASE_URL"))
    func aSentinelFailoverMidDrainLosesNoJob() async throws {
        let group = try await PrivateSentinelGroup()
        let url = group.url
        let namespace = "failover-" + Job.newJID().prefix(8)
        let keys = QueueKeys(namespace: String(namespace))
        let redis = RedisThread(try RedisEndpoint(url: url), name: "failover-test")
        defer { redis.stop() }
        let prefix = "fo-\(Job.newJID().prefix(10))-"
        let client = JobClient(redis: redis, keys: keys)
        let total = 20_000
        for start in stride(from: 0, to: total, by: 1000) {
            try await client.push((start..<start + 1000).map { i in
                var payload = Job.envelope(jobClass: "noop", arguments: JSONObject(), queue: "default", retry: nil, at: nil, now: JobTime.now())
                payload["jid"] = .string(prefix + String(i))
                return payload
            })
        }
        #expect(try await redis.run { try $0.command("WAIT", 1, 10_000).check().int } == 1, "the jobs reached the replica")

        let arguments = ["--queues", "default", "-c", "10", "--heartbeat-interval", "300ms", "--heartbeat-ttl", "3s", "--poll-interval", "200ms"]
        let a = try WorkerProcess(redisURL: url, namespace: String(namespace), arguments: arguments)
        let b = try WorkerProcess(redisURL: url, namespace: String(namespace), arguments: arguments)
        try await eventually("a fifth drained", timeout: .seconds(120)) {
            (try? await redis.run { try $0.command("GET", keys.processed).check().text }).flatMap { $0 }.flatMap { Int($0) } ?? 0 >= total / 5
        }
        let oldMaster = group.master.port
        let before = try await redis.run { try $0.command("GET", keys.processed).check().text }.flatMap { Int($0) } ?? 0
        kill(try #require(group.master.pid), SIGKILL)
        #expect(before < total, "the master died mid-drain")
        try await eventually("the sentinels promoted the replica", timeout: .seconds(30)) { group.currentMasterPort() == group.replica.port }
        #expect(group.currentMasterPort() != oldMaster)

        let database = try PostgresConnection(url: Self.environment["DATABASE_URL"]!)
        try await eventually("every job has its row", timeout: .seconds(240)) {
            let r = try database.query("SELECT count(DISTINCT jid) FROM conveyor.job_results WHERE jid LIKE $1", [prefix + "%"])
            return r.rows.first?.first == String(total)
        }
        let rows = try database.query("SELECT count(*), count(*) FILTER (WHERE status = 'succeeded') FROM conveyor.job_results WHERE jid LIKE $1", [prefix + "%"])
        #expect(rows.rows.first == [String(total), String(total)], "one succeeded row per job")
        // This test's own connection to the dead master breaks on its next command, then reconnects through the
        // sentinels: a failed read counts as not yet.
        try await eventually("no in-flight list is left", timeout: .seconds(30)) {
            do {
                let lists = try await redis.run { try $0.command("KEYS", keys.prefix + "conveyor:inflight:*").check().array ?? [] }
                for list in lists {
                    if try await redis.run({ try $0.command("LLEN", list.text!).check().int ?? 0 }) > 0 { return false }
                }
                return try await redis.run { try $0.command("LLEN", keys.queue("default")).check().int } == 0
            } catch {
                return false
            }
        }

        let stats = Process()
        stats.executableURL = URL(fileURLWithPath: Self.environment["CONVEYOR_BIN"]!)
        stats.arguments = ["stats", "--redis-url", url, "--namespace", String(namespace), "--json"]
        let out = Pipe()
        stats.standardOutput = out
        try stats.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        stats.waitUntilExit()
        #expect(stats.terminationStatus == 0, "\(text)")
        #expect(text.contains("\"processes\""), "\(text)")
        #expect(a.log.contains("failed; retrying") && b.log.contains("failed; retrying"), "both workers lost the old master")
        #expect(try await a.terminate() == 0)
        #expect(try await b.terminate() == 0)
    }
}

extension ProductionRedisTests {
    /// A failover in which the old master stays up (an operator's `SENTINEL FAILOVER`). The sentinels close the old
    /// master's clients when they demote it, but an idle connection learns of that only when it next writes (and
    /// in a partition the sentinels cannot reach the old master, which keeps taking writes): the `+switch-master`
    /// announcement marks it before it is used.
    @Test func aSwitchMasterAnnouncementMovesIdleConnectionsAtOnce() async throws {
        let group = try await PrivateSentinelGroup()
        let redis = RedisThread(try RedisEndpoint(url: group.url), name: "switch-test", commandTimeout: 5)
        defer { redis.stop() }
        let key = "switch-" + Job.newJID().prefix(8)
        let first = try await redis.run { connection in
            try connection.command("SET", key, "written to the first master").check()
            _ = try connection.command("WAIT", 1, 5000).check()
            return connection.server?.port
        }
        #expect(first == group.master.port)

        let sentinel = try RedisConnection(RedisEndpoint(url: "redis://127.0.0.1:\(group.sentinelPorts[0])"), commandTimeout: 5)
        #expect(try sentinel.command("SENTINEL", "FAILOVER", group.name).check() == .status("OK"))
        try await eventually("the sentinels promoted the replica", timeout: .seconds(30)) { group.currentMasterPort() == group.replica.port }
        // No command ran on the old connection: it moves because the announcement marked it, and the old master,
        // still running, is a replica now.
        try await eventually("the idle connection found the new master", timeout: .seconds(10)) {
            try await redis.run { $0.server?.port } == group.replica.port
        }
        let (value, role) = try await redis.run { connection in
            (try connection.command("GET", key).check().text, try connection.command("ROLE").check().array?.first?.text)
        }
        #expect(value == "written to the first master")
        #expect(role == "master")
        try await eventually("the old master runs on, as a replica", timeout: .seconds(20)) {
            let old = try RedisConnection(RedisEndpoint(url: "redis://127.0.0.1:\(group.master.port)"), commandTimeout: 5)
            return try old.command("ROLE").check().array?.first?.text == "slave"
        }
    }
}
