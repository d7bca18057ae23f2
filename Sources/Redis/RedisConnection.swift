internal import CHiredis
import Foundation
import Synchronization

/// One blocking connection to Redis: Conveyor's own socket (TCP, unix, TLS), hiredis' RESP encoder and reply
/// reader. Use it from one thread at a time.
///
/// Calls block the calling thread: run them on a dedicated thread (see `RedisThread`), never on Swift's
/// cooperative pool.
public final class RedisConnection {
    var socket: RedisSocket?
    private var reader: UnsafeMutablePointer<redisReader>
    /// One read buffer per connection: a pipeline's replies usually arrive in one `recv`.
    private let input: UnsafeMutableRawBufferPointer
    private var output: [UInt8] = []
    var failed = false
    public let endpoint: RedisEndpoint
    /// The data node this connection talks to: the endpoint's address, or the master a sentinel named.
    public private(set) var server: RedisEndpoint.Node?
    /// For a sentinel endpoint: the process's `+switch-master` listener, and its count when this connection found
    /// its master. A later count means the master changed: the connection is broken.
    var watch: SentinelWatch?
    var connectedGeneration = 0
    /// For a cluster endpoint: the router this connection hands every command to.
    var cluster: RedisClusterRouter?

    /// Connects, authenticates and selects the database named by the endpoint. A sentinel endpoint asks its
    /// sentinels, in order, for the master and checks with `ROLE` that it is one.
    public init(_ endpoint: RedisEndpoint, connectTimeout: Double = 5, commandTimeout: Double? = 30) throws(RedisError) {
        _ = Self.ignoreBrokenPipes
        self.endpoint = endpoint
        guard let reader = redisReaderCreate() else { throw .connection("cannot allocate a reply reader for \(endpoint)") }
        self.reader = reader
        input = .allocate(byteCount: 64 << 10, alignment: 16)
        if let tls = endpoint.tls, tls.insecure { Self.warnInsecure(endpoint) }
        switch endpoint.address {
        case .tcp(let host, let port):
            try open(host: host, port: port, connectTimeout: connectTimeout, commandTimeout: commandTimeout)
        case .unix(let path):
            do throws(RedisError) {
                socket = try RedisSocket.unix(path: path, timeout: connectTimeout)
            } catch {
                throw .connection("\(endpoint): \(error.message)")
            }
            socket?.setTimeout(commandTimeout)
        case .sentinel(let nodes, let master):
            try openMaster(nodes: nodes, name: master, connectTimeout: connectTimeout, commandTimeout: commandTimeout)
        case .cluster(let nodes):
            // Each node's connection authenticates itself.
            cluster = try RedisClusterRouter(endpoint, seeds: nodes, connectTimeout: connectTimeout, commandTimeout: commandTimeout)
            return
        }
        if case .sentinel = endpoint.address {} else { try authenticate() }
        if endpoint.database != 0 {
            try command("SELECT", endpoint.database).check()
        }
    }

    deinit {
        watch?.release()
        redisReaderFree(reader)
        input.deallocate()
    }

    /// Plain sockets send with `MSG_NOSIGNAL`, but OpenSSL writes with `write(2)`: a server that went away (restart,
    /// failover) would raise SIGPIPE and kill the process. Ignored process-wide, once; the write then fails with EPIPE
    /// and the connection counts as broken.
    private static let ignoreBrokenPipes: Void = {
        signal(SIGPIPE, SIG_IGN)
    }()

    /// Opens the socket to one data node, with TLS when the endpoint asks for it.
    func open(host: String, port: Int, connectTimeout: Double, commandTimeout: Double?) throws(RedisError) {
        let node = RedisEndpoint.Node(host: host, port: port)
        do throws(RedisError) {
            socket = try RedisSocket.tcp(host: host, port: port, tls: endpoint.tls, timeout: connectTimeout)
        } catch {
            throw .connection("\(endpoint)\(endpoint.address == .tcp(host: host, port: port) ? "" : " (master \(node))"): \(error.message)")
        }
        socket?.setTimeout(commandTimeout)
        server = node
    }

