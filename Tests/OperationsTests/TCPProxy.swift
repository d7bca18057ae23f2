import Foundation

/// tcp_proxy.py as a subprocess: stands between a client and PostgreSQL so a test can take the database
/// away (kill the proxy: connections drop, new ones are refused) and bring it back on the same port.
final class TCPProxy {
    let target: Int
    private(set) var port: Int
    private var process: Process?

    init(target: Int, port: Int = 0) throws {
        self.target = target
        self.port = port
        try start()
    }

    func start() throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("tcp_proxy.py").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script, String(port), String(target)]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        // The proxy prints its port once it listens: wait for that line.
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { throw CocoaError(.fileReadUnknown) }
            line.append(chunk)
        }
        port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))!
        process = p
    }

    func kill() {
        guard let p = process else { return }
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }

    deinit { kill() }
}
