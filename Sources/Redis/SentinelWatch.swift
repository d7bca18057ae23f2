import Foundation
import Logging
import Synchronization

/// Listens to the sentinels' `+switch-master` announcements, one listener per sentinel group and master name in
/// the process, so every connection to that master hops to the new one at once, including connections that sit
/// idle or that the old master would still answer (a partitioned master keeps accepting writes until it learns
/// it was replaced; a connection losing its socket or reading `READONLY` finds out later, on its own).
///
/// Connections check `generation` (one atomic load) before each use: a change since they connected makes them
/// broken, and their owner reconnects through the sentinels. The listener runs on its own thread while any
/// connection uses it, subscribed to one sentinel at a time, moving to the next when that one fails.
final class SentinelWatch: Sendable {
    struct Key: Hashable {
        var nodes: [String]
        var master: String
    }

    private static let watches = Mutex<[Key: SentinelWatch]>([:])

    /// The process's watch for this endpoint's sentinels and master, started on first use. Each call counts one
    /// user; `release()` undoes it.
    static func retain(for endpoint: RedisEndpoint, nodes: [RedisEndpoint.Node], master: String) -> SentinelWatch {
        let key = Key(nodes: nodes.map(\.description), master: master)
        let (watch, start) = watches.withLock { all -> (SentinelWatch, Bool) in
            if let existing = all[key], existing.retain() { return (existing, false) }
            let fresh = SentinelWatch(key: key, endpoint: endpoint, nodes: nodes, master: master)
            _ = fresh.retain()
            all[key] = fresh
            return (fresh, true)
        }
        if start { watch.start() }
        return watch
    }

    private let key: Key
    private let endpoint: RedisEndpoint
    private let nodes: [RedisEndpoint.Node]
    private let master: String
    private let switches = Atomic<Int>(0)
    /// Users, and whether the listener has given up for lack of them (a released watch is never reused).
    private let users = Mutex<(count: Int, ended: Bool)>((0, false))
    private let logger = Logger(label: "conveyor.redis.sentinel")

    private init(key: Key, endpoint: RedisEndpoint, nodes: [RedisEndpoint.Node], master: String) {
        self.key = key
        self.endpoint = endpoint
        self.nodes = nodes
        self.master = master
    }

    /// How many times the sentinels announced a new master for this name since the watch started.
    var generation: Int { switches.load(ordering: .acquiring) }

    private func retain() -> Bool {
        users.withLock { state in
            guard !state.ended else { return false }
            state.count += 1
            return true
        }
    }

    func release() {
        users.withLock { $0.count -= 1 }
    }

    private func start() {
        let thread = Thread { [self] in listen() }
        thread.name = "conveyor-sentinel-watch"
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// True once no connection uses the watch; it is then dropped from the registry under the same lock, so a
    /// later connection starts a new one.
    private func unused() -> Bool {
        Self.watches.withLock { all in
            let idle = users.withLock { state -> Bool in
                if state.count <= 0 { state.ended = true }
                return state.ended
            }
            if idle, all[key] === self { all[key] = nil }
            return idle
        }
    }

    private func listen() {
        var index = 0
        var failures = 0
        while !unused() {
            let sentinel = nodes[index % nodes.count]
            index += 1
            do throws(RedisError) {
                try subscribe(to: sentinel) { failures = 0 }
            } catch {
                failures += 1
                // Once per sweep of the whole group: a sentinel that is down is the normal case during a failover.
                if failures % nodes.count == 0 {
                    logger.warning("cannot listen for master switches", metadata: [
                        "sentinel": "\(sentinel)", "master": "\(master)", "error": "\(error.message)",
                    ])
                }
                if failures % nodes.count == 0 { Thread.sleep(forTimeInterval: min(5, 0.5 * Double(failures / nodes.count))) }
            }
        }
    }

    /// Subscribes to `+switch-master` on one sentinel and counts every switch of this master until the connection
    /// fails or no connection uses the watch any more. A `PING` every few quiet seconds finds a dead sentinel.
    private func subscribe(to sentinel: RedisEndpoint.Node, connected: () -> Void) throws(RedisError) {
        let connection = try RedisConnection(
            RedisEndpoint(address: .tcp(host: sentinel.host, port: sentinel.port), username: endpoint.sentinelUsername,
                          password: endpoint.sentinelPassword, tls: endpoint.tls),
            connectTimeout: 2, commandTimeout: 5)
        try connection.send(RedisCommand(["SUBSCRIBE", "+switch-master"]))
        connected()
        var awaitingPong = false
        while !unused() {
            guard let reply = try connection.nextReply(within: 2) else {
                if awaitingPong { throw .connection("sentinel \(sentinel) did not answer PING") }
                try connection.send(RedisCommand(["PING"]))
                awaitingPong = true
                continue
            }
            guard let parts = reply.array, let kind = parts.first?.text?.lowercased() else {
                if case .error(let message) = reply { throw .server("sentinel \(sentinel): \(message)") }
                continue
            }
            switch kind {
            case "pong": awaitingPong = false
            case "message" where parts.count == 3:
                // "<name> <old-ip> <old-port> <new-ip> <new-port>"
                let fields = (parts[2].text ?? "").split(separator: " ")
                guard fields.count == 5, fields[0] == master else { continue }
                switches.add(1, ordering: .releasing)
                logger.notice("sentinels switched the master; every connection reconnects", metadata: [
                    "master": "\(master)", "from": "\(fields[1]):\(fields[2])", "to": "\(fields[3]):\(fields[4])",
                ])
            default: continue
            }
        }
    }
}
