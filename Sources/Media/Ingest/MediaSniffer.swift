/// What an upload really is, from its first bytes (never from its name).
public enum MediaKind: String, Sendable {
    case jpeg, png, gif, webp, heif, avif, mp4, matroska, mp3, aac, ogg, flac, wav, playlist, unknown

    public var family: String {
        switch self {
        case .jpeg, .png, .gif, .webp, .heif, .avif: "image"
        case .mp4, .matroska: "video"
        case .mp3, .aac, .ogg, .flac, .wav: "audio"
        case .playlist: "playlist"
        case .unknown: "unknown"
        }
    }

    /// Classifies the first bytes (at least 32 are needed for the ISO BMFF brands).
    public init(sniffing bytes: [UInt8]) {
        func at(_ offset: Int, _ magic: [UInt8]) -> Bool {
            bytes.count >= offset + magic.count && Array(bytes[offset..<(offset + magic.count)]) == magic
        }
        func ascii(_ s: String) -> [UInt8] { Array(s.utf8) }
        if at(0, [0xFF, 0xD8, 0xFF]) { self = .jpeg; return }
        if at(0, [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { self = .png; return }
        if at(0, ascii("GIF87a")) || at(0, ascii("GIF89a")) { self = .gif; return }
        if at(0, ascii("RIFF")) && at(8, ascii("WEBP")) { self = .webp; return }
        if at(0, [0x1A, 0x45, 0xDF, 0xA3]) { self = .matroska; return }
        if at(4, ascii("ftyp")), bytes.count >= 12 {
            // Major brand, then compatible brands up to the box size.
            let size = min(bytes.count, Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3]))
            var brands: [String] = [String(decoding: bytes[8..<12], as: UTF8.self)]
            var offset = 16
            while offset + 4 <= size {
                brands.append(String(decoding: bytes[offset..<(offset + 4)], as: UTF8.self))
                offset += 4
            }
            if brands[0] == "avif" || brands[0] == "avis" { self = .avif; return }
            if ["heic", "heix", "mif1", "msf1", "heim", "heis"].contains(brands[0]) { self = .heif; return }
            self = .mp4
            return
        }
        // QuickTime files without ftyp start with another top-level atom.
        if ["moov", "mdat", "wide", "free", "skip", "pnot"].contains(where: { at(4, ascii($0)) }) { self = .mp4; return }
        if at(0, ascii("OggS")) { self = .ogg; return }
        if at(0, ascii("fLaC")) { self = .flac; return }
        if at(0, ascii("RIFF")) && at(8, ascii("WAVE")) { self = .wav; return }
        if at(0, ascii("ID3")) { self = .mp3; return }
        if bytes.count >= 2 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0 {
            // MPEG audio frame sync: layer bits 00 are ADTS AAC, anything else MP1/2/3.
            self = bytes[1] & 0x06 == 0 ? .aac : .mp3
            return
        }
        var text = bytes[...]
        if text.starts(with: [0xEF, 0xBB, 0xBF]) { text = text.dropFirst(3) }
        while let first = text.first, first == 0x20 || first == 0x09 || first == 0x0A || first == 0x0D { text = text.dropFirst() }
        if text.starts(with: ascii("#EXTM3U")) || text.starts(with: ascii("#EXTINF")) { self = .playlist; return }
        self = .unknown
    }
}
