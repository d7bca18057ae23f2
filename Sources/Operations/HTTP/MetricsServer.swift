import Foundation
import Logging

/// A small HTTP/1.1 server for `/metrics`, `/healthz` and `/readyz`: POSIX sockets, one request per connection,
/// each connection on its own thread so that idle or slow clients cannot delay a liveness probe. Bounded: at most
/// `maximumConnections` at once (a new one then closes the oldest that has not finished sending its request, so a
/// probe still gets in; with none to close, the new one is closed unanswered), request headers of at most
/// `maximumHeaderBytes` (431 beyond), `requestDeadline` seconds to send them (408 after) and `responseDeadline` to
/// take the answer.
public final class MetricsServer: @unchecked Sendable {
    public static let maximumConnections = 64
    public static let maximumHeaderBytes = 8192
    public static let requestDeadline: Double = 2
    public static let responseDeadline: Double = 10

    public typealias ReadinessCheck = @Sendable () -> (ready: Bool, detail: String)

    private let metrics: ConveyorMetrics
    private let readiness: ReadinessCheck
    private let listener: Int32
    /// The bound port (useful with port 0).
    public let port: Int
    public let host: String
    private let lock = NSLock()
    private var stopped = false
    /// Connections being served now, by socket: when accepted, and whether their request is still being read.
    /// A thread removes its own entry (under `lock`) before it closes the socket, so the number is never reused
    /// while listed here.
    private var connections: [Int32: (since: Date, reading: Bool)] = [:]
    private var refusedSinceLog = 0
    private let logger = Logger(label: "conveyor.http")

    /// The IPv4 host and port of `address` (`host:port`, `:port` for every interface, `localhost`), or an error
    /// saying what is expected: checked before anything starts, so a typo is a usage error.
    public static func address(_ address: String) throws(MetricsServerError) -> (host: String, port: Int) {
        guard address.utf8.count <= 64, let colon = address.lastIndex(of: ":"),
            let port = Int(address[address.index(after: colon)...]), (0...65535).contains(port)
        else { throw MetricsServerError("--metrics-addr \(address): expected host:port, like 127.0.0.1:9464") }
        var host = String(address[..<colon])
        if host.isEmpty { host = "0.0.0.0" }
        if host == "localhost" { host = "127.0.0.1" }
        var parsed = in_addr()
        guard inet_pton(AF_INET, host, &parsed) == 1 else {
            throw MetricsServerError("--metrics-addr \(address): \(host) is not an IPv4 address")
        }
        return (host, port)
    }

    /// Binds `address` (`host:port`, e.g. `127.0.0.1:9464`, `0.0.0.0:9464`, `:9464`) and starts serving.
    public init(address: String, metrics: ConveyorMetrics, readiness: @escaping ReadinessCheck) throws {
        let (host, port) = try Self.address(address)
        self.metrics = metrics
        self.readiness = readiness
        self.host = host

        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw MetricsServerError("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else {
            close(fd)
            throw MetricsServerError("--metrics-addr \(address): \(host) is not an IPv4 address")
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw MetricsServerError("cannot listen on \(address): \(message)")
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.port = Int(UInt16(bigEndian: actual.sin_port))
        self.listener = fd
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "conveyor-metrics-http"
        thread.start()
    }

    /// Stops accepting connections.
    public func stop() {
        lock.lock()
        let first = !stopped
        stopped = true
        lock.unlock()
        if first { shutdown(listener, Int32(SHUT_RDWR)) }
    }

    private var isStopped: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }

