import Foundation
import Redis
import Testing

@testable import BullMQQueue
import ConveyorCore

struct PeerError: Error, CustomStringConvertible {
    var description: String
}

/// The Python `bullmq` package (the real BullMQ) driven through `bullmq_peer.py`, and a Redis of the test's own prefix.
struct BullMQPeer {
    let url: String
    let prefix: String
    let endpoint: RedisEndpoint
    let redis: RedisThread

    init(_ name: String = #function) throws {
        guard let url = ProcessInfo.processInfo.environment["REDIS_URL"] else { throw PeerError(description: "REDIS_URL is not set") }
        self.url = url
        prefix = "bt\(name.prefix(while: { $0.isLetter }).prefix(20))\(Job.newJID().prefix(6))"
        endpoint = try RedisEndpoint(url: url)
        redis = RedisThread(endpoint, name: "bullmq-test")
    }

    static var script: String { URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("bullmq_peer.py").path }

    /// Runs the helper; its standard output.
    @discardableResult
    static func run(_ arguments: [String], timeout: Double = 90) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script] + arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw PeerError(description: "bullmq_peer.py \(arguments.first ?? "") exited \(process.terminationStatus): \(String(decoding: errors, as: UTF8.self))")
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Adds jobs with BullMQ's `Queue.add`; their ids.
    @discardableResult
    func add(_ queue: String, _ jobs: [JSONValue]) throws -> [String] {
        let out = try Self.run(["add", url, prefix, queue, String(decoding: JSONValue.array(jobs).bytes, as: UTF8.self)])
        return try JSONValue(parsing: Array(out.utf8)).arrayValue?.compactMap(\.stringValue) ?? []
    }

    /// The queue's state as the oracle normalises it.
    func state(_ queue: String) throws -> JSONValue {
        try JSONValue(parsing: Array(try Self.run(["state", url, prefix, queue]).utf8))
    }

    /// The job's progress as BullMQ's own `Job.fromId(...).progress` reads it.
    func progress(_ queue: String, id: String) throws -> JSONValue {
        try JSONValue(parsing: Array(try Self.run(["progress", url, prefix, queue, id]).utf8))
    }

    /// The job's log as BullMQ's own `Queue.getJobLogs` reads it: `{"logs": [...], "count": n}`.
    func logs(_ queue: String, id: String) throws -> JSONValue {
        try JSONValue(parsing: Array(try Self.run(["logs", url, prefix, queue, id]).utf8))
    }

    func work(_ queue: String, count: Int) throws {
        try Self.run(["work", url, prefix, queue, String(count)])
    }

    @discardableResult
    func command(_ arguments: any RedisArgument...) async throws -> RedisReply {
        let command = RedisCommand(arguments)
        return try await redis.run { try $0.command(command).check() }
    }

    func clean() async throws {
        let pattern = prefix + ":*"
        try await redis.run { connection in
            let found = try connection.command("KEYS", pattern).check().array ?? []
            if !found.isEmpty { try connection.command(RedisCommand(["DEL"] + found.compactMap(\.bytes))).check() }
        }
        redis.stop()
    }

    static func scripts() throws -> BullMQScripts { try BullMQScripts(directory: try BullMQScripts.discover()) }
}

/// Polls `condition` every 50 ms until it holds or `seconds` pass.
func eventually(_ seconds: Double = 20, _ what: String, _ condition: () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("timed out after \(seconds)s waiting for \(what)")
    throw PeerError(description: "timed out waiting for \(what)")
}
