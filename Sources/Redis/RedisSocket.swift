internal import CLibSSL
import Foundation

/// One blocking stream to a Redis server: TCP (IPv4 or IPv6), a unix socket, or TLS over TCP.
///
/// Reads and writes block up to the timeout set with `setTimeout`; a failure is thrown as a message and the
/// socket must be discarded.
final class RedisSocket {
    private let fd: Int32
    private var ssl: OpaquePointer?
    /// Kept alive as long as `ssl`, which refers to it.
    private let context: TLSContext?
    /// Whether this TLS connection presents no client certificate: a server that requires one drops it after the
    /// handshake, and the error says so.
    private let anonymous: Bool

    private init(fd: Int32, ssl: OpaquePointer?, context: TLSContext?, anonymous: Bool = false) {
        self.fd = fd
        self.ssl = ssl
        self.context = context
        self.anonymous = anonymous
    }

    deinit {
        if let ssl { SSL_free(ssl) }
        close(fd)
    }

    /// Connects to `host:port` (every address it resolves to, in order) and, with `tls`, completes the handshake,
    /// all within `timeout` seconds.
    static func tcp(host: String, port: Int, tls: RedisTLS?, timeout: Double) throws(RedisError) -> RedisSocket {
        let deadline = Date().addingTimeInterval(timeout)
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        // No AI_ADDRCONFIG: on a host with only loopback configured it would hide 127.0.0.1 and ::1.
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let list else {
            throw .connection("cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(list) }
        var failure = "no address"
        var next: UnsafeMutablePointer<addrinfo>? = list
        while let info = next {
            next = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if fd < 0 { failure = "socket: \(errnoText())"; continue }
            do throws(RedisError) {
                try connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen, deadline: deadline)
            } catch {
                close(fd)
                if case .connection(let m) = error { failure = m }
                continue
            }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            guard let tls else { return RedisSocket(fd: fd, ssl: nil, context: nil) }
            let context: TLSContext
            do throws(RedisError) { context = try TLSContext(tls) } catch {
                close(fd)
                throw error
            }
            return try handshake(fd: fd, context: context, host: host, tls: tls, deadline: deadline)
        }
        throw .connection(failure)
    }

    /// Connects to the unix socket at `path` within `timeout` seconds.
    static func unix(path: String, timeout: Double) throws(RedisError) -> RedisSocket {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else { throw .connection("unix socket path is longer than \(capacity - 1) bytes: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .connection("socket: \(errnoText())") }
        do throws(RedisError) {
            try withUnsafePointer(to: &address) { pointer throws(RedisError) in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa throws(RedisError) in
                    try connect(fd, sa, socklen_t(MemoryLayout<sockaddr_un>.size), deadline: Date().addingTimeInterval(timeout))
                }
            }
        } catch {
            close(fd)
            throw error
        }
        return RedisSocket(fd: fd, ssl: nil, context: nil)
    }

    /// A non-blocking connect bounded by `deadline`; the socket is left blocking.
    private static func connect(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t, deadline: Date) throws(RedisError) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        if Glibc.connect(fd, address, length) != 0 {
            guard errno == EINPROGRESS || errno == EINTR else { throw .connection("connect: \(errnoText())") }
            var ready = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            while true {
                let left = Int32(max(0, deadline.timeIntervalSinceNow * 1000).rounded(.up))
                let n = poll(&ready, 1, left)
                if n < 0 && errno == EINTR { continue }
                if n < 0 { throw .connection("connect: \(errnoText())") }
                if n == 0 { throw .connection("connect: timed out") }
                break
            }
            var error: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size)
            if error != 0 { throw .connection("connect: \(String(cString: strerror(error)))") }
        }
        _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
    }

