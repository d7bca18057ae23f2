import Foundation

/// Routes commands over a Redis Cluster: a slot map read with `CLUSTER SLOTS`, one connection per master, each
/// command sent to the master of its key's slot. A pipeline is split per node (a `MULTI` ... `EXEC` travels whole,
/// with the slot of its first keyed command; a `WAIT` goes with the command before it) and answered in order. A
/// `WAIT` after writes to several masters is also sent to each of the others (after their writes), and answers the
/// fewest replicas any of them reached: the writes it follows are all that many replicas deep.
///
/// `MOVED` updates the slot and sends the command again where it now lives (the map is read again at most once a
/// second); `ASK` sends it once, after `ASKING`, to the node importing the slot; `TRYAGAIN` (a multi-key command in
/// a slot half migrated) is sent again after a short pause. A node that stops answering (a master killed, its
/// replica not yet promoted) breaks the whole router: its owner opens a new one, which reads the map again.
final class RedisClusterRouter {
    let endpoint: RedisEndpoint
    private let connectTimeout: Double
    private var commandTimeout: Double?
    /// Node index per slot; -1 for a slot no master serves.
    private var slots: [Int16]
    private var nodes: [RedisEndpoint.Node] = []
    private var connections: [RedisEndpoint.Node: RedisConnection] = [:]
    private var lastRefresh = Date.distantPast
    private(set) var failed = false

    /// Most redirections one command follows before its last error reply is returned.
    static let maximumRedirections = 16
    /// Pauses after `TRYAGAIN`, in milliseconds: about 5 s in all, longer than moving one slot usually takes.
    static let retryPauses = [5, 10, 20, 50, 100, 100, 200, 200, 300, 300, 500, 500, 500, 500, 500, 500, 500]

    init(_ endpoint: RedisEndpoint, seeds: [RedisEndpoint.Node], connectTimeout: Double, commandTimeout: Double?) throws(RedisError) {
        self.endpoint = endpoint
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        slots = Array(repeating: -1, count: RedisClusterSlot.count)
        try refresh(seeds: seeds)
    }

    var isBroken: Bool { failed || connections.values.contains { $0.isBroken } }

    func setTimeout(_ seconds: Double) {
        commandTimeout = seconds
        for connection in connections.values { connection.setTimeout(seconds) }
    }

    /// The masters the map knows, in slot order.
    var masters: [RedisEndpoint.Node] {
        var seen = Set<Int16>()
        return slots.compactMap { index in
            guard index >= 0, seen.insert(index).inserted else { return nil }
            return nodes[Int(index)]
        }
    }

    /// The master serving `slot`, if the map has one.
    func master(of slot: Int) -> RedisEndpoint.Node? {
        let index = slots[slot]
        return index >= 0 ? nodes[Int(index)] : nil
    }

    /// Sends `commands` to the master that serves them (`node`), bypassing routing: per-shard reads such as `INFO`,
    /// `DBSIZE` or `SCAN`.
    func pipeline(_ commands: [RedisCommand], on node: RedisEndpoint.Node) throws(RedisError) -> [RedisReply] {
        try connection(to: node).pipeline(commands)
    }

    // MARK: The slot map

    /// Reads `CLUSTER SLOTS` from the first of `seeds` (then the known masters) that answers.
    private func refresh(seeds: [RedisEndpoint.Node]) throws(RedisError) {
        var failures: [String] = []
        var tried = Set<RedisEndpoint.Node>()
        for seed in seeds + nodes where tried.insert(seed).inserted {
            do throws(RedisError) {
                let reply = try connection(to: seed).command("CLUSTER", "SLOTS").check()
                try apply(slotsReply: reply, from: seed)
                lastRefresh = Date()
                return
            } catch {
                connections[seed] = nil
                failures.append("\(seed): \(error.message)")
            }
        }
        throw .connection("\(endpoint): no cluster node answered CLUSTER SLOTS: \(failures.joined(separator: "; "))")
    }

    private func apply(slotsReply reply: RedisReply, from seed: RedisEndpoint.Node) throws(RedisError) {
        guard let ranges = reply.array else { throw .server("CLUSTER SLOTS answered \(reply)") }
        var fresh = [Int16](repeating: -1, count: RedisClusterSlot.count)
        var known = nodes
        for range in ranges {
            guard let parts = range.array, parts.count >= 3, let first = parts[0].int, let last = parts[1].int,
                let master = parts[2].array, master.count >= 2, let port = master[1].int,
                (0..<RedisClusterSlot.count).contains(first), (first..<RedisClusterSlot.count).contains(last)
            else { throw .server("CLUSTER SLOTS answered an entry this client cannot read: \(range)") }
            // An empty host means "the address you reached me on".
            let host = master[0].text.flatMap { $0.isEmpty || $0 == "?" ? nil : $0 } ?? seed.host
            let node = RedisEndpoint.Node(host: host, port: port)
            let index = known.firstIndex(of: node) ?? { known.append(node); return known.count - 1 }()
            for slot in first...last { fresh[slot] = Int16(index) }
        }
        guard fresh.contains(where: { $0 >= 0 }) else { throw .server("the cluster serves no slot yet (CLUSTER SLOTS is empty)") }
        nodes = known
        slots = fresh
    }

