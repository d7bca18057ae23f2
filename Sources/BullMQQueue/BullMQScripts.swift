import Digest
import Foundation
public import Redis

/// BullMQ's own Lua scripts, read at start-up from the installed `bullmq` Python package (PyPI, pinned at
/// `BullMQScripts.pinnedVersion`) and checked against the SHA-1 of each file of that release: a worker refuses to start
/// when a script is missing or differs, since a script of another release may take other keys or arguments.
/// The scripts are never copied into Conveyor's repository.
public struct BullMQScripts: Sendable {
    /// The PyPI release whose scripts are pinned (`pip install bullmq==3.4.4`, as `scripts/setup.sh` does).
    public static let pinnedVersion = "3.4.4"

    /// A script by its file name in `bullmq/commands/` (the number is its key count).
    public enum Name: String, CaseIterable, Sendable {
        case moveToActive = "moveToActive-11"
        case moveToFinished = "moveToFinished-14"
        case retryJob = "retryJob-11"
        case moveToDelayed = "moveToDelayed-11"
        case extendLocks = "extendLocks-1"
        case moveStalledJobsToWait = "moveStalledJobsToWait-9"
        case moveJobFromActiveToWait = "moveJobFromActiveToWait-9"
        case updateProgress = "updateProgress-3"
        case addLog = "addLog-2"
        case getCounts = "getCounts-1"
        case updateJobScheduler = "updateJobScheduler-12"
        case reprocessJob = "reprocessJob-9"
    }

    /// SHA-1 of each script file of bullmq 3.4.4 (`sha1sum bullmq/commands/<name>.lua`), which is also the name
    /// Redis gives the script (`EVALSHA`).
    public static let pinned: [Name: String] = [
        .moveToActive: "d96ca626f1ea141b44a856b312fc636d99aa9ea9",
        .moveToFinished: "69666e69dd5621df59067a03de685e55a486560d",
        .retryJob: "812d06de3eaf0fb70e333b3d0142eed8bf630a2d",
        .moveToDelayed: "9f83944d6edafd63c74121d73299dd3358ddfe0c",
        .extendLocks: "c35baf769e5dc3d9194b2bceca04ab59f7c510f7",
        .moveStalledJobsToWait: "1e9bb7deb6219644a634d32c430ce15ed39a377e",
        .moveJobFromActiveToWait: "2f746a769bc3d182a0f73ace6bb7a4906faf5df9",
        .updateProgress: "e992d1814b869c8def8e67ef117b3ed2cc95771f",
        .addLog: "eecb06ad6c96fa5da4fa8bca0ea7a1bf1bf62f18",
        .getCounts: "a8034c631460c6803c87966ce881636246de2398",
        .updateJobScheduler: "4da21b4a6efa92d4c0bdfc40e803ecc1e9ab4eb5",
        .reprocessJob: "1323ff649a78371c602a52252e61dc9f2fdfe36d",
    ]

    /// The most a script file may weigh (the largest of 3.4.4 is about 40 KB).
    public static let maxScriptBytes = 1 << 20

    /// Where the scripts were read from.
    public let directory: String
    private let sources: [Name: [UInt8]]

    /// Reads and checks every pinned script in `directory` (`…/site-packages/bullmq/commands`).
    public init(directory: String) throws(BullMQScriptError) {
        var sources: [Name: [UInt8]] = [:]
        var problems: [String] = []
        for name in Name.allCases {
            let path = (directory as NSString).appendingPathComponent(name.rawValue + ".lua")
            guard let handle = FileHandle(forReadingAtPath: path) else {
                problems.append("\(name.rawValue).lua is missing")
                continue
            }
            defer { try? handle.close() }
            let data = (try? handle.read(upToCount: Self.maxScriptBytes + 1)) ?? Data()
            if data.count > Self.maxScriptBytes {
                problems.append("\(name.rawValue).lua is larger than \(Self.maxScriptBytes) bytes")
                continue
            }
            let bytes = [UInt8](data)
            let sha = SHA1Digest.hash(bytes).hex
            guard sha == Self.pinned[name] else {
                problems.append("\(name.rawValue).lua has SHA-1 \(sha), expected \(Self.pinned[name] ?? "?")")
                continue
            }
            sources[name] = bytes
        }
        if !problems.isEmpty {
            throw BullMQScriptError(
                message: "BullMQ scripts in \(directory) are not those of bullmq \(Self.pinnedVersion): \(problems.joined(separator: "; ")); install it with `python3 -m pip install bullmq==\(Self.pinnedVersion)` (scripts/setup.sh) or point CONVEYOR_BULLMQ_SCRIPTS at its bullmq/commands directory")
        }
        self.directory = directory
        self.sources = sources
    }

