import Foundation
import Redis
import Testing

/// Redis Cluster: key slots against the values Redis itself gives, URL parsing, and routing over the cluster
/// scripts/services.sh starts (three masters, three replicas). Serialized: one test moves a slot under the others.
@Suite(.serialized) struct ClusterTests {
    static let url = ProcessInfo.processInfo.environment["CONVEYOR_TEST_REDIS_CLUSTER_URL"]
    /// Three TLS-only masters (`rediss+cluster://`), the cluster bus over TLS too.
    static let tlsURL = ProcessInfo.processInfo.environment["CONVEYOR_TEST_REDIS_TLS_CLUSTER_URL"]

    @Test func slotsMatchRedis() {
        // The specification's check value of CRC16-XMODEM, and slots `redis-cli cluster keyslot` reports.
        #expect(RedisClusterSlot.crc16(Array("123456789".utf8)) == 0x31C3)
        #expect(RedisClusterSlot.of("123456789") == 12739)
        #expect(RedisClusterSlot.of("foo") == 12182)
        #expect(RedisClusterSlot.of("bar") == 5061)
        #expect(RedisClusterSlot.of("queue:media") == 15853)
        // Hash tags: the first {...} that is not empty; otherwise the whole key.
        #expect(RedisClusterSlot.of("{user1000}.following") == 3443)
        #expect(RedisClusterSlot.of("foo{}{bar}") == 8363)
        #expect(RedisClusterSlot.of("foo{{bar}}zap") == 4015)
        #expect(RedisClusterSlot.of("foo{bar}{zap}") == 5061)
        #expect(RedisClusterSlot.of("conveyor:{queue:media}:inflight:x") == 15853)
        #expect(RedisClusterSlot.of("{") == RedisClusterSlot.of(Array("{".utf8)))
    }

