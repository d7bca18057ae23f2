import Foundation
import Redis
import Testing

/// Conveyor's own socket, RESP encoder and hiredis' reader, against the plain test Redis.
@Suite struct TransportTests {
    @Test func commandsAndALargePipeline() throws {
        let redis = try RedisConnection(TestEnv.plain())
        let key = TestEnv.unique("transport")
        defer { _ = try? redis.command("DEL", key, key + ":big") }
        #expect(try redis.command("PING") == .status("PONG"))
        // Binary safe, empty arguments, and replies far larger than one read buffer.
        let big = [UInt8]((0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try redis.command("SET", key + ":big", big).check()
        #expect(try redis.command("GET", key + ":big").bytes == big)
        try redis.command("SET", key, [UInt8]()).check()
        #expect(try redis.command("GET", key) == .string([]))
        let pushes = (0..<5000).map { RedisCommand("RPUSH", key + ":list", $0) }
        let replies = try redis.pipeline(pushes + [RedisCommand("LRANGE", key + ":list", 0, -1), RedisCommand("DEL", key + ":list")])
        #expect(replies.count == 5002)
        #expect(replies[4999] == .integer(5000))
        #expect(replies[5000].array?.count == 5000)
        #expect(replies[5000].array?.last?.int == 4999)
        // Lengths across each digit boundary of the RESP headers, and integers at their extremes.
        for n in [0, 1, 9, 10, 99, 100, 999, 1000, 65_535, 65_536] {
            let value = [UInt8](repeating: UInt8(ascii: "x"), count: n)
            #expect(try redis.command("SET", key, value).check() == .status("OK"))
            #expect(try redis.command("STRLEN", key).int == n)
        }
        for n in [0, -1, 10, Int.max, Int.min] {
            try redis.command("SET", key, n).check()
            #expect(try redis.command("GET", key).text == String(n))
        }
        #expect(try redis.command("ECHO", "\r\n$3\r\n*1\r\n").text == "\r\n$3\r\n*1\r\n", "RESP in an argument stays data")
        #expect(try redis.command("NOSUCHCOMMAND").isError)
        #expect(!redis.isBroken, "an error reply leaves the connection usable")
    }

    @Test func commandTimeoutBreaksTheConnection() throws {
        let redis = try RedisConnection(TestEnv.plain(), commandTimeout: 0.2)
        let message = failure { try redis.command("BLPOP", TestEnv.unique("never"), 2) }
        #expect(message?.contains("timed out") == true, "\(message ?? "no error")")
        #expect(redis.isBroken)
        #expect(throws: RedisError.self) { try redis.command("PING") }
    }

    @Test func aServerClosingTheConnectionBreaksIt() throws {
        let redis = try RedisConnection(TestEnv.plain())
        let admin = try RedisConnection(TestEnv.plain())
        let id = try #require(redis.command("CLIENT", "ID").int)
        try admin.command("CLIENT", "KILL", "ID", id).check()
        let message = failure { try redis.command("PING") }
        #expect(message?.contains("closed") == true, "\(message ?? "no error")")
        #expect(redis.isBroken)
    }

    @Test func threadReconnectsAfterTheConnectionBreaks() async throws {
        let thread = RedisThread(try TestEnv.plain(), name: "transport-reconnect")
        defer { thread.stop() }
        let admin = try RedisConnection(TestEnv.plain())
        let first = try await thread.run { try $0.command("CLIENT", "ID").int! }
        try admin.command("CLIENT", "KILL", "ID", first).check()
        await #expect(throws: RedisError.self) { try await thread.run { try $0.command("PING") } }
        let second = try await thread.run { try $0.command("CLIENT", "ID").int! }
        #expect(second != first)
    }

    @Test func refusedConnectionNamesTheEndpoint() {
        let message = failure { _ = try RedisConnection(RedisEndpoint(url: "redis://:hunter2@127.0.0.1:1/0")) }
        #expect(message?.contains("redis://127.0.0.1:1/0") == true, "\(message ?? "no error")")
        #expect(message?.contains("refused") == true, "\(message ?? "no error")")
        #expect(message?.contains("hunter2") == false)
    }

    @Test func unixSocket() throws {
        let path = try TestEnv.value("CONVEYOR_TEST_REDIS_SOCKET")
        let redis = try RedisConnection(RedisEndpoint(url: "unix://\(path)?db=1"))
        #expect(try redis.command("PING") == .status("PONG"))
        #expect(try redis.command("CLIENT", "INFO").text?.contains("db=1") == true)
    }

    @Test func hostNameTriesEveryAddress() throws {
        guard case .tcp(_, let port) = try TestEnv.plain().address else { return }
        // The test Redis listens on 127.0.0.1 only: "localhost" resolves to ::1 first on some hosts, then 127.0.0.1.
        let redis = try RedisConnection(RedisEndpoint(address: .tcp(host: "localhost", port: port)))
        #expect(try redis.command("PING") == .status("PONG"))
    }
}

extension RedisReply {
    var isError: Bool { if case .error = self { true } else { false } }
}
