internal import COpenSSL
import Glibc

/// An incremental SHA-256 through OpenSSL's EVP interface: SigV4 payload hashes, summary cache keys.
public struct SHA256Digest: ~Copyable {
    private let context: OpaquePointer

    public init() {
        // EVP_MD_CTX_new fails only when malloc does.
        context = EVP_MD_CTX_new()!
        EVP_DigestInit_ex(context, EVP_sha256(), nil)
    }

    deinit { EVP_MD_CTX_free(context) }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        EVP_DigestUpdate(context, base, bytes.count)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public consuming func finish() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &out, &length)
        return out
    }

    public static func hash(_ bytes: some Collection<UInt8>) -> [UInt8] {
        var digest = SHA256Digest()
        digest.update(Array(bytes))
        return digest.finish()
    }

    /// The digest of `length` bytes of `descriptor` from `offset`, read with `pread` in 1 MiB chunks.
    /// - Returns: nil with `errno` set when reading fails, or with `errno` 0 when the file ends early.
    public static func hash(descriptor: Int32, offset: Int64, length: Int64) -> [UInt8]? {
        var digest = SHA256Digest()
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var done: Int64 = 0
        while done < length {
            let n = pread(descriptor, buffer, Int(min(Int64(chunk), length - done)), off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                if n == 0 { errno = 0 }
                return nil
            }
            digest.update(UnsafeRawBufferPointer(start: buffer, count: n))
            done += Int64(n)
        }
        return digest.finish()
    }
}

/// HMAC-SHA256 of `data` under `key` (OpenSSL's one-shot `HMAC`).
public func hmacSHA256(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: 32)
    var length: UInt32 = 0
    _ = key.withUnsafeBytes { k in
        data.withUnsafeBufferPointer { d in
            HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), d.baseAddress, d.count, &out, &length)
        }
    }
    return out
}

extension Array where Element == UInt8 {
    /// Lowercase hexadecimal, as SigV4 writes hashes and signatures.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(count * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// SHA-1 of `bytes` (OpenSSL's one-shot `EVP_Digest`): the digest Redis names a script by (`EVALSHA`). Not for secrets.
public enum SHA1Digest {
    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 20)
        var length: UInt32 = 0
        bytes.withUnsafeBufferPointer { b in _ = EVP_Digest(b.baseAddress, b.count, &out, &length, EVP_sha1(), nil) }
        return out
    }
}
