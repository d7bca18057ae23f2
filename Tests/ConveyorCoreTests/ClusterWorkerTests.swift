import Foundation
import Postgres
import Redis
import Synchronization
import Testing

@testable import ConveyorCore
import SidekiqQueue

/// Workers on the Redis Cluster scripts/services.sh starts (three masters, three replicas), in the cluster layout.
/// The tests that move a slot and kill a master run last, in one test, since a killed master stays dead.
@Suite(.serialized) struct ClusterWorkerTests {
    static let environment = ProcessInfo.processInfo.environment
    static let url = environment["CONVEYOR_TEST_REDIS_CLUSTER_URL"]
    static var ready: Bool { url != nil && environment["DATABASE_URL"] != nil }
    /// The TLS-only cluster (three masters), and the CA that signed its certificates.
    static let tlsURL = environment["CONVEYOR_TEST_REDIS_TLS_CLUSTER_URL"]
    static var tlsReady: Bool { tlsURL != nil && environment["CONVEYOR_TEST_REDIS_CA_FILE"] != nil && environment["DATABASE_URL"] != nil }

    /// `count` queue names of this test that hash to every master, in turn.
    static func queues(_ count: Int, prefix: String, on connection: RedisConnection, keys: QueueKeys) -> [String] {
        let masters = connection.masters
        var picked: [String] = []
        var i = 0
        while picked.count < count {
            let name = "\(prefix)\(i)"
            i += 1
            if connection.master(of: keys.queue(name)) == masters[picked.count % masters.count] { picked.append(name) }
        }
        return picked
    }

    static func envelopes(_ range: Range<Int>, queues: [String], prefix: String, jobClass: String = "noop") -> [JSONObject] {
        range.map { i in
            var payload = Job.envelope(
                jobClass: jobClass, arguments: JSONObject(), queue: queues[i % queues.count], retry: nil, at: nil, now: JobTime.now())
            payload["jid"] = .string(prefix + String(i))
            return payload
        }
    }

    /// Rows of this test's jobs: all, distinct jids, succeeded.
    static func rows(_ database: PostgresConnection, prefix: String) throws -> [String] {
        try database.query(
            "SELECT count(*), count(DISTINCT jid), count(*) FILTER (WHERE status = 'succeeded') FROM conveyor.job_results WHERE jid LIKE $1",
            [prefix + "%"]
        ).rows.first?.compactMap { $0 } ?? []
    }

    /// The sum of one counter over `queues`.
    static func total(_ connection: RedisConnection, _ keys: [String]) throws -> Int {
        try connection.pipeline(keys.map { RedisCommand("GET", $0) }).reduce(0) { $0 + (try $1.check().int ?? 0) }
    }

    /// Every in-flight list and ready list of `queues` is empty.
    static func drained(_ connection: RedisConnection, keys: QueueKeys, queues: [String]) throws -> Bool {
        var commands = queues.map { RedisCommand("LLEN", keys.queue($0)) }
        for queue in queues {
            let pattern = keys.prefix + "conveyor:" + keys.tag(queue) + ":inflight:*"
            // KEYS on the master of the queue's slot: the pattern's tag keeps them there.
            let node = connection.master(of: keys.queue(queue))!
            for list in try connection.pipeline([RedisCommand("KEYS", pattern)], on: node)[0].check().array ?? [] {
                commands.append(RedisCommand("LLEN", list.bytes!))
            }
        }
        return try connection.pipeline(commands).allSatisfy { try $0.check().int == 0 }
    }