    private func learn(slot: Int, at node: RedisEndpoint.Node) {
        let index = nodes.firstIndex(of: node) ?? { nodes.append(node); return nodes.count - 1 }()
        slots[slot] = Int16(index)
    }

    private func connection(to node: RedisEndpoint.Node) throws(RedisError) -> RedisConnection {
        if let existing = connections[node], !existing.isBroken { return existing }
        let data = RedisEndpoint(
            address: .tcp(host: node.host, port: node.port), username: endpoint.username, password: endpoint.password, tls: endpoint.tls)
        let made = try RedisConnection(data, connectTimeout: connectTimeout, commandTimeout: commandTimeout)
        connections[node] = made
        return made
    }

    // MARK: Routing

    /// Commands sent together to one node: one command, or `MULTI` ... `EXEC`, with a `WAIT` that follows them.
    private struct Unit {
        var range: Range<Int>
        var slot: Int?
        var node: RedisEndpoint.Node?
        var asking = false
        var pauses = 0
        var redirections = 0
        /// For a unit that ends with a `WAIT`: the units before it that the same `WAIT` covers (back to the previous
        /// `WAIT`), whichever node they went to.
        var waitCovers: Range<Int>?
    }

    func pipeline(_ commands: [RedisCommand]) throws(RedisError) -> [RedisReply] {
        if failed { throw .connection("\(endpoint): connection is broken") }
        var units = Self.units(of: commands)
        var replies = [RedisReply](repeating: .null, count: commands.count)
        var pending = Array(units.indices)
        while !pending.isEmpty {
            var byNode: [RedisEndpoint.Node: [Int]] = [:]
            var order: [RedisEndpoint.Node] = []
            for u in pending {
                let node = units[u].node ?? units[u].slot.flatMap(master(of:)) ?? anyNode
                units[u].node = node
                if byNode[node] == nil { order.append(node) }
                byNode[node, default: []].append(u)
            }
            var again: [Int] = []
            var pause = 0
            var stale = false
            // Every node's share is written before any is read: the masters work at the same time.
            var sent: [(node: RedisEndpoint.Node, connection: RedisConnection, count: Int)] = []
            for node in order {
                var batch: [RedisCommand] = []
                for u in byNode[node]! {
                    if units[u].asking { batch.append(RedisCommand("ASKING")) }
                    batch += commands[units[u].range]
                }
                do throws(RedisError) {
                    let link = try connection(to: node)
                    try link.send(batch)
                    sent.append((node, link, batch.count))
                } catch {
                    failed = true
                    throw .connection("\(endpoint) (node \(node)): \(error.message)")
                }
            }
            for (node, link, count) in sent {
                let group = byNode[node]!
                let answers: [RedisReply]
                do throws(RedisError) {
                    answers = try link.receive(count)
                } catch {
                    failed = true
                    throw .connection("\(endpoint) (node \(node)): \(error.message)")
                }
                var at = 0
                for u in group {
                    if units[u].asking { at += 1 }
                    let unitReplies = answers[at..<(at + units[u].range.count)]
                    at += units[u].range.count
                    units[u].asking = false
                    switch Self.redirection(in: unitReplies) {
                    case .moved(let slot, let target) where units[u].redirections < Self.maximumRedirections:
                        learn(slot: slot, at: target)
                        units[u].node = target
                        units[u].redirections += 1
                        stale = true
                        again.append(u)
                    case .ask(let target) where units[u].redirections < Self.maximumRedirections:
                        units[u].node = target
                        units[u].asking = true
                        units[u].redirections += 1
                        again.append(u)
                    case .tryAgain where units[u].pauses < Self.retryPauses.count:
                        pause = max(pause, Self.retryPauses[units[u].pauses])
                        units[u].pauses += 1
                        // Back to the slot's owner: the ASK that led elsewhere may no longer hold.
                        units[u].node = nil
                        again.append(u)
                    default:
                        for (offset, reply) in unitReplies.enumerated() { replies[units[u].range.lowerBound + offset] = reply }
                    }
                }
            }
            if stale && Date().timeIntervalSince(lastRefresh) > 1 {
                // Many slots usually move together (a failover, a reshard): read the whole map, not one slot per MOVED.
                try? refresh(seeds: masters)
            }
            if pause > 0 { usleep(useconds_t(pause * 1000)) }
            pending = again
        }
        try fanOutWaits(commands, units, into: &replies)
        return replies
    }

