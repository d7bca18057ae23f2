import ConveyorCore
import Foundation
import Redis
import SidekiqQueue
import Synchronization
import Testing

/// An ACL user with only the commands Conveyor sends (docs/operations.md, "Production Redis") runs a worker.
@Suite struct ACLTests {
    /// The ACL rules of docs/operations.md, after `ACL SETUSER <name> on >password`.
    static let rules = """
        resetkeys ~* resetchannels -@all +ping +select +auth +hello +role +multi +exec +discard +eval +time \
        +blmove +lmove +lpush +rpush +rpop +lrange +lrem +llen +lindex \
        +zadd +zrem +zcard +zrangebyscore +zrevrange +zremrangebyrank +zremrangebyscore \
        +sadd +srem +smembers +sismember +hset +hget +hmget +hdel +hexists +hincrby +hscan \
        +set +get +del +unlink +expire +exists +incrby +zrange +ltrim
        """

    @Test func workerRunsAsAnACLUserWithAPercentEncodedPassword() async throws {
        let admin = try RedisConnection(TestEnv.plain())
        let user = TestEnv.unique("conveyor-acl")
        let password = "p@ss/w:rd%"
        try admin.command(RedisCommand(["ACL", "SETUSER", user, "reset", "on", ">" + password] + Self.rules.split(separator: " ").map(String.init))).check()
        defer { _ = try? admin.command("ACL", "DELUSER", user) }
        guard case .tcp(let host, let port) = try TestEnv.plain().address else { return }
        let url = "redis://\(user):p%40ss%2Fw%3Ard%25@\(host):\(port)/0"
        let endpoint = try RedisEndpoint(url: url)
        #expect(endpoint.password == password)

        let restricted = try RedisConnection(endpoint)
        #expect(try restricted.command("PING") == .status("PONG"))
        #expect(try restricted.command("FLUSHALL").isError, "the user cannot run what Conveyor never sends")
        let wrong = failure { _ = try RedisConnection(RedisEndpoint(url: "redis://\(user):not-it%21@\(host):\(port)/0")) }
        #expect(wrong?.contains("WRONGPASS") == true, "\(wrong ?? "no error")")
        #expect(wrong?.contains("not-it") == false)

        let keys = QueueKeys(namespace: TestEnv.unique("acl"))
        let thread = RedisThread(endpoint, name: "acl-client")
        defer { thread.stop() }
        let client = JobClient(redis: thread, keys: keys)
        let done = Mutex(0)
        var registry = JobRegistry()
        registry.register(JobClass("acl.ok", handler: ClosureHandler { _ in
            done.withLock { $0 += 1 }
            return [:]
        }))
        struct Refused: Error {}
        let once = RetryPolicy(maxAttempts: 2, backoff: .exponential(base: 0.05, factor: 1, cap: 0.1, jitter: 0))
        registry.register(JobClass("acl.fails", retry: once, handler: ClosureHandler { _ in throw Refused() }))
        for i in 0..<20 { try await client.enqueue("acl.ok", arguments: ["n": JSONValue(i)]) }
        try await client.enqueue("acl.fails")
        try await client.enqueue("acl.ok", at: JobTime.now() + 0.3)
        let configuration = WorkerConfiguration(
            queues: try QueueSelection(parsing: "default"), concurrency: 4, shutdownTimeout: .seconds(5),
            heartbeatInterval: .milliseconds(200), pollInterval: .milliseconds(50))
        let worker = Worker(redis: endpoint, keys: keys, registry: registry, configuration: configuration)
        let running = Task { try await worker.run() }
        defer { worker.shutdown() }
        try await eventually("21 jobs done and the failing one dead") {
            let dead = try admin.command("ZCARD", keys.dead).int ?? 0
            return done.withLock { $0 } == 21 && dead == 1
        }
        worker.shutdown()
        try await running.value
        #expect(try admin.command("LLEN", keys.inflight(configuration.identity)).int == 0)
        let found = try admin.command("KEYS", keys.prefix + "*").array?.compactMap(\.bytes) ?? []
        if !found.isEmpty { try admin.command(RedisCommand(["DEL"] + found)).check() }
    }
}
