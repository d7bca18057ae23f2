/// A JPEG's marker stream, rewritten with only what a decoder needs: the lossless path of `image.strip_metadata`.
///
/// Kept: SOI; the JFIF header (APP0) without its embedded thumbnail; the ICC profile (APP2 `ICC_PROFILE`) when
/// asked; Adobe's colour-transform flag (APP14), which decoders need for CMYK and YCCK; tables (DQT, DHT, DAC, DRI);
/// the frame header (SOFn); every scan (SOS and its entropy-coded data, restart markers included, byte for byte);
/// EOI. Dropped: EXIF and XMP (APP1), IPTC/Photoshop (APP13), MPF and FlashPix (APP2), every other APPn (maker
/// data, JUMBF), comments (COM), JFXX thumbnails, and anything after EOI (an appended archive or second image). The pixels decode exactly as before: no generation loss.
///
/// The bytes are hostile: every length is checked against the buffer, and anything that is not a well-formed
/// marker stream with a frame, a scan and an end gives `nil` (the caller re-encodes instead, through libvips).
enum JPEGSegments {
    struct Stripped {
        var bytes: [UInt8]
        /// What was dropped, by kind ("EXIF", "XMP", "IPTC", "COM", "APP11", "trailing bytes"...), in order, once each.
        var removed: [String]
    }

    static func strip(_ input: [UInt8], keepICC: Bool) -> Stripped? {
        let n = input.count
        guard n >= 4, input[0] == 0xFF, input[1] == 0xD8 else { return nil }
        var out: [UInt8] = [0xFF, 0xD8]
        out.reserveCapacity(n)
        var removed: [String] = []
        func note(_ kind: String) { if !removed.contains(kind) { removed.append(kind) } }
        var i = 2
        var sawFrame = false
        var sawScan = false
        while i < n {
            // A marker: 0xFF, any number of 0xFF fill bytes, then the code.
            guard input[i] == 0xFF else { return nil }
            while i < n && input[i] == 0xFF { i += 1 }
            guard i < n else { return nil }
            let marker = input[i]
            i += 1
            switch marker {
            case 0xD9:  // EOI
                guard sawFrame, sawScan else { return nil }
                out.append(contentsOf: [0xFF, 0xD9])
                if i < n { note("trailing bytes") }
                return Stripped(bytes: out, removed: removed)
            case 0x00, 0x01, 0xD0...0xD8:  // stuffing, TEM, RSTn or a second SOI outside a scan
                return nil
            default:
                break
            }
            guard i + 2 <= n else { return nil }
            let length = Int(input[i]) << 8 | Int(input[i + 1])
            guard length >= 2, i + length <= n else { return nil }
            let segment = input[(i - 2)..<(i + length)]
            let payload = input[(i + 2)..<(i + length)]
            i += length
            switch marker {
            case 0xC0...0xC3, 0xC9...0xCB:  // SOFn: baseline, extended, progressive, lossless; Huffman or arithmetic
                guard !sawFrame else { return nil }
                sawFrame = true
                out.append(contentsOf: segment)
            case 0xC4, 0xCC, 0xDB, 0xDD:  // DHT, DAC, DQT, DRI
                out.append(contentsOf: segment)
            case 0xDA:  // SOS, then its entropy-coded data up to the next real marker
                guard sawFrame else { return nil }
                sawScan = true
                out.append(contentsOf: segment)
                let start = i
                while i < n {
                    if input[i] != 0xFF {
                        i += 1
                        continue
                    }
                    guard i + 1 < n else { return nil }
                    let next = input[i + 1]
                    if next == 0x00 || (0xD0...0xD7).contains(next) {
                        i += 2
                        continue
                    }
                    break
                }
                guard i < n else { return nil }
                out.append(contentsOf: input[start..<i])
            case 0xE0:
                if payload.starts(with: Array("JFIF\0".utf8)), payload.count >= 14 {
                    // Version, units and density; the thumbnail size set to 0x0 and its pixels left out.
                    out.append(contentsOf: [0xFF, 0xE0, 0x00, 0x10])
                    out.append(contentsOf: payload.prefix(12))
                    out.append(contentsOf: [0x00, 0x00])
                    if payload.count > 14 { note("JFIF thumbnail") }
                } else {
                    note(payload.starts(with: Array("JFXX\0".utf8)) ? "JFXX thumbnail" : "APP0")
                }
            case 0xE1:
                note(payload.starts(with: Array("Exif\0".utf8)) ? "EXIF" : payload.starts(with: Array("http://ns.adobe.com/".utf8)) ? "XMP" : "APP1")
            case 0xE2:
                if payload.starts(with: Array("ICC_PROFILE\0".utf8)) {
                    if keepICC { out.append(contentsOf: segment) } else { note("ICC") }
                } else {
                    note(payload.starts(with: Array("MPF\0".utf8)) ? "MPF" : "APP2")
                }
            case 0xED:
                note("IPTC")
            case 0xEE:
                if payload.starts(with: Array("Adobe".utf8)) { out.append(contentsOf: segment) } else { note("APP14") }
            case 0xE3...0xEC, 0xEF:
                note("APP\(marker - 0xE0)")
            case 0xFE:
                note("COM")
            default:
                // Hierarchical frames (SOF5-7, SOF13-15, DHP, EXP), DNL, JPG extensions, reserved codes: not a stream
                // this rewrite understands; libvips decodes it or refuses it instead.
                return nil
            }
        }
        return nil
    }

    /// Inserts an ICC profile into a JPEG written with `strip` (libvips 8.14 cannot keep ICC without also
    /// rebuilding an EXIF block).
    static func insertICC(_ profile: [UInt8], into jpeg: [UInt8]) -> [UInt8]? {
        guard jpeg.count > 2, jpeg[0] == 0xff, jpeg[1] == 0xd8, !profile.isEmpty else { return nil }
        let chunkSize = 65519
        let count = (profile.count + chunkSize - 1) / chunkSize
        guard count <= 255 else { return nil }
        var segments: [UInt8] = []
        for index in 0..<count {
            let chunk = profile[(index * chunkSize)..<min(profile.count, (index + 1) * chunkSize)]
            let length = 2 + 12 + 2 + chunk.count
            segments += [0xff, 0xe2, UInt8(length >> 8), UInt8(length & 0xff)]
            segments += Array("ICC_PROFILE".utf8) + [0, UInt8(index + 1), UInt8(count)]
            segments += chunk
        }
        return [0xff, 0xd8] + segments + jpeg[2...]
    }
}
