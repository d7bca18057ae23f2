import Foundation
import Redis
import Testing

/// `redis+sentinel://` against the test group (one master, one replica, three sentinels), through a failover.
///
/// The only user of the group: it kills the master; `scripts/services.sh start` makes the group afresh.
// TODO: the 20,000-job drain across a failover (issue 15): two workers, every jid exactly once in
// conveyor.job_results, no in-flight list left, `conveyor stats` against the sentinels.
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
}