    /// `AUTH [user] password` when the endpoint has a password; the password never appears in an error.
    func authenticate() throws(RedisError) {
        guard let password = endpoint.password else { return }
        var auth: [any RedisArgument] = ["AUTH"]
        if let user = endpoint.username { auth.append(user) }
        auth.append(password)
        let reply = try command(RedisCommand(auth))
        if case .error(let message) = reply {
            throw .server("AUTH as \(endpoint.username ?? "default") on \(endpoint) refused: \(message)")
        }
    }

    /// Closes the socket and forgets any partial reply read from it, before connecting elsewhere.
    func discardSocket() throws(RedisError) {
        socket = nil
        failed = false
        server = nil
        guard let fresh = redisReaderCreate() else { throw .connection("cannot allocate a reply reader for \(endpoint)") }
        redisReaderFree(reader)
        reader = fresh
    }

    /// Sets how long a read or write may block before the connection is declared broken.
    /// Blocking commands (`BLMOVE ... timeout`) need a socket timeout longer than their own.
    public func setTimeout(_ seconds: Double) {
        cluster?.setTimeout(seconds)
        socket?.setTimeout(seconds)
    }

    /// Whether the connection failed, or its server stopped being a writable master (`READONLY`, `LOADING`: a
    /// failover or a restart); a broken connection must be replaced.
    public var isBroken: Bool {
        if let cluster { return cluster.isBroken }
        return socket == nil || failed || masterSwitched
    }

    /// Whether the sentinels announced a new master since this connection found its own.
    public var masterSwitched: Bool {
        guard let watch else { return false }
        return watch.generation != connectedGeneration
    }

    /// Sends one command and waits for its reply. An error reply is returned, not thrown.
    @discardableResult
    public func command(_ arguments: any RedisArgument...) throws(RedisError) -> RedisReply {
        try command(RedisCommand(arguments))
    }

    @discardableResult
    public func command(_ command: RedisCommand) throws(RedisError) -> RedisReply {
        try pipeline([command])[0]
    }

    /// Sends every command in one write and reads all the replies: one round trip.
    public func pipeline(_ commands: [RedisCommand]) throws(RedisError) -> [RedisReply] {
        if let cluster { return try cluster.pipeline(commands) }
        try send(commands)
        return try receive(commands.count)
    }

    /// Writes `commands` without reading their replies (`receive` reads them): the cluster router writes to every
    /// node before it reads from any, so the nodes work at the same time.
    func send(_ commands: [RedisCommand]) throws(RedisError) {
        guard let socket else { throw .connection("connection is closed") }
        if failed { throw .connection("\(endpoint): connection is broken") }
        output.removeAll(keepingCapacity: true)
        for command in commands {
            guard Self.append(command, to: &output) else { throw broken("cannot encode \(command.arguments.count) arguments") }
        }
        let unsent: RedisError? = output.withUnsafeBytes { bytes in
            do throws(RedisError) {
                try socket.send(bytes)
                return nil
            } catch {
                return error
            }
        }
        if let unsent { throw broken(unsent.message) }
        // A one-off large write (a big value) should not stay allocated for the connection's lifetime.
        if output.capacity > 1 << 20 { output = [] }
    }

    /// Reads the replies of the `count` commands `send` wrote, in order.
    func receive(_ count: Int) throws(RedisError) -> [RedisReply] {
        guard let socket else { throw .connection("connection is closed") }
        var replies: [RedisReply] = []
        replies.reserveCapacity(count)
        while replies.count < count {
            var raw: UnsafeMutableRawPointer?
            if redisReaderGetReply(reader, &raw) != REDIS_OK { throw broken("protocol error: \(readerError())") }
            if let raw {
                let reply = raw.assumingMemoryBound(to: redisReply.self)
                defer { freeReplyObject(raw) }
                let copied = Self.copy(reply)
                if case .error(let message) = copied, Self.demotingPrefixes.contains(where: { message.hasPrefix($0) }) {
                    // This server is not (or no longer) a writable master: reconnect, which asks the sentinels again.
                    failed = true
                }
                replies.append(copied)
                continue
            }
            try feed(from: socket)
        }
        return replies
    }

    /// One read from the socket into hiredis' reader.
    private func feed(from socket: RedisSocket) throws(RedisError) {
        let n: Int
        do throws(RedisError) { n = try socket.receive(into: input) } catch { throw broken(error.message) }
        if redisReaderFeed(reader, input.baseAddress!.assumingMemoryBound(to: CChar.self), n) != REDIS_OK {
            throw broken("protocol error: \(readerError())")
        }
    }