    @Test(.enabled(if: ready, "needs the cluster of scripts/services.sh and DATABASE_URL"))
    func twoWorkersDrainSixQueuesOverThreeMastersExactlyOnce() async throws {
        let namespace = "cl-" + Job.newJID().prefix(8)
        let keys = QueueKeys(namespace: String(namespace), cluster: true)
        let connection = try RedisConnection(RedisEndpoint(url: Self.url!))
        let queues = Self.queues(6, prefix: "q", on: connection, keys: keys)
        #expect(Set(queues.compactMap { connection.master(of: keys.queue($0)) }).count == 3, "the queues spread over the three masters")
        let redis = RedisThread(try RedisEndpoint(url: Self.url!), name: "cluster-test")
        defer { redis.stop() }
        let client = JobClient(redis: redis, keys: keys)
        let prefix = "cl-\(Job.newJID().prefix(10))-"
        let total = 30_000
        for start in stride(from: 0, to: total, by: 1000) {
            try await client.push(Self.envelopes(start..<start + 1000, queues: queues, prefix: prefix))
        }
        #expect(try connection.pipeline(queues.map { RedisCommand("LLEN", keys.queue($0)) }).map(\.int) == queues.map { _ in total / 6 })

        let arguments = ["--queues", queues.joined(separator: ","), "-c", "10", "--heartbeat-interval", "300ms", "--poll-interval", "200ms"]
        let a = try WorkerProcess(redisURL: Self.url!, namespace: String(namespace), arguments: arguments)
        let b = try WorkerProcess(redisURL: Self.url!, namespace: String(namespace), arguments: arguments)
        let database = try PostgresConnection(url: Self.environment["DATABASE_URL"]!)
        // The workers create the table on start: a failed read counts as not yet.
        try await eventually("every job has its row", timeout: .seconds(240)) {
            (try? Self.rows(database, prefix: prefix))?.first == String(total)
        }
        #expect(try Self.rows(database, prefix: prefix) == [String(total), String(total), String(total)], "one succeeded row per job")
        try await eventually("every list is empty", timeout: .seconds(20)) { try Self.drained(connection, keys: keys, queues: queues) }
        // Counted once each, on the shards of their queues; both workers took part.
        try await eventually("counters", timeout: .seconds(10)) {
            try Self.total(connection, queues.map { keys.processed(queue: $0) }) == total
        }
        #expect(try Self.total(connection, queues.map { keys.failed(queue: $0) }) == 0)
        #expect(try connection.command("SMEMBERS", keys.queues).check().array?.count == 6)
        #expect(try await a.terminate() == 0)
        #expect(try await b.terminate() == 0)
        #expect(!a.log.contains("CROSSSLOT") && !b.log.contains("CROSSSLOT"), "\(a.log.suffix(2000))")
    }

    /// The same drain over `rediss+cluster://` (every node TLS-only): a worker and the operator CLI reach each
    /// shard over TLS with the deployment's CA, every job ends with one row, and `stats` adds the shards up.
    @Test(.enabled(if: tlsReady, "needs the TLS cluster of scripts/services.sh and DATABASE_URL"))
    func aWorkerDrainsATLSClusterAndStatsReadIt() async throws {
        let namespace = "clt-" + Job.newJID().prefix(8)
        let keys = QueueKeys(namespace: String(namespace), cluster: true)
        let tls = ["CONVEYOR_REDIS_CA_FILE": Self.environment["CONVEYOR_TEST_REDIS_CA_FILE"]!]
        let endpoint = try RedisEndpoint(url: Self.tlsURL!, environment: tls)
        let connection = try RedisConnection(endpoint)
        let queues = Self.queues(3, prefix: "t", on: connection, keys: keys)
        #expect(Set(queues.compactMap { connection.master(of: keys.queue($0)) }).count == 3)
        let redis = RedisThread(endpoint, name: "tls-cluster-test")
        defer { redis.stop() }
        let prefix = "clt-\(Job.newJID().prefix(10))-"
        let total = 3000
        try await JobClient(redis: redis, keys: keys).push(Self.envelopes(0..<total, queues: queues, prefix: prefix))

        let worker = try WorkerProcess(
            redisURL: Self.tlsURL!, namespace: String(namespace),
            arguments: ["--queues", queues.joined(separator: ","), "-c", "10", "--poll-interval", "200ms"], environment: tls)
        let database = try PostgresConnection(url: Self.environment["DATABASE_URL"]!)
        try await eventually("every job has its row", timeout: .seconds(120)) {
            (try? Self.rows(database, prefix: prefix))?.first == String(total)
        }
        #expect(try Self.rows(database, prefix: prefix) == [String(total), String(total), String(total)], "one succeeded row per job")
        try await eventually("every list is empty", timeout: .seconds(20)) { try Self.drained(connection, keys: keys, queues: queues) }
        try await eventually("counters", timeout: .seconds(10)) {
            try Self.total(connection, queues.map { keys.processed(queue: $0) }) == total
        }
        let stats = try JSONValue(
            parsing: try Self.conveyor(["stats", "--redis-url", Self.tlsURL!, "--namespace", String(namespace), "--json"], environment: tls))
        #expect(stats["processed"]?.intValue == total && stats["failed"]?.intValue == 0, "\(stats)")
        #expect(try await worker.terminate() == 0)
        #expect(!worker.log.contains("CROSSSLOT") && !worker.log.contains("certificate"), "\(worker.log.suffix(2000))")
    }

