import Foundation
import Testing

/// Runs blocking work (sockets, process waits) on a Dispatch thread, so tests running side by side never hold up
/// Swift's cooperative pool (the dashboard's background tasks in other tests need it).
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}

/// A real `conveyor web` process (the binary at `CONVEYOR_BIN`) on its own namespace and an ephemeral port, logging
/// to a file; stopped (SIGTERM, then SIGKILL) when released.
final class WebProcess: @unchecked Sendable {
    let process = Process()
    let port: Int
    let namespace: String
    let logPath: String

    static var binary: String? { ProcessInfo.processInfo.environment["CONVEYOR_BIN"].flatMap { $0.isEmpty ? nil : $0 } }

    /// Starts `conveyor web --addr 127.0.0.1:0` and waits (bounded, off the cooperative pool) for its URL.
    static func start(namespace: String = TestEnv.unique("webproc"), environment: [String: String] = [:]) async throws -> WebProcess {
        try await offPool { try WebProcess(namespace: namespace, environment: environment) }
    }

    private init(namespace: String = TestEnv.unique("webproc"), environment extra: [String: String] = [:]) throws {
        self.namespace = namespace
        logPath = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("web") + ".log").path
        FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: try #require(Self.binary, "CONVEYOR_BIN"))
        process.arguments = ["web", "--addr", "127.0.0.1:0"]
        var environment = ProcessInfo.processInfo.environment
        environment["CONVEYOR_NAMESPACE"] = namespace
        environment["CONVEYOR_WEB_REFRESH_SECONDS"] = "0"
        environment.removeValue(forKey: "CONVEYOR_WEB_PASSWORD")
        environment.removeValue(forKey: "CONVEYOR_WEB_HOSTS")
        environment.merge(extra) { _, new in new }
        process.environment = environment
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
        // The first stdout line: "conveyor web: http://127.0.0.1:PORT/".
        var line: [UInt8] = []
        let handle = out.fileHandleForReading
        let deadline = Date().addingTimeInterval(30)
        while !line.contains(UInt8(ascii: "\n")) && Date() < deadline {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            line += chunk
        }
        let text = String(decoding: line, as: UTF8.self)
        guard let range = text.range(of: "http://127.0.0.1:"),
            let port = Int(text[range.upperBound...].prefix { $0.isNumber })
        else {
            process.terminate()
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            throw TestFailure("conveyor web did not start: \(text) \(log)")
        }
        self.port = port
    }

    deinit {
        guard process.isRunning else { return }
        process.terminate()
        let end = Date().addingTimeInterval(5)
        while process.isRunning && Date() < end { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var authority: String { "127.0.0.1:\(port)" }

    /// A GET over a real socket with the given `Host` (nil: none at all) and headers.
    func get(_ path: String, host: String? = nil, _ headers: [String: String] = [:], timeout: Double = 10) async throws -> RawHTTP.Reply {
        let (port, host) = (port, host ?? authority)
        return try await offPool { try RawHTTP.send(port: port, method: "GET", path: path, host: host, headers: headers, timeout: timeout) }
    }

    /// A POST over a real socket (default: a URL-encoded form).
    func post(_ path: String, body: String, host: String? = nil, _ headers: [String: String] = [:]) async throws -> RawHTTP.Reply {
        var h = ["Content-Type": "application/x-www-form-urlencoded"]
        h.merge(headers) { _, new in new }
        let (port, host, fields) = (port, host ?? authority, h)
        return try await offPool { try RawHTTP.send(port: port, method: "POST", path: path, host: host, headers: fields, body: Array(body.utf8)) }
    }

    /// Runs `conveyor ARGUMENTS` to its end (at most `seconds`): exit status (nil: still running, killed) and stdout.
    static func run(_ arguments: [String], environment: [String: String]? = nil, seconds: Double = 10) async throws -> (status: Int32?, out: String, err: String) {
        try await offPool {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: try #require(binary))
            p.arguments = arguments
            if let environment { p.environment = environment }
            let out = Pipe()
            let err = Pipe()
            p.standardOutput = out
            p.standardError = err
            try p.run()
            // Drain stdout while it runs (a large listing must not fill the pipe).
            let reader = DispatchQueue(label: "conveyor-test-stdout")
            nonisolated(unsafe) var data = Data()
            reader.async { data = out.fileHandleForReading.readDataToEndOfFile() }
            let end = Date().addingTimeInterval(seconds)
            while p.isRunning && Date() < end { usleep(10_000) }
            if p.isRunning {
                kill(p.processIdentifier, SIGKILL)
                p.waitUntilExit()
                return (nil, "", "")
            }
            let errors = err.fileHandleForReading.readDataToEndOfFile()
            reader.sync {}
            return (p.terminationStatus, String(decoding: data, as: UTF8.self), String(decoding: errors, as: UTF8.self))
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// HTTP/1.1 by hand over a TCP socket: exactly the bytes an attacker's client would send (any `Host`, or none).
enum RawHTTP {
    struct Reply {
        var status: Int
        /// Names lowercased; repeated headers joined with "\n".
        var headers: [String: String]
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }

        /// The `conveyor_csrf` cookie a response set, if any.
        var csrfCookie: String? {
            for line in (headers["set-cookie"] ?? "").split(separator: "\n") where line.hasPrefix("conveyor_csrf=") {
                return String(line.dropFirst("conveyor_csrf=".count).prefix { $0 != ";" })
            }
            return nil
        }

        /// The first form token on the page.
        var formToken: String? {
            guard let r = text.range(of: "name=\"csrf\" value=\"") else { return nil }
            return String(text[r.upperBound...].prefix { $0 != "\"" })
        }
    }

    static func send(
        port: Int, method: String, path: String, host: String?, headers: [String: String] = [:], body: [UInt8] = [], timeout: Double = 10
    ) throws -> Reply {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw TestFailure("connect to port \(port): errno \(errno)") }
        var head = "\(method) \(path) HTTP/1.1\r\n"
        if let host { head += "Host: \(host)\r\n" }
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if method == "POST" { head += "Content-Length: \(body.count)\r\n" }
        head += "Connection: close\r\n\r\n"
        let request = Array(head.utf8) + body
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw TestFailure("write: errno \(errno)") }
            sent += n
        }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var expected: Int?
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 { throw TestFailure("read: errno \(errno) (no answer within \(timeout) s?)") }
            if n == 0 { break }
            data += buffer[0..<n]
            if expected == nil, let end = headEnd(data) {
                let text = String(decoding: data[0..<end], as: UTF8.self).lowercased()
                if let r = text.range(of: "\r\ncontent-length: ") {
                    expected = Int(text[r.upperBound...].prefix { $0.isNumber }).map { end + 4 + $0 }
                }
            }
            if let expected, data.count >= expected { break }
        }
        guard let end = headEnd(data) else { throw TestFailure("no HTTP response head in \(data.count) bytes") }
        let lines = String(decoding: data[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let status = Int(lines[0].split(separator: " ").dropFirst().first ?? "") ?? 0
        var fields: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            fields[name] = fields[name].map { $0 + "\n" + value } ?? value
        }
        return Reply(status: status, headers: fields, body: Array(data[(end + 4)...]))
    }

    private static func headEnd(_ data: [UInt8]) -> Int? {
        guard data.count >= 4 else { return nil }
        for i in 0...(data.count - 4) where data[i] == 13 && data[i + 1] == 10 && data[i + 2] == 13 && data[i + 3] == 10 { return i }
        return nil
    }
}