    /// Sends `command` without waiting for its reply: for a subscribed connection, whose replies arrive among its
    /// messages and are read with `nextReply(within:)`.
    public func send(_ command: RedisCommand) throws(RedisError) {
        try send([command])
    }

    /// The next reply or pushed message, or `nil` when none arrives within `seconds` (the connection stays usable).
    public func nextReply(within seconds: Double) throws(RedisError) -> RedisReply? {
        guard let socket else { throw .connection("connection is closed") }
        if failed { throw .connection("\(endpoint): connection is broken") }
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            var raw: UnsafeMutableRawPointer?
            if redisReaderGetReply(reader, &raw) != REDIS_OK { throw broken("protocol error: \(readerError())") }
            if let raw {
                defer { freeReplyObject(raw) }
                return Self.copy(raw.assumingMemoryBound(to: redisReply.self))
            }
            let left = deadline.timeIntervalSinceNow
            guard left > 0, socket.waitReadable(left) else { return nil }
            try feed(from: socket)
        }
    }

    /// Error replies after which this connection's server cannot take Conveyor's writes.
    private static let demotingPrefixes = ["READONLY", "LOADING", "MASTERDOWN", "UNBLOCKED"]

    private func broken(_ message: String) -> RedisError {
        failed = true
        return .connection("\(endpoint)\(serverSuffix): \(message)")
    }

    /// " (master h:p)" for a sentinel endpoint, so an error names the node that failed.
    private var serverSuffix: String {
        guard case .sentinel = endpoint.address, let server else { return "" }
        return " (master \(server))"
    }

    private func readerError() -> String {
        withUnsafeBytes(of: reader.pointee.errstr) { raw in
            let chars = raw.bindMemory(to: UInt8.self)
            let end = chars.firstIndex(of: 0) ?? chars.count
            return String(decoding: chars[..<end], as: UTF8.self)
        }
    }

    /// Appends one command in RESP (`*<n>\r\n` then `$<len>\r\n<bytes>\r\n` per argument) to `output`, each
    /// argument's bytes copied once, straight from the argument (no intermediate buffer, no printf).
    private static func append(_ command: RedisCommand, to output: inout [UInt8]) -> Bool {
        appendHeader(UInt8(ascii: "*"), command.arguments.count, to: &output)
        for argument in command.arguments {
            argument.withRedisBytes { bytes in
                appendHeader(UInt8(ascii: "$"), bytes.count, to: &output)
                output.append(contentsOf: bytes)
                output.append(13)
                output.append(10)
            }
        }
        return true
    }

    /// `<prefix><n>\r\n`, `n` in decimal.
    static func appendHeader(_ prefix: UInt8, _ n: Int, to output: inout [UInt8]) {
        output.append(prefix)
        var value = UInt(max(0, n))
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[19 - count] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
                count += 1
            } while value > 0
            output.append(contentsOf: buffer[(20 - count)...])
        }
        output.append(13)
        output.append(10)
    }

    private static func copy(_ reply: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            return .string(bytes(r.str, r.len))
        case REDIS_REPLY_STATUS:
            return .status(String(decoding: bytes(r.str, r.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: bytes(r.str, r.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(Int(r.integer))
        case REDIS_REPLY_ARRAY:
            var items: [RedisReply] = []
            items.reserveCapacity(Int(r.elements))
            for i in 0..<Int(r.elements) {
                if let child = r.element[i] { items.append(copy(child)) } else { items.append(.null) }
            }
            return .array(items)
        default:
            return .null
        }
    }

    private static func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ length: Int) -> [UInt8] {
        guard let pointer, length > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: length))
    }

    private static let insecureWarned = Mutex<Set<String>>([])

    /// Says on standard error, once per endpoint and process, that certificates are not checked.
    private static func warnInsecure(_ endpoint: RedisEndpoint) {
        let first = insecureWarned.withLock { $0.insert(endpoint.description).inserted }
        guard first else { return }
        FileHandle.standardError.write(Data(
            "WARNING: CONVEYOR_REDIS_TLS_INSECURE is set: the certificate of \(endpoint) is NOT verified. Tests only, never production.\n".utf8))
    }
}

@available(*, unavailable)
extension RedisConnection: Sendable {}