    /// A worker killed with kill -9 while its jobs run: another one reaps its in-flight lists (one per queue, on
    /// each queue's shard) and stores the outcomes it had acknowledged but not written (its per-queue journals).
    @Test(.enabled(if: ready, "needs the cluster of scripts/services.sh and DATABASE_URL"))
    func aKilledWorkersJobsAreReapedFromEveryShard() async throws {
        let namespace = "clk-" + Job.newJID().prefix(8)
        let keys = QueueKeys(namespace: String(namespace), cluster: true)
        let connection = try RedisConnection(RedisEndpoint(url: Self.url!))
        let queues = Self.queues(3, prefix: "k", on: connection, keys: keys)
        let redis = RedisThread(try RedisEndpoint(url: Self.url!), name: "cluster-reap-test")
        defer { redis.stop() }
        let prefix = "clk-\(Job.newJID().prefix(10))-"
        let total = 300
        try await JobClient(redis: redis, keys: keys).push(Self.envelopes(0..<total, queues: queues, prefix: prefix, jobClass: "sleep").map { job in
            var job = job
            job["args"] = .array([.object(["ms": 200])])
            return job
        })
        let arguments = ["--queues", queues.joined(separator: ","), "-c", "30", "--heartbeat-interval", "200ms", "--heartbeat-ttl", "2s", "--poll-interval", "100ms"]
        let doomed = try WorkerProcess(redisURL: Self.url!, namespace: String(namespace), arguments: arguments)
        let database = try PostgresConnection(url: Self.environment["DATABASE_URL"]!)
        try await eventually("the first worker finished some jobs", timeout: .seconds(60)) { doomed.succeeded.count >= 30 }
        try await doomed.kill9()
        let held = try queues.reduce(0) { sum, queue in
            let node = connection.master(of: keys.queue(queue))!
            let lists = try connection.pipeline([RedisCommand("KEYS", keys.prefix + "conveyor:" + keys.tag(queue) + ":inflight:*")], on: node)[0]
            return sum + (try lists.check().array ?? []).reduce(0) { $0 + ((try? connection.command("LLEN", $1.bytes!).int) ?? 0) }
        }
        #expect(held > 0, "the killed worker held jobs in flight")
        let heir = try WorkerProcess(redisURL: Self.url!, namespace: String(namespace), arguments: arguments)
        try await eventually("every job has its row", timeout: .seconds(120)) {
            (try? Self.rows(database, prefix: prefix))?.first == String(total)
        }
        #expect(try Self.rows(database, prefix: prefix) == [String(total), String(total), String(total)])
        try await eventually("every list is empty", timeout: .seconds(20)) { try Self.drained(connection, keys: keys, queues: queues) }
        #expect(heir.log.contains("reaped the jobs of a dead worker process"), "\(heir.log.suffix(3000))")
        // The killed worker's journals (one per queue, on each queue's shard) were stored and emptied, and their
        // orphan records forgotten.
        try await eventually("no journal or orphan record left", timeout: .seconds(20)) {
            for queue in queues {
                let node = connection.master(of: keys.queue(queue))!
                let journals = try connection.pipeline([RedisCommand("KEYS", keys.prefix + "conveyor:" + keys.tag(queue) + ":outcomes:*")], on: node)[0]
                if !(try journals.check().array ?? []).isEmpty { return false }
                if try connection.command("SCARD", keys.orphanedOutcomes(queue: queue)).check().int != 0 { return false }
            }
            return true
        }
        #expect(try await heir.terminate() == 0)
    }

