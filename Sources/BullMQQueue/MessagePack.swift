public import ConveyorCore

/// The few MessagePack values BullMQ's scripts unpack with `cmsgpack.unpack` (worker options, lock tokens and ids,
/// fields to update), encoded as Python's `msgpack.packb(..., use_bin_type=True)` encodes them.
public indirect enum MessagePack: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    /// A float64 (msgpack-python packs every Python float so).
    case double(Double)
    case string(String)
    case array([MessagePack])
    /// Keys in the given order (msgpack maps are ordered on the wire; Lua tables do not care).
    case map([(String, MessagePack)])

    public static func == (lhs: MessagePack, rhs: MessagePack) -> Bool { lhs.encoded() == rhs.encoded() }

    /// The value's MessagePack bytes.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }

    private func encode(into out: inout [UInt8]) {
        switch self {
        case .null: out.append(0xC0)
        case .bool(let b): out.append(b ? 0xC3 : 0xC2)
        case .int(let i): Self.integer(i, into: &out)
        case .double(let d):
            out.append(0xCB)
            Self.bigEndian(d.bitPattern, bytes: 8, into: &out)
        case .string(let s):
            let bytes = Array(s.utf8)
            let n = bytes.count
            if n < 32 {
                out.append(0xA0 | UInt8(n))
            } else if n <= 0xFF {
                out += [0xD9, UInt8(n)]
            } else if n <= 0xFFFF {
                out.append(0xDA)
                Self.bigEndian(UInt64(n), bytes: 2, into: &out)
            } else {
                out.append(0xDB)
                Self.bigEndian(UInt64(n), bytes: 4, into: &out)
            }
            out += bytes
        case .array(let items):
            Self.header(items.count, fix: 0x90, sixteen: 0xDC, thirtyTwo: 0xDD, into: &out)
            for item in items { item.encode(into: &out) }
        case .map(let pairs):
            Self.header(pairs.count, fix: 0x80, sixteen: 0xDE, thirtyTwo: 0xDF, into: &out)
            for (key, value) in pairs {
                MessagePack.string(key).encode(into: &out)
                value.encode(into: &out)
            }
        }
    }

    /// A JSON value as msgpack-python packs what `json.loads` made of it: integers as integers, other numbers as
    /// float64, objects as maps in their order.
    public init(_ json: JSONValue) {
        switch json {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .string(let s): self = .string(s)
        case .number(let text):
            if let i = Int(text) { self = .int(i) } else { self = .double(json.doubleValue ?? 0) }
        case .array(let items): self = .array(items.map(MessagePack.init))
        case .object(let o): self = .map(o.map { ($0.key, MessagePack($0.value)) })
        }
    }

    private static func header(_ n: Int, fix: UInt8, sixteen: UInt8, thirtyTwo: UInt8, into out: inout [UInt8]) {
        if n < 16 {
            out.append(fix | UInt8(n))
        } else if n <= 0xFFFF {
            out.append(sixteen)
            bigEndian(UInt64(n), bytes: 2, into: &out)
        } else {
            out.append(thirtyTwo)
            bigEndian(UInt64(truncatingIfNeeded: n), bytes: 4, into: &out)
        }
    }

    /// The smallest encoding msgpack-python picks for an integer.
    private static func integer(_ i: Int, into out: inout [UInt8]) {
        if i >= 0 {
            let u = UInt64(i)
            if u < 0x80 {
                out.append(UInt8(u))
            } else if u <= 0xFF {
                out += [0xCC, UInt8(u)]
            } else if u <= 0xFFFF {
                out.append(0xCD)
                bigEndian(u, bytes: 2, into: &out)
            } else if u <= 0xFFFF_FFFF {
                out.append(0xCE)
                bigEndian(u, bytes: 4, into: &out)
            } else {
                out.append(0xCF)
                bigEndian(u, bytes: 8, into: &out)
            }
        } else {
            let bits = UInt64(bitPattern: Int64(i))
            if i >= -32 {
                out.append(UInt8(truncatingIfNeeded: i))
            } else if i >= -128 {
                out += [0xD0, UInt8(truncatingIfNeeded: i)]
            } else if i >= -32768 {
                out.append(0xD1)
                bigEndian(bits, bytes: 2, into: &out)
            } else if i >= -2_147_483_648 {
                out.append(0xD2)
                bigEndian(bits, bytes: 4, into: &out)
            } else {
                out.append(0xD3)
                bigEndian(bits, bytes: 8, into: &out)
            }
        }
    }

    private static func bigEndian(_ value: UInt64, bytes: Int, into out: inout [UInt8]) {
        for k in stride(from: bytes - 1, through: 0, by: -1) { out.append(UInt8(truncatingIfNeeded: value >> UInt64(k * 8))) }
    }
}
