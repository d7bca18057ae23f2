internal import CFFmpeg
internal import CShims
#if canImport(Glibc)
import Glibc
#endif

/// A cover picture carried in an audio file (ID3 APIC, MP4 `covr`, FLAC PICTURE): its bytes as stored, never decoded here.
public struct CoverArt: Sendable, Equatable {
    public var bytes: [UInt8]
    /// `jpeg` or `png`.
    public var format: String
}

/// An opened audio upload under an audio `InputPolicy`: the header checks that catch lying or damaged files
/// before any decoding, the decoder of its audio stream, and a decode loop that checks what came out against
/// what the header declared.
final class AudioSource {
    /// Below this many bits per second no accepted codec can carry audio: a header claiming more seconds than
    /// the file holds at this rate is lying (10 hours in 1 MB is 233 bit/s).
    static let minimumBitRate = 2_000.0
    /// Covers larger than this are left out.
    static let maxCoverBytes = 16 << 20

    let input: MediaInput
    let probe: MediaProbe
    let path: String
    let fileSize: Int
    let streamIndex: Int32
    let stream: UnsafeMutablePointer<AVStream>
    let decoder: CodecContext
    /// Seconds the container declares, when it declares them (nil when libavformat only estimated them from the
    /// bit rate and the file size, as for an MP3 without a Xing/Info header).
    let declaredDuration: Double?
    let cover: CoverArt?
    let deadlineMicros: Int64
    private let packet: Packet
    private let frame: Frame

    /// What decoding found.
    struct Decoded {
        var samples: Int64 = 0
        var seconds: Double = 0
        var damagedPackets = 0
    }

    init(path: String, policy: InputPolicy, deadlineMicros: Int64) throws(AVFailure) {
        AVLibrary.configure()
        self.path = path
        self.deadlineMicros = deadlineMicros
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw AVFailure(.rejectedInput, operation: "stat \(path)", message: "cannot read the file (errno \(errno))")
        }
        fileSize = Int(info.st_size)
        if fileSize == 0 {
            throw AVFailure(.empty, operation: "open \(path)", message: "the file is empty (0 bytes)")
        }
        let head = Self.read(path, offset: 0, count: 64)
        if Self.isPlaylist(head) {
            throw AVFailure(
                .playlist, operation: "open \(path)",
                message: "the file is an M3U/HLS playlist, not audio, whatever its name says; playlists are not accepted")
        }
        input = try MediaInput(path: path, policy: policy, deadlineMicros: deadlineMicros)
        probe = try MediaProbe(input: input, checkDuration: false)

        let ctx = input.context.pointee
        guard let index = input.bestStream(AVMEDIA_TYPE_AUDIO) else {
            throw AVFailure(.rejectedInput, operation: "probe \(path)", message: "no audio stream")
        }
        streamIndex = Int32(index)
        stream = input.stream(index)
        let estimated = ctx.duration_estimation_method == AVFMT_DURATION_FROM_BITRATE
        declaredDuration = estimated ? nil : probe.duration ?? probe.streams[index].duration

        if let declared = declaredDuration, declared > 0 {
            let holds = Double(fileSize) * 8 / Self.minimumBitRate
            if declared > holds {
                throw AVFailure(
                    .durationMismatch, operation: "probe \(path)",
                    message: "the header declares \(Self.text(declared)) s, but the file's \(fileSize) bytes hold at most \(Self.text(holds)) s of audio at any accepted bit rate")
            }
        }
        if let duration = probe.duration ?? declaredDuration, policy.maxDurationSeconds > 0, duration > policy.maxDurationSeconds {
            throw AVFailure(
                .tooLong, operation: "probe \(path)",
                message: "duration \(Self.text(duration)) s is over the \(Self.text(policy.maxDurationSeconds)) s limit (CONVEYOR_AUDIO_MAX_DURATION)")
        }
        if probe.formatName == "wav" { try Self.checkWAV(path, fileSize: fileSize) }