    /// A batch of completions over queues on several masters, sent again as after a lost reply: each queue's
    /// transaction applies once (its own marker says so), nothing is counted twice.
    /// `conveyor queue pause` on a cluster: one SET on its own slot, which the cluster backend reads as the
    /// single-node one does; a paused queue is skipped by fetches and by the blocking wait, the others are not.
    @Test(.enabled(if: url != nil, "needs the cluster of scripts/services.sh"))
    func aPausedQueueIsNotFetchedOnACluster() async throws {
        let namespace = "clp-" + Job.newJID().prefix(8)
        let keys = QueueKeys(namespace: String(namespace), cluster: true)
        let endpoint = try RedisEndpoint(url: Self.url!)
        let connection = try RedisConnection(endpoint)
        let queues = Self.queues(2, prefix: "p", on: connection, keys: keys)
        let redis = RedisThread(endpoint, name: "cluster-pause-test")
        defer { redis.stop() }
        try await JobClient(redis: redis, keys: keys).push(Self.envelopes(0..<10, queues: queues, prefix: "p-"))
        #expect(try connection.command("SADD", keys.pausedQueues, queues[0]).check().int == 1)
        let backend = SidekiqBackend(redis: endpoint, keys: keys, identity: "pause-\(Job.newJID().prefix(6))", queues: queues)
        defer { backend.close() }
        let fetched = try await backend.fetch(from: queues, count: 10)
        #expect(fetched.count == 5)
        #expect(Set(fetched.map(\.queue)) == [queues[1]])
        #expect(try await backend.waitForJob(on: queues[0], timeout: 0.2) == nil)
        #expect(try connection.command("LLEN", keys.queue(queues[0])).check().int == 5, "the paused queue kept its jobs")
        _ = try connection.command("SREM", keys.pausedQueues, queues[0])
        try await eventually("a resumed queue is fetched again within a second", timeout: .seconds(5)) {
            try await backend.fetch(from: [queues[0]], count: 10).count == 5
        }
        let moves = fetched.map { JobTransitions.Move(receipt: $0.receipt, target: .ack, counts: .processed) }
        _ = try await backend.complete(moves, batch: 1, resent: false)
        try await backend.deregister()
    }