    /// The script's source text.
    public func source(_ name: Name) -> [UInt8] { sources[name] ?? [] }

    /// The script's SHA-1, as `EVALSHA` names it.
    public func sha(_ name: Name) -> String { Self.pinned[name] ?? "" }

    /// `SCRIPT LOAD` of every script; each reply must be its pinned SHA-1.
    public func load(on connection: RedisConnection) throws(RedisError) {
        let names = Name.allCases
        let replies = try connection.pipeline(names.map { RedisCommand("SCRIPT", "LOAD", source($0)) })
        for (name, reply) in zip(names, replies) {
            let sha = try reply.check().text ?? ""
            guard sha == self.sha(name) else { throw RedisError.server("SCRIPT LOAD of \(name.rawValue) returned \(sha), expected \(self.sha(name))") }
        }
    }

    /// `EVALSHA` of a script with its keys and arguments.
    public func command(_ name: Name, keys: [String], arguments: [any RedisArgument]) -> RedisCommand {
        RedisCommand(["EVALSHA", sha(name), keys.count] + keys.map { $0 as any RedisArgument } + arguments)
    }

    /// Runs `commands` as one pipeline; when Redis lost the scripts (a restart, `SCRIPT FLUSH`), loads them and runs
    /// the pipeline again. Only for scripts whose second run after a `NOSCRIPT` is harmless: a `NOSCRIPT` reply ran nothing.
    public func pipeline(_ commands: [RedisCommand], on connection: RedisConnection) throws(RedisError) -> [RedisReply] {
        let replies = try connection.pipeline(commands)
        guard replies.contains(where: { if case .error(let m) = $0 { return m.hasPrefix("NOSCRIPT") } else { return false } }) else {
            return replies
        }
        try load(on: connection)
        var again = replies
        var retry: [Int] = []
        for (i, reply) in replies.enumerated() {
            if case .error(let m) = reply, m.hasPrefix("NOSCRIPT") { retry.append(i) }
        }
        let redone = try connection.pipeline(retry.map { commands[$0] })
        for (i, reply) in zip(retry, redone) { again[i] = reply }
        return again
    }

    /// The `bullmq/commands` directory of the `bullmq` package `python` imports, or an error saying why there is none.
    public static func discover(python: String = "python3") throws(BullMQScriptError) -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            python, "-c",
            "import bullmq, os, importlib.metadata as m; print(m.version('bullmq')); print(os.path.join(os.path.dirname(bullmq.__file__), 'commands'))",
        ]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = Pipe()
        do {
            try process.run()
        } catch {
            throw BullMQScriptError(message: "cannot run \(python) to find the bullmq package: \(error)")
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
        guard process.terminationStatus == 0, lines.count >= 2 else {
            throw BullMQScriptError(
                message: "\(python) cannot import bullmq (exit \(process.terminationStatus)): install it with `python3 -m pip install bullmq==\(pinnedVersion)` or set CONVEYOR_BULLMQ_SCRIPTS")
        }
        if lines[0] != pinnedVersion {
            throw BullMQScriptError(
                message: "\(python) imports bullmq \(lines[0]); Conveyor runs the scripts of bullmq \(pinnedVersion): `python3 -m pip install bullmq==\(pinnedVersion)`")
        }
        return lines[1]
    }
}

/// The BullMQ scripts cannot be used: missing, of another release, or not found.
public struct BullMQScriptError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
}
