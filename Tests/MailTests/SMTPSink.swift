import ConveyorCore
import Foundation
import Testing

/// The aiosmtpd sink (smtp_sink.py) as a subprocess on a free loopback port, stopped when the test ends.
final class SMTPSink: @unchecked Sendable {
    let folder: URL
    let port: Int
    private let process: Process
    private let stdin: Pipe

    var url: String { "smtp://127.0.0.1:\(port)" }

    init(_ options: [String] = []) throws {
        folder = try temporaryFolder("sink")
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [testsFolder.appendingPathComponent("smtp_sink.py").path, folder.path] + options
        stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        // Wait for "READY <port>" (an event, with a timeout), reading on another thread.
        let ready = DispatchSemaphore(value: 0)
        let line = LockedBox<String>("")
        let reader = stdout.fileHandleForReading
        Thread.detachNewThread {
            var text = ""
            while !text.contains("\n") {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
            line.value = text
            ready.signal()
        }
        guard ready.wait(timeout: .now() + 20) == .success, line.value.hasPrefix("READY "),
            let port = Int(line.value.dropFirst(6).trimmingCharacters(in: .whitespacesAndNewlines))
        else {
            process.terminate()
            throw SinkError(message: "smtp_sink.py did not start: \(line.value)")
        }
        self.port = port
    }

    struct SinkError: Error { var message: String }

    deinit { stop() }

    func stop() {
        if process.isRunning {
            try? stdin.fileHandleForWriting.close()
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: folder)
    }

    /// Messages recorded so far, in order: raw bytes and envelope.
    func messages() throws -> [(raw: [UInt8], envelope: JSONValue)] {
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        let numbers = names.compactMap { $0.hasSuffix(".eml") ? Int($0.dropLast(4)) : nil }.sorted()
        return try numbers.map { n in
            let raw = Array(try Data(contentsOf: folder.appendingPathComponent("\(n).eml")))
            let envelope = try JSONValue(parsing: Array(try Data(contentsOf: folder.appendingPathComponent("\(n).json"))))
            return (raw, envelope)
        }
    }

    /// EHLO greetings received: one per SMTP connection.
    func connections() -> Int {
        (try? String(contentsOf: folder.appendingPathComponent("ehlo"), encoding: .utf8)).flatMap { Int($0) } ?? 0
    }
}

final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: T
    init(_ value: T) { _value = value }
    var value: T {
        get { lock.withLock { _value } }
        set { lock.withLock { _value = newValue } }
    }
}