    @Test(.enabled(if: url != nil, "needs the cluster of scripts/services.sh"))
    func aResentBatchAppliesOncePerQueue() async throws {
        let namespace = "cls-" + Job.newJID().prefix(8)
        let keys = QueueKeys(namespace: String(namespace), cluster: true)
        let endpoint = try RedisEndpoint(url: Self.url!)
        let connection = try RedisConnection(endpoint)
        let queues = Self.queues(3, prefix: "s", on: connection, keys: keys)
        let redis = RedisThread(endpoint, name: "cluster-resend-test")
        defer { redis.stop() }
        try await JobClient(redis: redis, keys: keys).push(Self.envelopes(0..<30, queues: queues, prefix: "s-"))
        let backend = SidekiqBackend(redis: endpoint, keys: keys, identity: "resend-\(Job.newJID().prefix(6))", queues: queues)
        defer { backend.close() }
        let fetched = try await backend.fetch(from: queues, count: 30)
        #expect(fetched.count == 30)
        #expect(Set(fetched.map(\.queue)) == Set(queues))
        let moves = fetched.map { JobTransitions.Move(receipt: $0.receipt, target: .ack, counts: .processed) }
        // The first send applied; its reply "was lost": the resend must change nothing.
        #expect(try await backend.complete(moves, batch: 7, resent: false))
        #expect(try await backend.complete(moves, batch: 7, resent: true))
        for queue in queues {
            #expect(try connection.command("GET", keys.processed(queue: queue)).check().int == 10)
            #expect(try connection.command("LLEN", keys.inflight(backend.identity, queue: queue)).check().int == 0)
            #expect(try connection.command("GET", keys.acknowledged(backend.identity, queue: queue)).check().text == "7")
        }
        // A queue whose transaction had not applied is applied by the resend, the others are not sent again.
        try await JobClient(redis: redis, keys: keys).push(Self.envelopes(30..<60, queues: queues, prefix: "s-"))
        let more = try await backend.fetch(from: queues, count: 30)
        #expect(more.count == 30)
        let first = more.filter { $0.queue == queues[0] }.map { JobTransitions.Move(receipt: $0.receipt, target: .ack, counts: .processed) }
        #expect(try await backend.complete(first, batch: 8, resent: false))
        let all = more.map { JobTransitions.Move(receipt: $0.receipt, target: .ack, counts: .processed) }
        #expect(try await backend.complete(all, batch: 8, resent: true))
        for queue in queues {
            #expect(try connection.command("GET", keys.processed(queue: queue)).check().int == 20, "\(queue) counted once per job")
            #expect(try connection.command("LLEN", keys.inflight(backend.identity, queue: queue)).check().int == 0)
        }
        try await backend.deregister()
    }

