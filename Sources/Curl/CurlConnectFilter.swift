internal import CCurl
internal import CShims
internal import Glibc
import Foundation

/// Which addresses a request may connect to, checked by libcurl's `CURLOPT_OPENSOCKETFUNCTION` for every address
/// it tries, after resolution, just before the socket exists: a name that resolves (or re-resolves: DNS rebinding) to
/// loopback, a private or a link-local range is refused without a connection. A request with a filter also goes
/// direct (no proxy from the environment), follows no redirect and speaks only the filter's schemes.
public final class CurlConnectFilter: @unchecked Sendable {
    /// URL schemes libcurl may use (`https`; `http` only where a test switch allows it).
    public let schemes: [String]
    /// 127.0.0.0/8 and ::1 are allowed (the test stand-in on loopback); every other refused range still is.
    public let allowLoopback: Bool
    private let lock = NSLock()
    private var refusedAddresses: [String] = []

    public init(schemes: [String] = ["https"], allowLoopback: Bool = false) {
        self.schemes = schemes
        self.allowLoopback = allowLoopback
    }

    /// The addresses refused during the last transfer, as text (`127.0.0.1`, `::1`).
    public var refused: [String] {
        lock.lock()
        defer { lock.unlock() }
        return refusedAddresses
    }

    fileprivate func note(_ address: String) {
        lock.lock()
        if refusedAddresses.count < 16 { refusedAddresses.append(address) }
        lock.unlock()
    }

    /// Why an address must not be connected to (`loopback`, `private`, ...), or nil when it may be.
    public func problem(ipv4 bytes: [UInt8]) -> String? {
        if allowLoopback, bytes.first == 127 { return nil }
        return Self.restricted(ipv4: bytes)
    }

    public func problem(ipv6 bytes: [UInt8]) -> String? {
        if bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
            return problem(ipv4: Array(bytes[12..<16]))
        }
        if allowLoopback, bytes == [UInt8](repeating: 0, count: 15) + [1] { return nil }
        return Self.restricted(ipv6: bytes)
    }

    /// The range an IPv4 address lies in when it is not a public unicast address, else nil.
    public static func restricted(ipv4 b: [UInt8]) -> String? {
        guard b.count == 4 else { return "malformed" }
        switch (b[0], b[1]) {
        case (0, _): return "unspecified (0.0.0.0/8)"
        case (10, _): return "private (10.0.0.0/8)"
        case (100, 64...127): return "shared address space (100.64.0.0/10)"
        case (127, _): return "loopback (127.0.0.0/8)"
        case (169, 254): return "link-local (169.254.0.0/16)"
        case (172, 16...31): return "private (172.16.0.0/12)"
        case (192, 168): return "private (192.168.0.0/16)"
        case (192, 0) where b[2] == 0: return "IETF protocol assignments (192.0.0.0/24)"
        case (198, 18...19): return "benchmarking (198.18.0.0/15)"
        case (224...239, _): return "multicast (224.0.0.0/4)"
        case (240...255, _): return "reserved (240.0.0.0/4)"
        default: return nil
        }
    }

    public static func restricted(ipv6 b: [UInt8]) -> String? {
        guard b.count == 16 else { return "malformed" }
        if b[0..<15].allSatisfy({ $0 == 0 }) { return b[15] == 1 ? "loopback (::1)" : "unspecified (::)" }
        if b[0..<10].allSatisfy({ $0 == 0 }), b[10] == 0xff, b[11] == 0xff { return restricted(ipv4: Array(b[12..<16])) }
        // NAT64 (64:ff9b::/96) reaches the embedded IPv4 address.
        if b[0] == 0, b[1] == 0x64, b[2] == 0xff, b[3] == 0x9b, b[4..<12].allSatisfy({ $0 == 0 }) {
            return restricted(ipv4: Array(b[12..<16]))
        }
        if b[0] & 0xfe == 0xfc { return "unique local (fc00::/7)" }
        if b[0] == 0xfe, b[1] & 0xc0 == 0x80 { return "link-local (fe80::/10)" }
        if b[0] == 0xfe, b[1] & 0xc0 == 0xc0 { return "site-local (fec0::/10)" }
        if b[0] == 0xff { return "multicast (ff00::/8)" }
        return nil
    }
}

/// libcurl asks for each socket it is about to connect: the address is checked, and refused with `CURL_SOCKET_BAD`.
private let openCheckedSocket: curl_opensocket_callback = { clientp, _, address in
    guard let clientp, let address else { return CURL_SOCKET_BAD }
    let filter = Unmanaged<CurlConnectFilter>.fromOpaque(clientp).takeUnretainedValue()
    let family = address.pointee.family
    // `addr` is a `struct sockaddr` inside a larger storage: read the family's own layout from its start.
    let base = UnsafeRawPointer(address) + MemoryLayout<curl_sockaddr>.offset(of: \curl_sockaddr.addr)!
    let problem: String?
    let text: String
    if family == AF_INET {
        let bytes = (0..<4).map { base.load(fromByteOffset: 4 + $0, as: UInt8.self) }
        problem = filter.problem(ipv4: bytes)
        text = bytes.map(String.init).joined(separator: ".")
    } else if family == AF_INET6 {
        let bytes = (0..<16).map { base.load(fromByteOffset: 8 + $0, as: UInt8.self) }
        problem = filter.problem(ipv6: bytes)
        text = stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }.joined(separator: ":")
    } else {
        problem = "not an IP address"
        text = "family \(family)"
    }
    if let problem {
        filter.note("\(text) (\(problem))")
        return CURL_SOCKET_BAD
    }
    return socket(family, address.pointee.socktype | Int32(SOCK_CLOEXEC.rawValue), address.pointee.protocol)
}

extension CurlEasy {
    /// Installs `filter` for the next transfer (options persist until `reset()`).
    func apply(_ filter: CurlConnectFilter) throws(CurlError) {
        try setOption(CurlOption(CURLOPT_OPENSOCKETFUNCTION), pointer: unsafeBitCast(openCheckedSocket, to: UnsafeMutableRawPointer.self))
        try setOption(CurlOption(CURLOPT_OPENSOCKETDATA), pointer: Unmanaged.passUnretained(filter).toOpaque())
        try setOption(CurlOption(CURLOPT_PROTOCOLS_STR), filter.schemes.joined(separator: ","))
        try setOption(CurlOption(CURLOPT_REDIR_PROTOCOLS_STR), filter.schemes.joined(separator: ","))
        try setOption(.followLocation, 0)
        // An empty proxy: no `https_proxy` from the environment, whose address the filter would see instead.
        try setOption(CurlOption(CURLOPT_PROXY), "")
    }
}
