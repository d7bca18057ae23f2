/// Redis Cluster's key hashing: a key's slot is CRC16 (XMODEM) of the key, or of its hash tag, modulo 16384.
///
/// A tag is what lies between the first `{` and the first `}` after it, when that is not empty: `{user1}:a` and
/// `{user1}:b` share a slot, `foo{}{bar}` hashes whole.
public enum RedisClusterSlot {
    public static let count = 16384

    /// The slot of `key`.
    public static func of<Key: Collection<UInt8>>(_ key: Key) -> Int {
        Int(crc16(hashed(key)) & 0x3FFF)
    }

    public static func of(_ key: String) -> Int { of(Array(key.utf8)) }

    /// The part of `key` that is hashed: its tag, or the whole key.
    static func hashed<Key: Collection<UInt8>>(_ key: Key) -> Key.SubSequence {
        guard let open = key.firstIndex(of: UInt8(ascii: "{")) else { return key[...] }
        let afterOpen = key.index(after: open)
        guard let close = key[afterOpen...].firstIndex(of: UInt8(ascii: "}")), close != afterOpen else { return key[...] }
        return key[afterOpen..<close]
    }

    /// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), as Redis Cluster's specification defines it.
    public static func crc16<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return crc
    }

    private static let table: [UInt16] = (0..<256).map { i in
        var crc = UInt16(i) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }
}