    @Test(.enabled(if: url != nil, "needs the cluster of scripts/services.sh"))
    func retriesAndScheduledJobsComeBackOnTimeOnTheirQueuesShard() async throws {
        let namespace = "clr-" + Job.newJID().prefix(8)
        let keys = QueueKeys(namespace: String(namespace), cluster: true)
        let endpoint = try RedisEndpoint(url: Self.url!)
        let connection = try RedisConnection(endpoint)
        let queues = Self.queues(2, prefix: "r", on: connection, keys: keys)
        let redis = RedisThread(endpoint, name: "cluster-retry-test")
        defer { redis.stop() }
        let client = JobClient(redis: redis, keys: keys)

        let runs = Mutex<[String: [Double]]>([:])
        let policy = RetryPolicy(maxAttempts: 3, backoff: .exponential(base: 0.4, factor: 2, cap: 5, jitter: 0.25))
        var registry = JobRegistry()
        BuiltinJobs.register(into: &registry)
        registry.register(
            JobClass(
                "flaky", retry: policy,
                handler: ClosureHandler { job in
                    let n = runs.withLock { r in
                        r[job.jid, default: []].append(JobTime.now())
                        return r[job.jid]!.count
                    }
                    // Fails twice, then succeeds; "hopeless" always fails.
                    if n < 3 || job.arguments["hopeless"] != nil { throw JobFailure.transient("UpstreamDown", "not yet") }
                    return nil
                }))
        registry.register(
            JobClass("later", handler: ClosureHandler { job in
                runs.withLock { $0[job.jid, default: []].append(JobTime.now()) }
                return nil
            }))
        let flaky = try await client.enqueue("flaky", queue: queues[0])
        let hopeless = try await client.enqueue("flaky", arguments: ["hopeless": true], queue: queues[1])
        let at = JobTime.now() + 1.5
        let later = try await client.enqueue("later", queue: queues[1], at: at)
        // The scheduled job waits in its own queue's schedule, on that queue's shard.
        #expect(try connection.command("ZCARD", keys.schedule(queue: queues[1])).int == 1)
        #expect(connection.master(of: keys.schedule(queue: queues[1])) == connection.master(of: keys.queue(queues[1])))

        let identity = "cluster-retry-\(Job.newJID().prefix(6))"
        let configuration = WorkerConfiguration(
            queues: try QueueSelection(parsing: queues.joined(separator: ",")), concurrency: 4, shutdownTimeout: .seconds(5),
            heartbeatInterval: .milliseconds(200), heartbeatTTL: 30, pollInterval: .milliseconds(50), identity: identity)
        let backend = SidekiqBackend(redis: endpoint, keys: keys, identity: identity, queues: queues)
        let worker = Worker(backend: backend, registry: registry, configuration: configuration)
        let running = Task { try await worker.run() }
        defer { worker.shutdown() }

        try await eventually("the first failure waits in its queue's retry set", timeout: .seconds(10)) {
            try connection.command("ZCARD", keys.retry(queue: queues[0])).int == 1
        }
        try await eventually("the flaky job succeeded on its third run", timeout: .seconds(20)) { runs.withLock { $0[flaky]?.count } == 3 }
        try await eventually("the hopeless job is dead, in its queue's dead set", timeout: .seconds(20)) {
            try connection.command("ZCARD", keys.dead(queue: queues[1])).int == 1
        }
        try await eventually("the scheduled job ran", timeout: .seconds(10)) { runs.withLock { $0[later]?.count } == 1 }
        let times = runs.withLock { $0 }
        // Each retry waited its backoff; the scheduled job ran at its time, not before.
        let first = times[flaky]!
        #expect(first[1] - first[0] >= policy.delayBounds(retryCount: 0).lowerBound - 0.05)
        #expect(first[2] - first[1] >= policy.delayBounds(retryCount: 1).lowerBound - 0.05)
        #expect(times[hopeless]!.count == 3)
        #expect(times[later]![0] >= at - 0.01)
        let dead = try connection.command("ZRANGE", keys.dead(queue: queues[1]), 0, -1).check().array!
        #expect(try JSONValue(parsing: dead[0].bytes!)["jid"]?.stringValue == hopeless)
        // Acknowledged in batches: the last run's ack may still be on its way.
        try await eventually("counted on each queue's shard", timeout: .seconds(5)) {
            try Self.total(connection, queues.map { keys.failed(queue: $0) }) == 5
                && Self.total(connection, queues.map { keys.processed(queue: $0) }) == 7
        }
        #expect(try connection.command("ZCARD", keys.retry(queue: queues[0])).int == 0)
        #expect(try connection.command("ZCARD", keys.schedule(queue: queues[1])).int == 0)
        worker.shutdown()
        try await running.value

        // The operator commands read the queues' sets on their shards and sum them.
        let common = ["--redis-url", Self.url!, "--namespace", String(namespace), "--json"]
        let stats = try JSONValue(parsing: try Self.conveyor(["stats"] + common))
        #expect(stats["dead"]?.intValue == 1 && stats["processed"]?.intValue == 7 && stats["failed"]?.intValue == 5, "\(stats)")
        let listed = try JSONValue(parsing: try Self.conveyor(["dead", "list"] + common))
        #expect(listed["jobs"]?.arrayValue?.compactMap { $0["jid"]?.stringValue } == [hopeless], "\(listed)")
        _ = try Self.conveyor(["dead", "replay"] + common)
        #expect(try connection.command("ZCARD", keys.dead(queue: queues[1])).int == 0)
        let back = try connection.command("LRANGE", keys.queue(queues[1]), 0, -1).check().array ?? []
        #expect(back.count == 1 && (try? JSONValue(parsing: back[0].bytes!))?["jid"]?.stringValue == hopeless, "replayed onto its queue")
    }