    /// A `WAIT` was answered by its own unit's node: ask every other node that took writes it covers too, and keep
    /// the smallest count (or the first error).
    private func fanOutWaits(_ commands: [RedisCommand], _ units: [Unit], into replies: inout [RedisReply]) throws(RedisError) {
        var asks: [(wait: Int, node: RedisEndpoint.Node)] = []
        for unit in units {
            guard let covers = unit.waitCovers, let own = unit.node else { continue }
            let others = Set(units[covers].compactMap(\.node)).subtracting([own])
            for node in others.sorted(by: { ($0.host, $0.port) < ($1.host, $1.port) }) { asks.append((unit.range.upperBound - 1, node)) }
        }
        if asks.isEmpty { return }
        var sent: [(wait: Int, node: RedisEndpoint.Node, connection: RedisConnection)] = []
        for ask in asks {
            do throws(RedisError) {
                let link = try connection(to: ask.node)
                try link.send([commands[ask.wait]])
                sent.append((ask.wait, ask.node, link))
            } catch {
                failed = true
                throw .connection("\(endpoint) (node \(ask.node)): \(error.message)")
            }
        }
        for (wait, node, link) in sent {
            let answer: RedisReply
            do throws(RedisError) {
                answer = try link.receive(1)[0]
            } catch {
                failed = true
                throw .connection("\(endpoint) (node \(node)): \(error.message)")
            }
            switch (replies[wait], answer) {
            case (.integer(let mine), .integer(let theirs)): replies[wait] = .integer(min(mine, theirs))
            case (.error, _): break
            default: replies[wait] = answer
            }
        }
    }

    private var anyNode: RedisEndpoint.Node { masters.first ?? nodes[0] }

    private enum Redirection {
        case none
        case moved(slot: Int, node: RedisEndpoint.Node)
        case ask(node: RedisEndpoint.Node)
        case tryAgain
    }

    /// The first redirection among one unit's replies (a queued command's, inside a transaction that then aborts).
    private static func redirection(in replies: ArraySlice<RedisReply>) -> Redirection {
        for reply in replies {
            guard case .error(let message) = reply else { continue }
            if message.hasPrefix("TRYAGAIN") { return .tryAgain }
            let isMoved = message.hasPrefix("MOVED ")
            guard isMoved || message.hasPrefix("ASK ") else { continue }
            // MOVED 3999 127.0.0.1:6381
            let parts = message.split(separator: " ")
            guard parts.count >= 3, let slot = Int(parts[1]), let colon = parts[2].lastIndex(of: ":"),
                let port = Int(parts[2][parts[2].index(after: colon)...])
            else { continue }
            var host = String(parts[2][..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            let node = RedisEndpoint.Node(host: host.isEmpty ? "127.0.0.1" : host, port: port)
            return isMoved ? .moved(slot: slot, node: node) : .ask(node: node)
        }
        return .none
    }

    /// Splits a pipeline into units and finds each unit's slot.
    private static func units(of commands: [RedisCommand]) -> [Unit] {
        var units: [Unit] = []
        var i = 0
        // The first unit after the previous WAIT.
        var covered = 0
        while i < commands.count {
            let name = commands[i].name
            if name == "WAIT", !units.isEmpty, units[units.count - 1].range.upperBound == i {
                units[units.count - 1].range = units[units.count - 1].range.lowerBound..<(i + 1)
                units[units.count - 1].waitCovers = covered..<(units.count - 1)
                covered = units.count
                i += 1
                continue
            }
            var end = i + 1
            if name == "MULTI" {
                while end < commands.count {
                    let inner = commands[end].name
                    end += 1
                    if inner == "EXEC" || inner == "DISCARD" { break }
                }
            }
            let slot = commands[i..<end].lazy.compactMap(\.routingSlot).first
            units.append(Unit(range: i..<end, slot: slot))
            i = end
        }
        return units
    }
}

extension RedisCommand {
    /// The command name, upper-cased.
    var name: String {
        guard let first = arguments.first else { return "" }
        return first.withRedisBytes { String(decoding: $0, as: UTF8.self) }.uppercased()
    }

    /// The slot of the command's first key; nil for a command without keys.
    var routingSlot: Int? {
        let name = self.name
        let keyIndex: Int
        switch name {
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
            guard arguments.count > 3, let count = arguments[2].withRedisBytes({ Int(String(decoding: $0, as: UTF8.self)) }), count > 0
            else { return nil }
            keyIndex = 3
        case "MULTI", "EXEC", "DISCARD", "WAIT", "PING", "INFO", "CLUSTER", "ROLE", "ASKING", "SCRIPT", "FLUSHALL", "FLUSHDB",
            "DBSIZE", "TIME", "CLIENT", "CONFIG", "AUTH", "HELLO", "SELECT", "ECHO", "COMMAND", "READONLY", "READWRITE", "SCAN",
            "KEYS", "PUBLISH", "RANDOMKEY", "LASTSAVE", "SAVE", "BGSAVE", "MEMORY", "SLOWLOG", "LATENCY", "FUNCTION":
            return nil
        default:
            keyIndex = 1
        }
        guard arguments.count > keyIndex else { return nil }
        return arguments[keyIndex].withRedisBytes { RedisClusterSlot.of($0) }
    }
}