    @Test func parsesClusterURLs() throws {
        let endpoint = try RedisEndpoint(url: "redis+cluster://u:p%40ss@10.0.0.1:7000,10.0.0.2,[::1]:7002")
        #expect(
            endpoint.address == .cluster(nodes: [.init(host: "10.0.0.1", port: 7000), .init(host: "10.0.0.2", port: 6379), .init(host: "::1", port: 7002)]))
        #expect(endpoint.username == "u" && endpoint.password == "p@ss")
        #expect(endpoint.tls == nil)
        #expect(endpoint.description == "redis+cluster://10.0.0.1:7000,10.0.0.2:6379,[::1]:7002")
        #expect(try RedisEndpoint(url: "rediss+cluster://h:7000").tls != nil)
        #expect(throws: RedisError.self) { try RedisEndpoint(url: "redis+cluster://h:7000/2") }
        #expect(throws: RedisError.self) { try RedisEndpoint(url: "redis+cluster://") }
    }

    @Test(.enabled(if: url != nil, "needs the cluster of scripts/services.sh"))
    func routesEveryKeyToItsMaster() throws {
        let connection = try RedisConnection(RedisEndpoint(url: Self.url!))
        #expect(connection.isCluster)
        #expect(connection.masters.count >= 3)
        let prefix = TestEnv.unique("route")
        let keys = (0..<300).map { "\(prefix):\($0)" }
        // One pipeline over every shard, answered in order.
        let sets = try connection.pipeline(keys.map { RedisCommand("SET", $0, "v-" + $0, "EX", 60) })
        #expect(sets.allSatisfy { $0 == .status("OK") })
        let gets = try connection.pipeline(keys.map { RedisCommand("GET", $0) })
        #expect(gets.map(\.text) == keys.map { "v-" + $0 })
        // The keys really are spread, each on the master the server's own hashing names.
        let owners = Set(keys.compactMap { connection.master(of: $0) })
        #expect(owners.count == connection.masters.count)
        for key in keys.prefix(20) {
            let node = try #require(connection.master(of: key))
            let direct = try RedisConnection(RedisEndpoint(address: .tcp(host: node.host, port: node.port)))
            #expect(try direct.command("CLUSTER", "KEYSLOT", key).int == RedisClusterSlot.of(key))
            #expect(try direct.command("GET", key).text == "v-" + key)
        }
        // A transaction on one slot goes whole to its master.
        let tag = "{\(prefix)}"
        let tx = try connection.pipeline([
            RedisCommand("MULTI"), RedisCommand("INCRBY", tag + ":a", 2), RedisCommand("INCRBY", tag + ":b", 3), RedisCommand("EXEC"),
        ])
        #expect(tx.last == .array([.integer(2), .integer(3)]))
        // Keys of different slots in one command: the server's refusal comes back as it is.
        let cross = try connection.command("MGET", keys[0], keys[1], keys[2], keys[3])
        if case .error(let message) = cross { #expect(message.hasPrefix("CROSSSLOT")) } else { Issue.record("expected CROSSSLOT, got \(cross)") }
        _ = try connection.pipeline(keys.map { RedisCommand("DEL", $0) } + [RedisCommand("DEL", tag + ":a"), RedisCommand("DEL", tag + ":b")])
    }

    /// A `WAIT` after writes to every master (a producer's pushes to queues on several shards): each master that took
    /// a write is asked, and the answer is the fewest replicas any of them confirmed.
    @Test(.enabled(if: url != nil, "needs the cluster of scripts/services.sh"))
    func aWaitAfterWritesToSeveralMastersAsksEachOfThem() throws {
        let connection = try RedisConnection(RedisEndpoint(url: Self.url!))
        let masters = connection.masters
        func direct(_ node: RedisEndpoint.Node) throws -> RedisConnection {
            try RedisConnection(RedisEndpoint(address: .tcp(host: node.host, port: node.port)))
        }
        func waits(_ node: RedisEndpoint.Node) throws -> Int {
            let stats = try direct(node).command("INFO", "commandstats").check().text ?? ""
            guard let line = stats.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_wait:") }),
                let calls = line.split(separator: ",").first?.split(separator: "=").last
            else { return 0 }
            return Int(calls) ?? 0
        }
        // One key per master, then one WAIT, in one pipeline.
        var keys: [String] = []
        for master in masters {
            var key: String
            repeat { key = TestEnv.unique("wait") } while connection.master(of: key) != master
            keys.append(key)
        }
        let before = try masters.map(waits)
        let replies = try connection.pipeline(keys.map { RedisCommand("SET", $0, "v", "EX", 60) } + [RedisCommand("WAIT", 1, 2000)])
        #expect(try masters.map(waits) == before.map { $0 + 1 }, "every master that took a write was asked")
        // The fewest any master reached: 0 where a master has no replica (a master an earlier test killed is
        // replaced by its replica, which has none).
        let replicated = try masters.map { node -> Int in
            (try direct(node).command("INFO", "replication").check().text ?? "").contains("connected_slaves:0") ? 0 : 1
        }
        #expect(replies.last == .integer(replicated.min()!), "\(replies)")
        _ = try connection.pipeline(keys.map { RedisCommand("DEL", $0) })
    }

    /// `rediss+cluster://`: the slot map's nodes are reached over TLS as the seed was (each verified against the CA
    /// by its address), keys spread over the three, a slot given to another master is followed by `MOVED` to a TLS
    /// node, and a client trusting another CA is refused.
    @Test(.enabled(if: tlsURL != nil, "needs the TLS cluster of scripts/services.sh"))
    func routesOverTLSAndFollowsMovedToAnotherTLSNode() throws {
        let endpoint = try TestEnv.tls(url: Self.tlsURL!, certificate: false)
        let connection = try RedisConnection(endpoint)
        #expect(connection.isCluster)
        #expect(connection.masters.count == 3)
        func direct(_ node: RedisEndpoint.Node) throws -> RedisConnection {
            var one = endpoint
            one.address = .tcp(host: node.host, port: node.port)
            return try RedisConnection(one)
        }
        let prefix = TestEnv.unique("tls-route")
        let keys = (0..<300).map { "\(prefix):\($0)" }
        #expect(try connection.pipeline(keys.map { RedisCommand("SET", $0, "v-" + $0, "EX", 60) }).allSatisfy { $0 == .status("OK") })
        #expect(try connection.pipeline(keys.map { RedisCommand("GET", $0) }).map(\.text) == keys.map { "v-" + $0 })
        #expect(Set(keys.compactMap { connection.master(of: $0) }).count == 3)
        for key in keys.prefix(5) {
            #expect(try direct(try #require(connection.master(of: key))).command("GET", key).text == "v-" + key)
        }

        // A slot nobody has written yet, given to another master: the next command is redirected there, over TLS.
        var fresh = ""
        repeat {
            fresh = "{\(TestEnv.unique("tls-moved"))}:k"
        } while try direct(try #require(connection.master(of: fresh))).command("CLUSTER", "COUNTKEYSINSLOT", RedisClusterSlot.of(fresh)).int != 0
        let source = try #require(connection.master(of: fresh))
        let target = try #require(connection.masters.first { $0 != source })
        let targetID = try #require(try direct(target).command("CLUSTER", "MYID").check().text)
        for node in connection.masters {
            try direct(node).command("CLUSTER", "SETSLOT", RedisClusterSlot.of(fresh), "NODE", targetID).check()
        }
        #expect(try connection.command("SET", fresh, "moved", "EX", 60).check() == .status("OK"))
        #expect(connection.master(of: fresh) == target)
        #expect(try direct(target).command("GET", fresh).text == "moved")
        #expect(!connection.isBroken)

        let otherCA = try TestEnv.value("CONVEYOR_TEST_REDIS_OTHER_CA_FILE")
        let refused = failure { _ = try RedisConnection(TestEnv.tls(url: Self.tlsURL!, ca: otherCA, certificate: false)) }
        #expect(refused?.contains("certificate was refused") == true, "\(refused ?? "no error")")
        _ = try connection.pipeline(keys.map { RedisCommand("DEL", $0) } + [RedisCommand("DEL", fresh)])
    }

    /// A slot moved by hand, step by step as `redis-cli --cluster reshard` does: `ASK` while it migrates (new keys go
    /// to the importing node), then `MOVED` once it is assigned, each followed transparently.
    @Test(.enabled(if: url != nil, "needs the cluster of scripts/services.sh"))
    func followsAskWhileASlotMigratesThenMoved() throws {
        let connection = try RedisConnection(RedisEndpoint(url: Self.url!))
        let tag = "{\(TestEnv.unique("migrate"))}"
        let old = "\(tag):old"
        let new = "\(tag):new"
        let slot = RedisClusterSlot.of(old)
        #expect(try connection.command("SET", old, "before").check() == .status("OK"))
        let source = try #require(connection.master(of: old))
        let target = try #require(connection.masters.first { $0 != source })
        func direct(_ node: RedisEndpoint.Node) throws -> RedisConnection {
            try RedisConnection(RedisEndpoint(address: .tcp(host: node.host, port: node.port)))
        }
        let from = try direct(source)
        let to = try direct(target)
        let fromID = try #require(try from.command("CLUSTER", "MYID").check().text)
        let toID = try #require(try to.command("CLUSTER", "MYID").check().text)
        try to.command("CLUSTER", "SETSLOT", slot, "IMPORTING", fromID).check()
        try from.command("CLUSTER", "SETSLOT", slot, "MIGRATING", toID).check()

        // A key the source does not have: ASK, and it is written on the importing node.
        #expect(try connection.command("SET", new, "during").check() == .status("OK"))
        #expect(try to.pipeline([RedisCommand("ASKING"), RedisCommand("GET", new)]).last?.text == "during")
        // The source does not have it: it sends a plain client there too.
        let asked = try from.command("GET", new)
        #expect(asked == .error("ASK \(slot) \(target)"))
        // A key still on the source is served there.
        #expect(try connection.command("GET", old).text == "before")
        try from.command("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", old).check()
        // Migrated: the source answers ASK, the client follows.
        #expect(try connection.command("GET", old).text == "before")
        // Assigned: every master learns the new owner; the client's next command gets MOVED and its map follows.
        for node in connection.masters {
            try direct(node).command("CLUSTER", "SETSLOT", slot, "NODE", toID).check()
        }
        #expect(try connection.pipeline([RedisCommand("GET", old), RedisCommand("GET", new)]).map(\.text) == ["before", "during"])
        #expect(connection.master(of: old) == target)
        #expect(!connection.isBroken)
        _ = try connection.pipeline([RedisCommand("DEL", old), RedisCommand("DEL", new)])
    }

    /// A replica taking over its master by `CLUSTER FAILOVER` (the old master stays up, as a replica): the
    /// connection's map is stale, the old master answers `MOVED`, and the client follows it to the new master.
    @Test(.enabled(if: url != nil, "needs the cluster of scripts/services.sh"))
    func followsAFailoverByMoved() async throws {
        let connection = try RedisConnection(RedisEndpoint(url: Self.url!))
        // A key on a master that has a replica (an earlier test may have killed a master: its successor has none).
        var found: (key: String, node: RedisConnection)?
        for _ in 0..<100 where found == nil {
            let key = TestEnv.unique("failover")
            let master = try #require(connection.master(of: key))
            let node = try RedisConnection(RedisEndpoint(address: .tcp(host: master.host, port: master.port)))
            if (try node.command("INFO", "replication").check().text ?? "").contains("connected_slaves:1") { found = (key, node) }
        }
        let (key, oldNode) = try #require(found)
        #expect(try connection.command("SET", key, "kept", "EX", 60).check() == .status("OK"))
        #expect(try oldNode.command("WAIT", 1, 5000).int == 1)
        // The replica of that master, from the master's own view of its replication.
        let info = try oldNode.command("INFO", "replication").check().text ?? ""
        let line = try #require(info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("slave0:") })
        let fields = Dictionary(uniqueKeysWithValues: line.dropFirst(7).split(separator: ",").compactMap { pair -> (String, String)? in
            let kv = pair.split(separator: "=", maxSplits: 1)
            return kv.count == 2 ? (String(kv[0]), String(kv[1])) : nil
        })
        let replica = RedisEndpoint.Node(host: fields["ip"] ?? "127.0.0.1", port: try #require(fields["port"].flatMap { Int($0) }))
        let replicaNode = try RedisConnection(RedisEndpoint(address: .tcp(host: replica.host, port: replica.port)))
        try replicaNode.command("CLUSTER", "FAILOVER").check()
        try await eventually("the replica took over", timeout: .seconds(20)) {
            try replicaNode.command("ROLE").check().array?.first?.text == "master"
                && (try oldNode.command("ROLE").check().array?.first?.text) == "slave"
        }
        // The stale map still names the old master; its MOVED leads to the new one.
        #expect(try connection.command("GET", key).text == "kept")
        #expect(try connection.command("SET", key, "after", "EX", 60).check() == .status("OK"))
        #expect(connection.master(of: key) == replica)
        #expect(try replicaNode.command("GET", key).text == "after")
        #expect(!connection.isBroken)
        _ = try connection.command("DEL", key)
    }
}
