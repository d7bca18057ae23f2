import Foundation
import Redis
import Testing

@testable import ConveyorCore
import SidekiqQueue

/// `CONVEYOR_REDIS_WAIT_REPLICAS`: an enqueue and a batch of acknowledgements return only once a replica has them.
@Suite struct ReplicaWaitTests {
    @Test func enqueuesAndAcksAreOnTheReplicaWhenTheyReturn() async throws {
        let master = try PrivateRedis()
        let replica = try PrivateRedis(arguments: ["--replicaof", "127.0.0.1", "\(master.port)"])
        let masterThread = RedisThread(try RedisEndpoint(url: master.url), name: "wait-master")
        let replicaThread = RedisThread(try RedisEndpoint(url: replica.url), name: "wait-replica")
        defer {
            masterThread.stop()
            replicaThread.stop()
        }
        try await eventually("the replica is in sync", timeout: .seconds(20)) {
            try await masterThread.run { try $0.command("WAIT", 1, 100).check().int } == 1
        }
        let wait = ReplicaWait(replicas: 1, timeoutMilliseconds: 5000)
        let keys = QueueKeys(namespace: "wait")
        let client = JobClient(redis: masterThread, keys: keys, replicas: wait)
        for _ in 0..<20 {
            try await client.enqueue("noop")
            // Read right after the enqueue returned: no waiting for replication here.
            let onReplica = try await replicaThread.run { try $0.command("LLEN", keys.queue("default")).check().int ?? 0 }
            let onMaster = try await masterThread.run { try $0.command("LLEN", keys.queue("default")).check().int ?? 0 }
            #expect(onReplica == onMaster)
        }

        // A replica that does not answer: the enqueue waits its timeout out (the WAIT is in the round trip), then goes on.
        let stopped = try #require(replica.pid)
        kill(stopped, SIGSTOP)
        let slow = JobClient(redis: masterThread, keys: QueueKeys(namespace: "wait-stopped"), replicas: ReplicaWait(replicas: 1, timeoutMilliseconds: 300))
        let started = ContinuousClock.now
        try await slow.enqueue("noop")
        #expect(ContinuousClock.now - started >= .milliseconds(300))
        kill(stopped, SIGCONT)

        let configuration = WorkerConfiguration(queues: try QueueSelection(parsing: "default"), concurrency: 4)
        let backend = SidekiqBackend(redis: try RedisEndpoint(url: master.url), keys: keys, identity: configuration.identity, replicas: wait)
        var registry = JobRegistry()
        BuiltinJobs.register(into: &registry)
        let worker = Worker(backend: backend, registry: registry, configuration: configuration)
        let running = Task { try await worker.run() }
        try await eventually("the jobs ran", timeout: .seconds(30)) {
            try await masterThread.run { try $0.command("GET", keys.processed).check().text } == "20"
        }
        worker.shutdown()
        try await running.value
        // The last batch's completions returned after WAIT: the replica counted them all.
        #expect(try await replicaThread.run { try $0.command("GET", keys.processed).check().text } == "20")
        #expect(try await replicaThread.run { try $0.command("LLEN", keys.inflight(configuration.identity)).check().int } == 0)
    }
}
