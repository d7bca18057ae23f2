public import Foundation

/// A stand-in server a test runs from a Python script beside it (`python3 -u SCRIPT ARGS...`, the python3 on PATH, the
/// one scripts/setup.sh installed packages into). The script binds a free loopback port, prints `<prefix><port>` as its
/// first line, and exits when its stdin closes, so it never outlives the test process.
public final class ScriptServer: @unchecked Sendable {
    public let process = Process()
    public let port: Int
    private let stdin = Pipe()

    /// Starts `script` and blocks until it printed its port.
    public init(script: URL, arguments: [String] = [], portAfter prefix: String) throws {
        let stdout = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", script.path] + arguments
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = stdout.fileHandleForReading.availableData
            if chunk.isEmpty { throw ScriptServerFailed(script: script.lastPathComponent, said: String(decoding: line, as: UTF8.self)) }
            line.append(chunk)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix(prefix), let port = Int(text.dropFirst(prefix.count).prefix { $0.isNumber }) else {
            throw ScriptServerFailed(script: script.lastPathComponent, said: text)
        }
        self.port = port
    }

    deinit { stop() }

    /// Closes its stdin (it exits) and terminates it if it is still running.
    public func stop() {
        try? stdin.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
    }

    /// `http://127.0.0.1:<port>`.
    public var base: String { "http://127.0.0.1:\(port)" }
}

/// A stand-in exited, or printed something else, before its port (a package missing: run scripts/setup.sh).
public struct ScriptServerFailed: Error, CustomStringConvertible {
    public var script: String
    public var said: String
    public var description: String { "\(script) exited or printed \(said.debugDescription) before its port (scripts/setup.sh installs what it needs)" }
}
