import Foundation
import Testing

/// A worker told to stop while it is still starting (here: held by a PostgreSQL that accepts the connection and
/// never answers) stops cleanly, exit 0, instead of dying of the signal.
@Suite(.enabled(if: TestEnv.binary != nil && TestEnv.redisURL != nil, "needs CONVEYOR_BIN and REDIS_URL"))
struct StartupSignalTests {
    @Test func sigtermDuringStartUpStopsTheWorkerCleanly() throws {
        // A listener that never accepts: the kernel completes the handshake, libpq sends its startup packet and waits.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        var addr = RawHTTP.loopback(port: 0)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(bound == 0 && listen(fd, 8) == 0)
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let port = Int(UInt16(bigEndian: actual.sin_port))

        let worker = try WorkerProcess(
            namespace: TestEnv.unique("startsig"), environment: ["DATABASE_URL": "postgres://conveyor@127.0.0.1:\(port)/x?connect_timeout=20"])
        // The worker is in its start-up once it has connected to that PostgreSQL: wait for the connection (bounded).
        var pollFD = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        #expect(poll(&pollFD, 1, 30_000) == 1, "the worker connected to the silent PostgreSQL")
        let client = accept(fd, nil, nil)
        kill(worker.pid, SIGTERM)
        // Then PostgreSQL goes away: the start-up goes on (results are buffered) and finds the stop.
        if client >= 0 { close(client) }
        close(fd)
        worker.waitUntilExit()
        #expect(worker.terminationReason == .exit, "ended by exiting, not by the signal")
        #expect(worker.terminationStatus == 0, "\(worker.log.suffix(2000))")
        #expect(worker.log.contains("stopped by a signal before it started"), "\(worker.log.suffix(2000))")
    }
}
