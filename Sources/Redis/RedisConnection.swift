internal import CHiredis
import Foundation

/// One blocking connection to Redis (hiredis). Use it from one thread at a time.
///
/// Calls block the calling thread: run them on a dedicated thread (see `RedisThread`), never on Swift's
/// cooperative pool.
public final class RedisConnection {
    private var context: UnsafeMutablePointer<redisContext>?
    public let endpoint: RedisEndpoint

    /// Connects, authenticates and selects the database named by the endpoint.
    public init(_ endpoint: RedisEndpoint, connectTimeout: Double = 5, commandTimeout: Double? = 30) throws(RedisError) {
        _ = Self.ignoreBrokenPipes
        self.endpoint = endpoint
        var tv = Self.timeval(connectTimeout)
        let ctx: UnsafeMutablePointer<redisContext>? =
            switch endpoint.address {
            case .tcp(let host, let port): redisConnectWithTimeout(host, Int32(port), tv)
            case .unix(let path): redisConnectUnixWithTimeout(path, tv)
            }
        guard let ctx else { throw .connection("cannot allocate a connection to \(endpoint)") }
        if ctx.pointee.err != 0 {
            let message = Self.errorString(ctx)
            redisFree(ctx)
            throw .connection("\(endpoint): \(message)")
        }
        context = ctx
        if let commandTimeout {
            tv = Self.timeval(commandTimeout)
            redisSetTimeout(ctx, tv)
        }
        if let password = endpoint.password {
            var auth: [any RedisArgument] = ["AUTH"]
            if let user = endpoint.username { auth.append(user) }
            auth.append(password)
            try command(RedisCommand(auth)).check()
        }
        if endpoint.database != 0 {
            try command("SELECT", endpoint.database).check()
        }
    }

    deinit {
        if let context { redisFree(context) }
    }

    /// hiredis writes with `write(2)`: a server that went away (restart, failover) would raise SIGPIPE and kill the
    /// process. Ignored process-wide, once; the write then fails with EPIPE and the connection counts as broken.
    private static let ignoreBrokenPipes: Void = {
        signal(SIGPIPE, SIG_IGN)
    }()

    /// Sets how long a read or write may block before the connection is declared broken.
    /// Blocking commands (`BLMOVE ... timeout`) need a socket timeout longer than their own.
    public func setTimeout(_ seconds: Double) {
        guard let context else { return }
        redisSetTimeout(context, Self.timeval(seconds))
    }

    /// Whether the connection failed; a broken connection must be replaced.
    public var isBroken: Bool { context == nil || context!.pointee.err != 0 }

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
        guard let context else { throw .connection("connection is closed") }
        if context.pointee.err != 0 { throw .connection(Self.errorString(context)) }
        for command in commands {
            let status = Self.append(context, command)
            if status != REDIS_OK { throw brokenConnection() }
        }
        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            if redisGetReply(context, &raw) != REDIS_OK || raw == nil { throw brokenConnection() }
            let reply = raw!.assumingMemoryBound(to: redisReply.self)
            defer { freeReplyObject(raw) }
            replies.append(Self.copy(reply))
        }
        return replies
    }

    private func brokenConnection() -> RedisError {
        guard let context else { return .connection("connection is closed") }
        let message = Self.errorString(context)
        return .connection("\(endpoint): \(message.isEmpty ? "connection lost" : message)")
    }

    /// Appends one command to hiredis' output buffer; the argument bytes are laid out in one buffer.
    private static func append(_ context: UnsafeMutablePointer<redisContext>, _ command: RedisCommand) -> Int32 {
        var storage: [UInt8] = []
        var lengths: [Int] = []
        lengths.reserveCapacity(command.arguments.count)
        for argument in command.arguments {
            argument.withRedisBytes { bytes in
                storage.append(contentsOf: bytes)
                lengths.append(bytes.count)
            }
        }
        return storage.withUnsafeBufferPointer { base -> Int32 in
            var pointers: [UnsafePointer<CChar>?] = []
            pointers.reserveCapacity(lengths.count)
            var offset = 0
            // An empty buffer has no base address; hiredis reads no bytes for zero-length arguments.
            let start = base.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(bitPattern: 1)!
            for length in lengths {
                pointers.append((start + offset).assumingMemoryBound(to: CChar.self))
                offset += length
            }
            return pointers.withUnsafeMutableBufferPointer { argv in
                lengths.withUnsafeBufferPointer { argvlen in
                    redisAppendCommandArgv(context, Int32(lengths.count), argv.baseAddress, argvlen.baseAddress)
                }
            }
        }
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

    private static func errorString(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            let chars = raw.bindMemory(to: UInt8.self)
            let end = chars.firstIndex(of: 0) ?? chars.count
            return String(decoding: chars[..<end], as: UTF8.self)
        }
    }

    private static func timeval(_ seconds: Double) -> Glibc.timeval {
        let whole = seconds.rounded(.down)
        return Glibc.timeval(tv_sec: Int(whole), tv_usec: Int((seconds - whole) * 1_000_000))
    }
}

@available(*, unavailable)
extension RedisConnection: Sendable {}
