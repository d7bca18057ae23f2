import Foundation
import Redis
import Synchronization
import Testing

@testable import ConveyorCore
import SidekiqQueue

/// A real Redis for one test: the server `make test` started (`REDIS_URL`), a namespace of the test's own.
final class TestRedis: Sendable {
    let endpoint: RedisEndpoint
    let keys: QueueKeys
    let thread: RedisThread
    let namespace: String

    /// - Parameters:
    ///   - url: the server; nil: `REDIS_URL`.
    ///   - cluster: the cluster layout (`url` names a Redis Cluster).
    init(_ name: String = #function, url: String? = nil, cluster: Bool = false) throws {
        guard let url = url ?? ProcessInfo.processInfo.environment["REDIS_URL"] else {
            throw TestSetupError("REDIS_URL is not set: run the tests through `make test`, which starts Redis")
        }
        endpoint = try RedisEndpoint(url: url)
        namespace = "test-\(name.prefix(while: { $0 != "(" }))-\(Job.newJID().prefix(8))"
        keys = QueueKeys(namespace: namespace, cluster: cluster)
        thread = RedisThread(endpoint, name: "test-redis")
    }

    deinit { thread.stop() }

    var client: JobClient { JobClient(redis: thread, keys: keys) }

    @discardableResult
    func command(_ arguments: any RedisArgument...) async throws -> RedisReply {
        let command = RedisCommand(arguments)
        return try await thread.run { try $0.command(command).check() }
    }

    func int(_ arguments: any RedisArgument...) async throws -> Int {
        let command = RedisCommand(arguments)
        return try await thread.run { try $0.command(command).check().int ?? 0 }
    }

    /// The members of a sorted set or list, parsed.
    func jobs(inSet key: String) async throws -> [JSONObject] {
        try await command("ZRANGE", key, 0, -1).array!.compactMap { try JSONValue(parsing: $0.bytes!).objectValue }
    }

    func jobs(inList key: String) async throws -> [JSONObject] {
        try await command("LRANGE", key, 0, -1).array!.compactMap { try JSONValue(parsing: $0.bytes!).objectValue }
    }

    /// Deletes every key of this test's namespace.
    func clean() async throws {
        let pattern = keys.prefix + "*"
        try await thread.run { connection in
            let found = try connection.command("KEYS", pattern).check().array ?? []
            if !found.isEmpty { try connection.command(RedisCommand(["DEL"] + found.compactMap(\.bytes))).check() }
        }
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Waits until `condition` holds, checking every 20 ms; fails the test after `timeout`.
func eventually(
    _ what: String, timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("timed out after \(timeout) waiting for: \(what)", sourceLocation: sourceLocation)
    throw TestSetupError("timed out waiting for \(what)")
}

/// Records what handlers saw, for assertions.
final class Recorder: Sendable {
    private let state = Mutex<(order: [String], starts: [String: [Double]], running: [String: Int], maxRunning: [String: Int])>(
        ([], [:], [:], [:]))

    func start(_ jid: String, _ jobClass: String) {
        state.withLock { s in
            s.order.append(jid)
            s.starts[jid, default: []].append(JobTime.now())
            s.running[jobClass, default: 0] += 1
            s.maxRunning[jobClass] = max(s.maxRunning[jobClass, default: 0], s.running[jobClass]!)
        }
    }

    func end(_ jobClass: String) { state.withLock { $0.running[jobClass, default: 1] -= 1 } }

    var order: [String] { state.withLock { $0.order } }
    func starts(_ jid: String) -> [Double] { state.withLock { $0.starts[jid] ?? [] } }
    func maxRunning(_ jobClass: String) -> Int { state.withLock { $0.maxRunning[jobClass] ?? 0 } }
    func running(_ jobClass: String) -> Int { state.withLock { $0.running[jobClass] ?? 0 } }
}

/// A worker running in this test process, stopped (gracefully) at the end of `body`.
func withWorker<T>(
    _ redis: TestRedis, registry: JobRegistry, queues: String = "default", concurrency: Int = 4,
    shutdownTimeout: Duration = .seconds(5), heartbeatTTL: Int = 30, identity: String? = nil,
    deadSet: DeadSetLimits = DeadSetLimits(),
    _ body: (Worker) async throws -> T
) async throws -> T {
    let configuration = WorkerConfiguration(
        queues: try QueueSelection(parsing: queues), concurrency: concurrency, shutdownTimeout: shutdownTimeout,
        heartbeatInterval: .milliseconds(200), heartbeatTTL: heartbeatTTL, pollInterval: .milliseconds(50),
        identity: identity)
    let worker = Worker(redis: redis.endpoint, keys: redis.keys, deadSet: deadSet, registry: registry, configuration: configuration)
    let running = Task { try await worker.run() }
    do {
        let result = try await body(worker)
        worker.shutdown()
        try await running.value
        return result
    } catch {
        worker.shutdown()
        _ = try? await running.value
        throw error
    }
}
