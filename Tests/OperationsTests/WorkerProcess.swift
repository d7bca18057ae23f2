import Foundation

/// A real `conveyor worker` (the binary at CONVEYOR_BIN) serving /metrics on a free loopback port, stopped with
/// SIGTERM (SIGKILL after a deadline) when the test is done. Its stderr goes to a file, read by `log`.
final class WorkerProcess {
    let port: Int
    let namespace: String
    private let process = Process()
    private let logFile: URL

    init(namespace: String, arguments: [String] = [], environment extra: [String: String] = [:]) throws {
        self.namespace = namespace
        port = try Self.freePort()
        logFile = FileManager.default.temporaryDirectory.appendingPathComponent("\(namespace).log")
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: TestEnv.binary!)
        process.arguments = ["worker", "--namespace", namespace, "--metrics-addr", "127.0.0.1:\(port)"] + arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in extra { env[k] = v }
        process.environment = env
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: logFile)
        try process.run()
    }

    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }
    var isRunning: Bool { process.isRunning }

    /// Waits until /healthz answers 200 (the worker is up), or throws with its log.
    func waitUntilServing(timeout: Double = 60) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if !process.isRunning { throw TestFailure("worker exited \(process.terminationStatus):\n\(log.suffix(3000))") }
            if let r = try? RawHTTP.get(port: port, path: "/healthz", timeout: 1), r.status == 200 { return }
            usleep(50_000)
        }
        throw TestFailure("worker did not serve /healthz within \(timeout) s:\n\(log.suffix(3000))")
    }

    /// Kills the worker at once (SIGKILL), as a crash or an OOM kill does: nothing of it runs any more.
    func kill9() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    var pid: pid_t { process.processIdentifier }
    var terminationStatus: Int32 { process.terminationStatus }
    var terminationReason: Process.TerminationReason { process.terminationReason }
    func waitUntilExit() { process.waitUntilExit() }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: logFile)
    }

    /// A port nothing listens on now (bound to 0 and released).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = RawHTTP.loopback(port: 0)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw TestFailure("bind: \(String(cString: strerror(errno)))") }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: actual.sin_port))
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// HTTP/1.1 over a plain socket, with a deadline on every step: what a probe or a scraper does.
enum RawHTTP {
    static func loopback(port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return addr
    }

    /// A connected socket to 127.0.0.1:`port`.
    static func connect(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = loopback(port: port)
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard r == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw TestFailure("connect to \(port): \(message)")
        }
        return fd
    }

    static func send(_ fd: Int32, _ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + sent, $0.count - sent) }
            if n <= 0 { return }
            sent += n
        }
    }

    /// Everything the server sends until it closes, or nil when `timeout` passes first.
    static func readAll(_ fd: Int32, timeout: Double) -> [UInt8]? {
        let deadline = Date().addingTimeInterval(timeout)
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { return nil }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(max(1, remaining * 1000)))
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { return nil }
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return out }
            out.append(contentsOf: chunk[0..<n])
        }
    }

    /// Status and body of `GET path`, or a failure when the whole exchange takes longer than `timeout`.
    static func get(port: Int, path: String, timeout: Double) throws -> (status: Int, body: [UInt8]) {
        let fd = try connect(port: port)
        defer { close(fd) }
        send(fd, Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8))
        guard let reply = readAll(fd, timeout: timeout) else { throw TestFailure("GET \(path): no complete answer within \(timeout) s") }
        return parse(reply)
    }

    static func parse(_ reply: [UInt8]) -> (status: Int, body: [UInt8]) {
        let text = String(decoding: reply.prefix(64), as: UTF8.self)
        let status = text.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        var bodyStart = reply.count
        if reply.count >= 4 {
            for i in 3..<reply.count where reply[i - 3] == 13 && reply[i - 2] == 10 && reply[i - 1] == 13 && reply[i] == 10 {
                bodyStart = i + 1
                break
            }
        }
        return (status, Array(reply[bodyStart...]))
    }
}
