import Foundation

/// Removes metadata chunks from a WebP file written by libvips.
///
/// libvips 8.14's webpsave ignores `strip` and rebuilds an EXIF chunk from the image's fields, so Conveyor
/// drops the `EXIF`, `XMP ` and `ICCP` chunks itself and clears their flags in `VP8X`.
enum WebPChunks {
    static func stripMetadata(_ bytes: [UInt8], keepICC: Bool = false) -> [UInt8]? {
        guard bytes.count >= 12, bytes[0..<4].elementsEqual("RIFF".utf8), bytes[8..<12].elementsEqual("WEBP".utf8) else { return nil }
        func le32(_ i: Int) -> Int { Int(bytes[i]) | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2]) << 16 | Int(bytes[i + 3]) << 24 }
        var out: [UInt8] = Array(bytes[0..<12])
        var i = 12
        var vp8xFlagsOffset: Int?
        while i + 8 <= bytes.count {
            let fourcc = String(decoding: bytes[i..<i + 4], as: UTF8.self)
            let size = le32(i + 4)
            let padded = size + (size & 1)
            guard i + 8 + padded <= bytes.count || i + 8 + size == bytes.count else { return nil }
            let end = min(bytes.count, i + 8 + padded)
            if !["EXIF", "XMP "].contains(fourcc) && !(fourcc == "ICCP" && !keepICC) {
                if fourcc == "VP8X" { vp8xFlagsOffset = out.count + 8 }
                out.append(contentsOf: bytes[i..<end])
            }
            i = end
        }
        if let flags = vp8xFlagsOffset, flags < out.count {
            out[flags] &= ~UInt8((keepICC ? 0 : 0x20) | 0x08 | 0x04)  // ICC, EXIF, XMP
        }
        let riffSize = out.count - 8
        out[4] = UInt8(riffSize & 0xff)
        out[5] = UInt8((riffSize >> 8) & 0xff)
        out[6] = UInt8((riffSize >> 16) & 0xff)
        out[7] = UInt8((riffSize >> 24) & 0xff)
        return out
    }

    /// Rewrites the file in place (it is still the temporary file, not yet visible).
    static func stripMetadata(atPath path: String, keepICC: Bool) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard let stripped = stripMetadata(Array(data), keepICC: keepICC) else { return }
        if stripped.count != data.count { try Data(stripped).write(to: URL(fileURLWithPath: path)) }
    }
}