    /// Runs the `conveyor` binary and returns its standard output; fails the test on a non-zero exit.
    static func conveyor(_ arguments: [String], environment extra: [String: String] = [:]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(environment["CONVEYOR_BIN"]))
        process.arguments = arguments
        if !extra.isEmpty { process.environment = environment.merging(extra) { _, new in new } }
        let out = Pipe()
        process.standardOutput = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "conveyor \(arguments.joined(separator: " ")): \(text)")
        return text
    }
}

extension ClusterWorkerTests {
    /// A direct connection to one node.
    static func node(_ node: RedisEndpoint.Node) throws -> RedisConnection {
        try RedisConnection(RedisEndpoint(address: .tcp(host: node.host, port: node.port)), connectTimeout: 2, commandTimeout: 5)
    }

    /// How many of `master`'s slots come before `slot`, itself included: what `redis-cli --cluster reshard` must
    /// move (it takes the source's lowest slots first) for `slot` to go.
    static func slotsUpTo(_ slot: Int, of master: RedisEndpoint.Node, on connection: RedisConnection) -> Int {
        (0...slot).filter { connection.master(ofSlot: $0) == master }.count
    }

    /// Two workers drain 20,000 jobs over six queues while (1) `redis-cli --cluster reshard` moves a busy queue's
    /// slot to another master, then (2) that master is killed with kill -9 and its replica takes over. The workers
    /// wait for one replica after each batch (`CONVEYOR_REDIS_WAIT_REPLICAS=1`), the jobs were replicated before:
    /// every job ends with exactly one succeeded row, nothing is left in any list.
    @Test(.enabled(if: ready, "needs the cluster of scripts/services.sh and DATABASE_URL"))
    func aSlotMovedThenAMasterKilledMidDrainLoseNoJob() async throws {
        let namespace = "clf-" + Job.newJID().prefix(8)
        let keys = QueueKeys(namespace: String(namespace), cluster: true)
        let endpoint = try RedisEndpoint(url: Self.url!)
        let connection = try RedisConnection(endpoint)
        // A queue whose slot is among the first its master serves, so a small reshard moves it; five more spread.
        var candidate = ""
        var i = 0
        while candidate.isEmpty {
            let name = "m\(i)"
            i += 1
            let slot = RedisClusterSlot.of(keys.queue(name))
            if let master = connection.master(ofSlot: slot), Self.slotsUpTo(slot, of: master, on: connection) <= 300 { candidate = name }
        }
        let moving = candidate
        // Workers take from earlier queues first: the moving queue, last, still holds jobs when its slot moves.
        let queues = Self.queues(5, prefix: "f", on: connection, keys: keys) + [moving]
        let movingSlot = RedisClusterSlot.of(keys.queue(moving))
        let source = try #require(connection.master(ofSlot: movingSlot))
        let target = try #require(connection.masters.first { $0 != source })

        let redis = RedisThread(endpoint, name: "cluster-failover-test")
        defer { redis.stop() }
        let client = JobClient(redis: redis, keys: keys)
        let prefix = "clf-\(Job.newJID().prefix(10))-"
        let total = 20_000
        for start in stride(from: 0, to: total, by: 1000) {
            try await client.push(Self.envelopes(start..<start + 1000, queues: queues, prefix: prefix, jobClass: "sleep").map { job in
                var job = job
                job["args"] = .array([.object(["ms": 2])])
                return job
            })
        }
        for master in connection.masters {
            #expect(try connection.pipeline([RedisCommand("WAIT", 1, 10_000)], on: master)[0].int == 1, "the jobs reached \(master)'s replica")
        }

        let arguments = ["--queues", queues.joined(separator: ","), "-c", "8", "--heartbeat-interval", "300ms", "--heartbeat-ttl", "5s", "--poll-interval", "200ms"]
        let environment = ["CONVEYOR_REDIS_WAIT_REPLICAS": "1", "CONVEYOR_REDIS_WAIT_TIMEOUT_MS": "200"]
        let a = try WorkerProcess(redisURL: Self.url!, namespace: String(namespace), arguments: arguments, environment: environment)
        let b = try WorkerProcess(redisURL: Self.url!, namespace: String(namespace), arguments: arguments, environment: environment)
        let watcher = RedisThread(endpoint, name: "cluster-failover-watch")
        defer { watcher.stop() }
        func processed() async -> Int {
            (try? await watcher.run { try Self.total($0, queues.map { keys.processed(queue: $0) }) }) ?? 0
        }
        try await eventually("a twentieth drained", timeout: .seconds(120)) { await processed() >= total / 20 }

        // (1) The reshard, while the workers drain the queue whose slot moves.
        let sourceID = try #require(try Self.node(source).command("CLUSTER", "MYID").check().text)
        let targetID = try #require(try Self.node(target).command("CLUSTER", "MYID").check().text)
        let count = Self.slotsUpTo(movingSlot, of: source, on: connection)
        let reshard = Process()
        reshard.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
        reshard.arguments = [
            "--cluster", "reshard", "\(source.host):\(source.port)", "--cluster-from", sourceID, "--cluster-to", targetID,
            "--cluster-slots", "\(count)", "--cluster-yes",
        ]
        let output = Pipe()
        reshard.standardOutput = output
        reshard.standardError = output
        reshard.standardInput = FileHandle.nullDevice
        let duringReshard = await processed()
        #expect(try connection.command("LLEN", keys.queue(moving)).check().int ?? 0 > 0)
        try reshard.run()
        let log = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        reshard.waitUntilExit()
        #expect(reshard.terminationStatus == 0, "\(log.suffix(2000))")
        #expect(duringReshard < total, "the slot moved mid-drain")
        let owner = try Self.node(target).command("CLUSTER", "COUNTKEYSINSLOT", movingSlot).check().int ?? 0
        #expect(owner > 0, "the moving queue's keys are on the target now")
        // The slot moved with jobs still queued: the workers, following MOVED and ASK, drain them on the new master.
        let moved = try Self.node(target)
        let left = try moved.command("LLEN", keys.queue(moving)).check().int ?? 0
        #expect(left > 0, "the moving queue still had jobs after its slot moved")

        // (2) kill -9 the master that now holds the moved slot.
        let before = await processed()
        #expect(before < total, "the master dies mid-drain")
        let info = try Self.node(target).command("INFO", "server").check().text ?? ""
        let pid = try #require(info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("process_id:") }.flatMap { Int32($0.dropFirst(11)) })
        kill(pid, SIGKILL)
        try await eventually("a replica took over the killed master's slots", timeout: .seconds(60)) {
            guard let survivor = connection.masters.first(where: { $0 != target }), let c = try? Self.node(survivor),
                let slots = try? c.command("CLUSTER", "SLOTS").check().array
            else { return false }
            return slots.contains { range in
                guard let parts = range.array, let first = parts[0].int, let last = parts[1].int, let master = parts[2].array else { return false }
                return (first...last).contains(movingSlot) && master[1].int != target.port
            }
        }

        let database = try PostgresConnection(url: Self.environment["DATABASE_URL"]!)
        try await eventually("every job has its row", timeout: .seconds(240)) {
            (try? Self.rows(database, prefix: prefix))?.first == String(total)
        }
        #expect(try Self.rows(database, prefix: prefix) == [String(total), String(total), String(total)], "one succeeded row per job")
        try await eventually("every list is empty", timeout: .seconds(30)) {
            guard let fresh = try? RedisConnection(endpoint) else { return false }
            return (try? Self.drained(fresh, keys: keys, queues: queues)) == true
        }
        #expect(a.log.contains("failed; retrying") || b.log.contains("failed; retrying"), "a worker lost the killed master")
        #expect(try await a.terminate() == 0)
        #expect(try await b.terminate() == 0)
    }
}
