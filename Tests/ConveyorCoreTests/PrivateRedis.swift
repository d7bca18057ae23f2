import Foundation
import Redis

@testable import ConveyorCore

/// A Redis server of one test's own, on a free loopback port, its data in a temporary folder with AOF on (fsync
/// always), so the test can shut it down, kill it and start it again on the same data. TCP, as in production: a
/// server killed with replies unread resets the connection, and the client loses what it had not read.
final class PrivateRedis: @unchecked Sendable {
    let directory: URL
    let port: Int
    private var process: Process?

    var url: String { "redis://127.0.0.1:\(port)/0" }
    /// The server's pid while it runs.
    var pid: Int32? { process?.processIdentifier }

    /// Extra `redis-server` arguments (`--replicaof 127.0.0.1 6390`).
    let extraArguments: [String]

    /// - Parameter started: false leaves the port closed until `start()`.
    init(started: Bool = true, arguments: [String] = []) throws {
        extraArguments = arguments
        directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("conveyor-redis-\(Job.newJID().prefix(10))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        port = try Self.freePort()
        if started { try start() }
    }

    /// A port the kernel just handed out for loopback, free again once the probe socket is closed.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSetupError("socket: \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Int32 in
                guard bind(fd, p, length) == 0 else { return -1 }
                return getsockname(fd, p, &length)
            }
        }
        guard bound == 0 else { throw TestSetupError("bind: \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    deinit {
        if let process, process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Starts the server and waits until it answers PING with PONG (its data loaded).
    func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        p.arguments = [
            "--port", "\(port)", "--bind", "127.0.0.1", "--dir", directory.path,
            "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--logfile", directory.appendingPathComponent("redis.log").path,
        ] + extraArguments
        p.standardInput = FileHandle.nullDevice
        try p.run()
        process = p
        let deadline = Date(timeIntervalSinceNow: 20)
        while Date() < deadline {
            if let c = try? RedisConnection(RedisEndpoint(url: url), connectTimeout: 1, commandTimeout: 1),
                (try? c.command("PING"))?.text == "PONG"
            {
                return
            }
            usleep(20_000)
        }
        throw TestSetupError("private redis did not start; see \(directory.path)/redis.log")
    }

    /// `SHUTDOWN` (AOF flushed), then a new server on the same data.
    func shutdownAndRestart() throws {
        if let c = try? RedisConnection(RedisEndpoint(url: url)) { _ = try? c.command("SHUTDOWN") }
        process?.waitUntilExit()
        try start()
    }

    /// SIGKILL, then a new server on the same data.
    func killAndRestart() throws {
        if let process {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try start()
    }
}