    private func acceptLoop() {
        while !isStopped {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if isStopped { break }
                logger.warning("metrics server accept failed: \(String(cString: strerror(errno)))")
                usleep(100_000)
                continue
            }
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            lock.lock()
            var admitted = connections.count < Self.maximumConnections
            if !admitted, let oldest = connections.filter({ $0.value.reading }).min(by: { $0.value.since < $1.value.since }) {
                // Its thread sees the end of input at once, answers nothing and removes it.
                shutdown(oldest.key, Int32(SHUT_RDWR))
                connections[oldest.key]?.reading = false
                admitted = connections.count < 2 * Self.maximumConnections
            }
            if admitted { connections[client] = (Date(), true) } else { refusedSinceLog += 1 }
            let refused = refusedSinceLog
            lock.unlock()
            guard admitted else {
                close(client)
                if refused == 1 || refused % 1000 == 0 {
                    logger.warning("metrics server: \(Self.maximumConnections) connections open, closing new ones (\(refused) so far)")
                }
                continue
            }
            let thread = Thread { [self] in
                handle(client)
                lock.lock()
                connections[client] = nil
                if connections.isEmpty { refusedSinceLog = 0 }
                lock.unlock()
                close(client)
            }
            thread.name = "conveyor-metrics-conn"
            thread.stackSize = 512 * 1024
            thread.start()
        }
        close(listener)
    }

    private func handle(_ fd: Int32) {
        // Read until the end of the headers (requests here have no body), within the size and time bounds.
        let deadline = Date().addingTimeInterval(Self.requestDeadline)
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        var complete = false
        var timedOut = false
        while request.count < Self.maximumHeaderBytes {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 {
                timedOut = true
                break
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(max(1, min(remaining, Self.requestDeadline) * 1000)))
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 { continue }  // the loop's deadline check decides
            if ready < 0 { break }
            let room = min(chunk.count, Self.maximumHeaderBytes - request.count)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, room) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            request.append(contentsOf: chunk[0..<n])
            if containsHeaderEnd(request) {
                complete = true
                break
            }
        }
        lock.lock()
        connections[fd]?.reading = false
        lock.unlock()
        if !complete {
            if request.count >= Self.maximumHeaderBytes {
                return respond(fd, 431, "text/plain", Array("request headers too large\n".utf8), head: false)
            }
            if request.isEmpty { return }
            if timedOut {
                return respond(fd, 408, "text/plain", Array("request not received in time\n".utf8), head: false)
            }
            // The client closed its side after a request line without the blank line: answer what it sent.
        }
        guard let lineEnd = request.firstIndex(of: 13) ?? request.firstIndex(of: 10) else {
            return respond(fd, 400, "text/plain", Array("bad request\n".utf8), head: false)
        }
        let parts = String(decoding: request[..<lineEnd], as: UTF8.self).split(separator: " ")
        guard parts.count >= 2 else { return respond(fd, 400, "text/plain", Array("bad request\n".utf8), head: false) }
        let method = parts[0]
        var path = Substring(parts[1])
        if let q = path.firstIndex(of: "?") { path = path[..<q] }
        guard method == "GET" || method == "HEAD" else {
            return respond(fd, 405, "text/plain", Array("method not allowed\n".utf8), head: false, extra: "Allow: GET, HEAD\r\n")
        }
        let head = method == "HEAD"
        switch path {
        case "/metrics":
            respond(fd, 200, "text/plain; version=0.0.4; charset=utf-8", metrics.render(), head: head)
        case "/healthz":
            respond(fd, 200, "text/plain", Array("ok\n".utf8), head: head)
        case "/readyz":
            let (ready, detail) = readiness()
            respond(fd, ready ? 200 : 503, "text/plain", Array((detail + "\n").utf8), head: head)
        default:
            respond(fd, 404, "text/plain", Array("not found: try /metrics, /healthz, /readyz\n".utf8), head: head)
        }
    }

    private func containsHeaderEnd(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 2 else { return false }
        for i in 1..<bytes.count where bytes[i] == 10 && bytes[i - 1] == 10 { return true }
        for i in 3..<max(3, bytes.count) where bytes[i] == 10 && bytes[i - 1] == 13 && bytes[i - 2] == 10 && bytes[i - 3] == 13 {
            return true
        }
        return false
    }

    private func respond(_ fd: Int32, _ status: Int, _ type: String, _ body: [UInt8], head: Bool, extra: String = "") {
        let reason = [
            200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
            431: "Request Header Fields Too Large", 503: "Service Unavailable",
        ][status] ?? "OK"
        var out = Array(
            "HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\(extra)\r\n".utf8)
        if !head { out += body }
        let deadline = Date().addingTimeInterval(Self.responseDeadline)
        var sent = 0
        while sent < out.count, deadline.timeIntervalSinceNow > 0 {
            let n = out.withUnsafeBytes { write(fd, $0.baseAddress! + sent, $0.count - sent) }
            if n <= 0 {
                if n < 0 && errno == EINTR { continue }
                return
            }
            sent += n
        }
    }
}

public struct MetricsServerError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
