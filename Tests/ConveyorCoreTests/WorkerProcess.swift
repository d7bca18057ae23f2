import Foundation
import Redis
import Testing

@testable import ConveyorCore

/// A `conveyor worker` process started from the built binary (`CONVEYOR_BIN`), logging to a file.
final class WorkerProcess: @unchecked Sendable {
    let process = Process()
    let logURL: URL

    init(redisURL: String, namespace: String?, arguments: [String], environment: [String: String] = [:]) throws {
        guard let binary = ProcessInfo.processInfo.environment["CONVEYOR_BIN"] else {
            throw TestSetupError("CONVEYOR_BIN is not set: run the tests through `make test`")
        }
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("conveyor-worker-\(Job.newJID()).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)
        process.executableURL = URL(fileURLWithPath: binary)
        var args = ["worker", "--redis-url", redisURL]
        if let namespace { args += ["--namespace", namespace] }
        process.arguments = args + arguments
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    func kill9() async throws {
        kill(pid, SIGKILL)
        try await waitForExit()
    }

    /// Sends SIGTERM and returns the exit status.
    func terminate() async throws -> Int32 {
        kill(pid, SIGTERM)
        try await waitForExit()
        return process.terminationStatus
    }

    func waitForExit() async throws {
        let process = process
        try await BlockingPool.shared.run { process.waitUntilExit() }
    }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// jids of the jobs this process logged as succeeded.
    var succeeded: Set<String> {
        var jids = Set<String>()
        for line in log.split(separator: "\n") where line.hasSuffix("job succeeded") {
            guard let range = line.range(of: "job.id=") else { continue }
            jids.insert(String(line[range.upperBound...].prefix(while: { $0 != " " })))
        }
        return jids
    }

    deinit {
        if process.isRunning { kill(pid, SIGKILL) }
        try? FileManager.default.removeItem(at: logURL)
    }
}
