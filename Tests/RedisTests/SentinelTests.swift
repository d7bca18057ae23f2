import Foundation
import Redis
import Testing

/// `redis+sentinel://` against the test group (one master, one replica, three sentinels), through a failover.
///
/// The only user of the group: it kills the master; `scripts/services.sh start` makes the group afresh. (The
/// 20,000-job drain across a failover runs whole workers: ConveyorCoreTests' ProductionRedisTests.)
@Suite struct SentinelTests {
    @Test func threadFollowsTheMasterThroughAFailover() async throws {
        let endpoint = try RedisEndpoint(url: TestEnv.value("CONVEYOR_TEST_SENTINEL_URL"))
        guard case .sentinel(let sentinels, let name) = endpoint.address else { throw SetupError("not a sentinel URL") }
        func ask(_ node: RedisEndpoint.Node, _ arguments: any RedisArgument...) throws -> RedisReply {
            try RedisConnection(RedisEndpoint(address: .tcp(host: node.host, port: node.port)), commandTimeout: 2).command(RedisCommand(arguments)).check()
        }
        // Ready for a failover: every sentinel knows the replica and the two other sentinels.
        try await eventually("the sentinels know each other and the replica") {
            try sentinels.allSatisfy { node in
                try ask(node, "SENTINEL", "replicas", name).array?.count == 1 && ask(node, "SENTINEL", "sentinels", name).array?.count == 2
            }
        }

        let thread = RedisThread(endpoint, name: "sentinel-test", commandTimeout: 5)
        defer { thread.stop() }
        let key = TestEnv.unique("sentinel")
        let (oldPort, pid) = try await thread.run { connection in
            try connection.command("SET", key, "before").check()
            // Replicated before the kill: asynchronous replication could otherwise lose it.
            #expect(try connection.command("WAIT", 1, 2000).check().int == 1)
            let info = try connection.command("INFO", "server").check().text ?? ""
            let pid = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("process_id:") }.flatMap { Int32($0.dropFirst("process_id:".count)) }
            return (connection.server!.port, pid!)
        }
        #expect(try ask(sentinels[0], "SENTINEL", "get-master-addr-by-name", name).array?[1].int == oldPort)

        #expect(kill(pid, SIGKILL) == 0)
        try await eventually("the sentinels name a new master", timeout: .seconds(60)) {
            try ask(sentinels[0], "SENTINEL", "get-master-addr-by-name", name).array?[1].int != oldPort
        }
        let newPort = try ask(sentinels[0], "SENTINEL", "get-master-addr-by-name", name).array![1].int!

