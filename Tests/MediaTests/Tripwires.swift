import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Counts every open or read of one file, by any process (inotify), to prove a file was never touched.
final class FileTripwire {
    private let fd: Int32

    init(_ path: String) throws {
        fd = inotify_init1(Int32(O_NONBLOCK))
        guard fd >= 0 else { throw FixtureError(message: "inotify_init1 failed: errno \(errno)") }
        // IN_ACCESS | IN_OPEN
        guard inotify_add_watch(fd, path, 0x0000_0001 | 0x0000_0020) >= 0 else {
            throw FixtureError(message: "inotify_add_watch \(path) failed: errno \(errno)")
        }
    }

    deinit { close(fd) }

    /// Events since the last call.
    func events() -> Int {
        var count = 0
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return count }
            var offset = 0
            while offset + 16 <= n {
                let nameLength = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self) }
                count += 1
                offset += 16 + Int(nameLength)
            }
        }
    }
}

/// A TCP listener on a free loopback port that nobody should ever connect to.
final class ConnectionTripwire {
    private let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, 16) == 0 else { throw FixtureError(message: "cannot listen on loopback: errno \(errno)") }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    deinit { close(fd) }

    /// Connections that arrived since the last call (accepted and closed).
    func connections() -> Int {
        var count = 0
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 { return count }
            close(client)
            count += 1
        }
    }

    /// Connects once, as the positive control that the tripwire works.
    func knock() throws {
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        let r = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard r == 0 else { throw FixtureError(message: "control connect failed: errno \(errno)") }
    }
}