        let channels = Int(stream.pointee.codecpar.pointee.ch_layout.nb_channels)
        if channels > 24 {
            throw AVFailure(.rejectedInput, operation: "probe \(path)", message: "\(channels) audio channels, over the limit of 24")
        }
        decoder = try input.openDecoder(stream)
        cover = Self.coverArt(input)
        packet = try Packet()
        frame = try Frame()
    }

    var sampleRate: Int { Int(decoder.ptr.pointee.sample_rate) }
    var channels: Int { Int(decoder.ptr.pointee.ch_layout.nb_channels) }

    func checkDeadline() throws(AVFailure) {
        if cshims_av_now_us() >= deadlineMicros {
            throw AVFailure(.deadline, operation: "decode \(path)", message: "stopped at the job deadline")
        }
    }

    /// Decodes the audio stream to its end and hands every frame to `body`; stops with `.tooLong` once more than
    /// `maxSeconds` (0: no limit) decoded, and with `.truncated` when far less decoded than the header declared.
    func decode(maxSeconds: Double, _ body: (UnsafeMutablePointer<AVFrame>) throws(AVFailure) -> Void) throws(AVFailure) -> Decoded {
        var decoded = Decoded()
        let eof = cshims_averror_eof()
        func receive() throws(AVFailure) {
            while true {
                let code = avcodec_receive_frame(decoder.ptr, frame.ptr)
                if code == cshims_averror_eagain() || code == eof { return }
                if code < 0 {
                    let failure = AVFailure.input("avcodec_receive_frame", code, guard: UnsafePointer(input.guardState))
                    if failure.kind != .rejectedInput { throw failure }
                    decoded.damagedPackets += 1
                    return
                }
                defer { av_frame_unref(frame.ptr) }
                let rate = frame.ptr.pointee.sample_rate
                if rate > 0 {
                    decoded.samples += Int64(frame.ptr.pointee.nb_samples)
                    decoded.seconds += Double(frame.ptr.pointee.nb_samples) / Double(rate)
                }
                if maxSeconds > 0, decoded.seconds > maxSeconds + 1 {
                    throw AVFailure(
                        .tooLong, operation: "decode \(path)",
                        message: "more than \(Self.text(maxSeconds)) s decoded, over the limit (CONVEYOR_AUDIO_MAX_DURATION), though the header declared \(Self.text(probe.duration ?? 0)) s")
                }
                try body(frame.ptr)
            }
        }
        while true {
            try checkDeadline()
            let code = av_read_frame(input.context, packet.ptr)
            if code == eof { break }
            if code < 0 {
                let failure = AVFailure.input("av_read_frame \(path)", code, guard: UnsafePointer(input.guardState))
                if failure.kind != .rejectedInput { throw failure }
                // A damaged tail: what decoded so far is checked against the header below.
                decoded.damagedPackets += 1
                break
            }
            defer { av_packet_unref(packet.ptr) }
            guard packet.ptr.pointee.stream_index == streamIndex else { continue }
            let sent = avcodec_send_packet(decoder.ptr, packet.ptr)
            if sent < 0 && sent != cshims_averror_eagain() {
                let failure = AVFailure.input("avcodec_send_packet", sent, guard: UnsafePointer(input.guardState))
                if failure.kind != .rejectedInput { throw failure }
                decoded.damagedPackets += 1
                continue
            }
            try receive()
        }
        avcodec_send_packet(decoder.ptr, nil)
        try receive()
        try input.checkNestedOpens()
        if decoded.samples == 0 {
            throw AVFailure(
                .rejectedInput, operation: "decode \(path)",
                message: "no audio could be decoded (\(decoded.damagedPackets) damaged packets); the file is corrupt")
        }
        if let declared = declaredDuration, declared - decoded.seconds > max(1, declared * 0.02) {
            throw AVFailure(
                .truncated, operation: "decode \(path)",
                message: "only \(Self.text(decoded.seconds)) s of the \(Self.text(declared)) s the header declares could be decoded; the file is truncated")
        }
        return decoded
    }

    /// A WAV whose data chunk claims more bytes than the file has (0 and 0xFFFFFFFF mean "unknown" to recorders
    /// that stream, and are let through).
    static func checkWAV(_ path: String, fileSize: Int) throws(AVFailure) {
        let header = read(path, offset: 0, count: 12)
        guard header.count == 12, Array(header[0..<4]) == Array("RIFF".utf8), Array(header[8..<12]) == Array("WAVE".utf8) else {
            return  // RF64/BW64: sizes live elsewhere; libavformat checks them.
        }
        var offset = 12
        for _ in 0..<64 {
            let chunk = read(path, offset: offset, count: 8)
            guard chunk.count == 8 else { return }
            let size = Int(chunk[4]) | Int(chunk[5]) << 8 | Int(chunk[6]) << 16 | Int(chunk[7]) << 24
            if Array(chunk[0..<4]) == Array("data".utf8) {
                let available = fileSize - offset - 8
                if size != 0 && size != 0xFFFF_FFFF && size > available {
                    throw AVFailure(
                        .headerInvalid, operation: "probe \(path)",
                        message: "the WAV data chunk declares \(size) bytes, but only \(available) follow its header")
                }
                return
            }
            offset += 8 + size + (size & 1)
            if offset >= fileSize { return }
        }
    }

    static func isPlaylist(_ head: [UInt8]) -> Bool {
        var bytes = head[...]
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }
        while let first = bytes.first, first == 0x20 || first == 0x09 || first == 0x0A || first == 0x0D { bytes = bytes.dropFirst() }
        return bytes.starts(with: Array("#EXTM3U".utf8)) || bytes.starts(with: Array("#EXTINF".utf8))
    }

    static func coverArt(_ input: MediaInput) -> CoverArt? {
        let attachedPicture: Int32 = 1 << 10  // AV_DISPOSITION_ATTACHED_PIC
        for i in 0..<input.streamCount {
            let st = input.stream(i)
            guard st.pointee.disposition & attachedPicture != 0 else { continue }
            let format: String
            switch st.pointee.codecpar.pointee.codec_id {
            case AV_CODEC_ID_MJPEG: format = "jpeg"
            case AV_CODEC_ID_PNG: format = "png"
            default: continue
            }
            let pic = st.pointee.attached_pic
            guard let data = pic.data, pic.size > 0, Int(pic.size) <= maxCoverBytes else { continue }
            return CoverArt(bytes: Array(UnsafeBufferPointer(start: data, count: Int(pic.size))), format: format)
        }
        return nil
    }

    static func read(_ path: String, offset: Int, count: Int) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: count)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        return n > 0 ? Array(buffer.prefix(n)) : []
    }

    static func text(_ seconds: Double) -> String {
        let tenths = (seconds * 10).rounded()
        return tenths.truncatingRemainder(dividingBy: 10) == 0 ? String(Int(tenths / 10)) : String(tenths / 10)
    }
}

@available(*, unavailable)
extension AudioSource: Sendable {}