        // The same thread: its connection broke with the old master, the next one asks the sentinels again.
        try await eventually("the thread writes to the new master", timeout: .seconds(30)) {
            try await thread.run { try $0.command("SET", key + ":after", "after").check() } == .status("OK")
        }
        let (value, port) = try await thread.run { connection in
            (try connection.command("GET", key).check().text, connection.server?.port)
        }
        #expect(value == "before")
        #expect(port == newPort)
        _ = try? await thread.run { try $0.command("DEL", key, key + ":after") }
    }

    /// `rediss+sentinel://`: TLS to the sentinel and to the master it names, and the sentinel's own password
    /// (`CONVEYOR_REDIS_SENTINEL_PASSWORD`), which the data node does not have.
    @Test func tlsSentinelsWithAPasswordOfTheirOwn() async throws {
        let url = try TestEnv.value("CONVEYOR_TEST_TLS_SENTINEL_URL")
        let password = try TestEnv.value("CONVEYOR_TEST_SENTINEL_PASSWORD")
        let ca = try TestEnv.value("CONVEYOR_TEST_REDIS_CA_FILE")
        let endpoint = try RedisEndpoint(url: url, environment: ["CONVEYOR_REDIS_CA_FILE": ca, "CONVEYOR_REDIS_SENTINEL_PASSWORD": password])
        guard case .sentinel(let sentinels, let name) = endpoint.address, endpoint.tls != nil else { throw SetupError("not a TLS sentinel URL") }
        #expect(endpoint.password == nil)

        let connection = try RedisConnection(endpoint, commandTimeout: 5)
        let key = TestEnv.unique("tls-sentinel")
        #expect(try connection.command("SET", key, "over TLS").check() == .status("OK"))
        #expect(try connection.command("GET", key).check().text == "over TLS")
        #expect(try connection.command("ROLE").check().array?.first?.text == "master")
        // The master the sentinel names, asked over TLS with the password.
        var sentinelEndpoint = RedisEndpoint(address: .tcp(host: sentinels[0].host, port: sentinels[0].port), password: password, tls: endpoint.tls)
        sentinelEndpoint.database = 0
        let named = try RedisConnection(sentinelEndpoint, commandTimeout: 5).command("SENTINEL", "get-master-addr-by-name", name).check()
        #expect(connection.server?.port == named.array?[1].int)
        _ = try connection.command("DEL", key)

        // Without the sentinel's password, or with a wrong one: refused, saying so, never echoing the secret.
        let anonymous = try RedisEndpoint(url: url, environment: ["CONVEYOR_REDIS_CA_FILE": ca])
        let noPassword = failure { _ = try RedisConnection(anonymous, connectTimeout: 2, commandTimeout: 2) }
        #expect(noPassword?.contains("NOAUTH") == true, "\(noPassword ?? "connected")")
        let wrong = try RedisEndpoint(url: url, environment: ["CONVEYOR_REDIS_CA_FILE": ca, "CONVEYOR_REDIS_SENTINEL_PASSWORD": "not-the-secret"])
        let refused = failure { _ = try RedisConnection(wrong, connectTimeout: 2, commandTimeout: 2) }
        #expect(refused?.contains("AUTH") == true, "\(refused ?? "connected")")
        #expect(refused?.contains("not-the-secret") == false)
        // A sentinel ACL user with only what Conveyor asks of sentinels (docs/operations.md): finding the master,
        // and the +switch-master subscription.
        let admin = try RedisConnection(sentinelEndpoint, commandTimeout: 5)
        let user = TestEnv.unique("watcher")
        #expect(try admin.command(RedisCommand([
            "ACL", "SETUSER", user, "on", ">watch%pw", "resetchannels", "-@all", "+auth", "+ping", "+subscribe",
            "+sentinel|get-master-addr-by-name", "&+switch-master",
        ])).check() == .status("OK"))
        defer { _ = try? admin.command("ACL", "DELUSER", user) }
        let watcher = try RedisEndpoint(url: url, environment: [
            "CONVEYOR_REDIS_CA_FILE": ca, "CONVEYOR_REDIS_SENTINEL_USERNAME": user, "CONVEYOR_REDIS_SENTINEL_PASSWORD": "watch%pw",
        ])
        #expect(try RedisConnection(watcher, commandTimeout: 5).command("PING").check() == .status("PONG"))
        var asWatcher = sentinelEndpoint
        asWatcher.username = user
        asWatcher.password = "watch%pw"
        let subscriber = try RedisConnection(asWatcher, commandTimeout: 5)
        try subscriber.send(RedisCommand(["SUBSCRIBE", "+switch-master"]))
        #expect(try subscriber.nextReply(within: 5)?.array?.first?.text == "subscribe")
        let denied = try RedisConnection(asWatcher, commandTimeout: 5).command("SENTINEL", "masters")
        #expect(denied == .error("NOPERM this user has no permissions to run the 'sentinel|masters' command"))

        // Plain TCP to a TLS-only sentinel fails; it does not fall back.
        let plain = try RedisEndpoint(url: url.replacingOccurrences(of: "rediss+", with: "redis+"), environment: ["CONVEYOR_REDIS_SENTINEL_PASSWORD": password])
        #expect(failure { _ = try RedisConnection(plain, connectTimeout: 2, commandTimeout: 2) } != nil)
    }
}