    private static func handshake(fd: Int32, context: TLSContext, host: String, tls: RedisTLS, deadline: Date) throws(RedisError) -> RedisSocket {
        guard let ssl = SSL_new(context.handle) else {
            close(fd)
            throw .connection("TLS: \(TLSContext.lastError())")
        }
        // From here the socket owns `fd` and `ssl`: every failure below closes both.
        let socket = RedisSocket(fd: fd, ssl: ssl, context: context, anonymous: tls.certFile == nil)
        SSL_set_fd(ssl, fd)
        if !isIPAddress(host) {
            // SNI carries host names only (RFC 6066), never address literals.
            _ = conveyor_ssl_set_sni(ssl, host)
        }
        if !tls.insecure {
            let set = isIPAddress(host) ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) : SSL_set1_host(ssl, host)
            guard set == 1 else { throw .connection("TLS: cannot verify against host \(host): \(TLSContext.lastError())") }
        }
        socket.setTimeout(max(0.001, deadline.timeIntervalSinceNow))
        ERR_clear_error()
        let result = SSL_connect(ssl)
        if result != 1 {
            let verify = SSL_get_verify_result(ssl)
            if verify != X509_V_OK {
                let reason = String(cString: X509_verify_cert_error_string(verify))
                throw .connection("TLS: the server's certificate was refused: \(reason) (check CONVEYOR_REDIS_CA_FILE and the host name in the URL)")
            }
            throw .connection("TLS handshake: \(socket.failure(result))")
        }
        return socket
    }

    /// How long a read or write may block; `nil` or zero waits forever.
    func setTimeout(_ seconds: Double?) {
        let s = max(0, seconds ?? 0)
        let whole = s.rounded(.down)
        var tv = timeval(tv_sec: Int(whole), tv_usec: Int((s - whole) * 1_000_000))
        if s > 0 && tv.tv_sec == 0 && tv.tv_usec == 0 { tv.tv_usec = 1 }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Writes all of `bytes`: one system call unless the kernel's buffer fills up.
    func send(_ bytes: UnsafeRawBufferPointer) throws(RedisError) {
        guard var base = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let n: Int
            if let ssl {
                ERR_clear_error()
                let r = SSL_write(ssl, base, Int32(min(left, Int(Int32.max))))
                if r <= 0 { throw .connection("write: \(failure(r))") }
                n = Int(r)
            } else {
                n = Glibc.send(fd, base, left, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw .connection("write: \(Self.socketErrorText())")
                }
            }
            base += n
            left -= n
        }
    }

    /// Whether a read would return data (or the peer's close) within `seconds`: TLS records already decrypted count.
    /// For a subscriber that waits for messages without a socket timeout breaking the connection.
    func waitReadable(_ seconds: Double) -> Bool {
        if let ssl, SSL_pending(ssl) > 0 { return true }
        var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(max(0, seconds * 1000).rounded(.up))
        while true {
            let n = poll(&ready, 1, milliseconds)
            if n < 0 && errno == EINTR { continue }
            return n > 0
        }
    }

    /// Reads what is available, at least one byte, into `buffer`; the peer closing the stream is an error.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws(RedisError) -> Int {
        while true {
            if let ssl {
                ERR_clear_error()
                let r = SSL_read(ssl, buffer.baseAddress, Int32(min(buffer.count, Int(Int32.max))))
                if r > 0 { return Int(r) }
                throw .connection("read: \(failure(r))")
            }
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n > 0 { return n }
            if n == 0 { throw .connection("connection closed by the server") }
            if errno == EINTR { continue }
            throw .connection("read: \(Self.socketErrorText())")
        }
    }

    /// Why an `SSL_*` call returned `result`, read right at the failure.
    private func failure(_ result: Int32) -> String {
        let reason = tlsReason(result)
        guard anonymous, reason.contains("closed") || reason.contains("reset") || reason.contains("Broken pipe") else { return reason }
        return reason + " (a server that requires client certificates drops connections without one: set CONVEYOR_REDIS_CERT_FILE and CONVEYOR_REDIS_KEY_FILE)"
    }

    private func tlsReason(_ result: Int32) -> String {
        let code = SSL_get_error(ssl, result)
        switch code {
        case SSL_ERROR_ZERO_RETURN:
            return "connection closed by the server"
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return "timed out"
        case SSL_ERROR_SYSCALL:
            let queued = ERR_peek_error()
            if queued != 0 { return TLSContext.lastError() }
            if errno == 0 || result == 0 { return "connection closed by the server" }
            return Self.socketErrorText()
        default:
            return TLSContext.lastError()
        }
    }

    /// `errno` after a socket call; a socket timeout reads as "timed out".
    private static func socketErrorText() -> String {
        if errno == EAGAIN || errno == EWOULDBLOCK { return "timed out" }
        return errnoText()
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }

    private static func isIPAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}

@available(*, unavailable)
extension RedisSocket: Sendable {}
