import Foundation
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
