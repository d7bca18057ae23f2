import ConveyorCore
import ConveyorTesting
import Crypto
import Curl
import Foundation
import Postgres
import Redis
import SidekiqQueue

@testable import Push

struct TestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A browser's subscription: the keys only the user agent holds, and the JSON the API stores.
struct TestSubscriber {
    let name: String
    let key = P256.KeyAgreement.PrivateKey()
    let auth: [UInt8] = (0..<16).map { _ in UInt8.random(in: 0...255) }

    func subscription(endpoint: String) -> JSONValue {
        .object(["endpoint": .string(endpoint),
                 "keys": .object(["p256dh": .string(Base64URL.encode(key.publicKey.x963Representation)), "auth": .string(Base64URL.encode(auth))])])
    }

    var standInEntry: (String, JSONValue) {
        (name, .object(["private_key": .string(Base64URL.encode(key.rawRepresentation)), "auth": .string(Base64URL.encode(auth))]))
    }
}

/// The Python stand-in push service (`push_service.py`) on a free loopback port; it exits when its stdin closes.
final class StandInPushService: @unchecked Sendable {
    let server: ScriptServer
    var port: Int { server.port }
    private let subscribersFile: URL

    init(subscribers: [TestSubscriber]) throws {
        subscribersFile = FileManager.default.temporaryDirectory.appendingPathComponent("push-subscribers-\(Job.newJID()).json")
        try Data(JSONValue.object(JSONObject(subscribers.map(\.standInEntry))).bytes).write(to: subscribersFile)
        // http-ece decrypts; scripts/setup.sh installs it.
        server = try ScriptServer(
            script: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("push_service.py"),
            arguments: [subscribersFile.path], portAfter: "PORT ")
    }

    deinit {
        server.stop()
        try? FileManager.default.removeItem(at: subscribersFile)
    }

    var base: String { "http://127.0.0.1:\(port)" }

    struct Entry {
        var t: Double
        var path: String
        var status: Int
        var payload: String?
        var error: String?
        var ttl: String?
        var urgency: String?
        var topic: String?
    }

    func log() throws -> [Entry] {
        let response = try CurlEasy().perform(HTTPRequest(url: base + "/log"))
        return try response.bodyText.split(separator: "\n").map { line in
            let o = try JSONValue(parsing: String(line))
            return Entry(t: o["t"]?.doubleValue ?? 0, path: o["path"]?.stringValue ?? "", status: o["status"]?.intValue ?? 0,
                         payload: o["payload"]?.stringValue, error: o["error"]?.stringValue, ttl: o["ttl"]?.stringValue,
                         urgency: o["urgency"]?.stringValue, topic: o["topic"]?.stringValue)
        }
    }

    func connections() throws -> Int {
        Int(try CurlEasy().perform(HTTPRequest(url: base + "/connections")).bodyText) ?? -1
    }
}

/// A `conveyor worker` serving `notifications` from the built binary, with a VAPID key and the test switch on.
final class PushWorker: @unchecked Sendable {
    let process = Process()
    let logURL: URL
    let namespace = "push-test-\(Job.newJID())"
    let vapid = VAPIDKey.generate()
    let client: JobClient

    init(extraEnvironment: [String: String] = [:]) throws {
        let environment = ProcessInfo.processInfo.environment
        guard let binary = environment["CONVEYOR_BIN"], let redisURL = environment["REDIS_URL"] else {
            throw TestError("CONVEYOR_BIN and REDIS_URL must be set: run the tests through scripts/test.sh")
        }
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("conveyor-push-worker-\(Job.newJID()).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["worker", "--redis-url", redisURL, "--namespace", namespace, "--queues", "notifications"]
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        process.environment = environment.merging([
            "CONVEYOR_VAPID_PRIVATE_KEY": vapid.privateKeyBase64URL, "CONVEYOR_VAPID_SUBJECT": "mailto:ops@conveyor.test",
            "CONVEYOR_PUSH_ALLOW_INSECURE_LOOPBACK": "1", "CONVEYOR_POLL_INTERVAL": "0.1", "CONVEYOR_CONCURRENCY": "32",
        ].merging(extraEnvironment) { _, new in new }) { _, new in new }
        try process.run()
        client = JobClient(redis: RedisThread(try RedisEndpoint(url: redisURL), name: "push-test-client"), keys: QueueKeys(namespace: namespace))
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: logURL)
    }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    func stop() async throws {
        kill(process.processIdentifier, SIGTERM)
        let process = process
        try await BlockingPool.shared.run { process.waitUntilExit() }
    }

    /// Enqueues `push.send` jobs in one round trip; returns their jids in order.
    func enqueue(_ arguments: [JSONObject], jobClass: String = "push.send") async throws -> [String] {
        let now = JobTime.now()
        let payloads = arguments.map { Job.envelope(jobClass: jobClass, arguments: $0, queue: "notifications", retry: nil, at: nil, now: now) }
        try await client.push(payloads)
        return payloads.map { $0["jid"]!.stringValue! }
    }
}

/// One job's recorded outcome in `conveyor.job_results`.
struct Outcome {
    var status: String
    var attempts: Int
    var result: JSONValue?
    var errorClass: String?
    var errorMessage: String?
}

enum Outcomes {
    static var databaseURL: String? { ProcessInfo.processInfo.environment["DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 } }

    /// Waits until every jid has its row (or the deadline passes) and returns the rows found.
    static func wait(for jids: [String], timeout: Duration = .seconds(120)) async throws -> [String: Outcome] {
        guard let url = databaseURL else { throw TestError("DATABASE_URL is not set") }
        let connection = try PostgresConnection(url: url)
        let array = "{" + jids.joined(separator: ",") + "}"
        let deadline = ContinuousClock.now + timeout
        var found: [String: Outcome] = [:]
        while true {
            let rows = try connection.query(
                "SELECT jid, status, attempts, result::text, error_class, error_message FROM conveyor.job_results WHERE jid = ANY($1::text[])", [array])
            for row in rows.rows {
                found[row[0]!] = Outcome(status: row[1] ?? "", attempts: Int(row[2] ?? "") ?? 0, result: row[3].flatMap { try? JSONValue(parsing: $0) },
                                         errorClass: row[4], errorMessage: row[5])
            }
            if found.count == jids.count || ContinuousClock.now >= deadline { return found }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    static func goneRows(jids: [String]) throws -> [String: (subscriptionID: String?, status: Int)] {
        guard let url = databaseURL else { throw TestError("DATABASE_URL is not set") }
        let connection = try PostgresConnection(url: url)
        let rows = try connection.query(
            "SELECT jid, subscription_id, status FROM conveyor.push_gone WHERE jid = ANY($1::text[])", ["{" + jids.joined(separator: ",") + "}"])
        var out: [String: (String?, Int)] = [:]
        for row in rows.rows { out[row[0]!] = (row[1], Int(row[2] ?? "") ?? 0) }
        return out
    }
}
