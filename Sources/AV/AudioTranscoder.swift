internal import CFFmpeg
internal import CShims

/// A web rendition's codec and container.
public enum AudioFormat: String, Sendable, CaseIterable {
    /// AAC-LC in MP4 with the index in front (`+faststart`): every browser plays it.
    case m4a
    /// MP3 (LAME) with a Xing header, no ID3 tags.
    case mp3
    /// Opus in Ogg.
    case opus

    public var fileExtension: String { rawValue }

    var muxer: String {
        switch self {
        case .m4a: "mp4"
        case .mp3: "mp3"
        case .opus: "ogg"
        }
    }

    var encoder: String {
        switch self {
        case .m4a: "aac"
        case .mp3: "libmp3lame"
        case .opus: "libopus"
        }
    }

    var sampleFormat: AVSampleFormat {
        switch self {
        case .m4a, .mp3: AV_SAMPLE_FMT_FLTP
        case .opus: AV_SAMPLE_FMT_FLT
        }
    }

    /// Bits per second for mono / stereo output.
    func bitRate(channels: Int) -> Int {
        switch self {
        case .m4a: channels == 1 ? 96_000 : 128_000
        case .mp3: channels == 1 ? 96_000 : 128_000
        case .opus: channels == 1 ? 48_000 : 96_000
        }
    }
}

/// What an audio transcode produced.
public struct AudioTranscodeResult: Sendable {
    public var format: AudioFormat
    /// Seconds of audio decoded (and encoded).
    public var duration: Double
    public var sampleRate: Int
    public var channels: Int
    public var bitRate: Int
    public var probe: MediaProbe
    public var cover: CoverArt?
}

/// Decodes an untrusted audio input and encodes a web rendition, in-process with libav*.
public enum AudioTranscoder {
    /// Transcodes `inputPath` to `outputPath` (which the caller renames into place). Gain is left alone (no
    /// normalisation); more than two channels are downmixed to stereo; no container metadata (titles, tags,
    /// pictures) is copied.
    public static func transcode(
        inputPath: String, outputPath: String, format: AudioFormat, policy: InputPolicy = .audio, deadline: ContinuousClock.Instant
    ) throws(AVFailure) -> AudioTranscodeResult {
        let source = try AudioSource(path: inputPath, policy: policy, deadlineMicros: microsDeadline(deadline))
        let job = try AudioEncodeJob(source: source, outputPath: outputPath, format: format)
        let decoded = try source.decode(maxSeconds: policy.maxDurationSeconds) { frame throws(AVFailure) in try job.add(frame) }
        try job.finish()
        return AudioTranscodeResult(
            format: format, duration: decoded.seconds, sampleRate: Int(job.encoder.ptr.pointee.sample_rate), channels: job.channels,
            bitRate: Int(job.encoder.ptr.pointee.bit_rate), probe: source.probe, cover: source.cover)
    }
}

/// One encode's state: encoder, resampler into encoder-sized frames, muxer. Lives on one thread.
private final class AudioEncodeJob {
    let format: AudioFormat
    let encoder: CodecContext
    let output: OutputFile
    let channels: Int
    let packet: Packet
    var resampler: Resampler?
    var inputKey: (Int32, Int32, Int32) = (-1, 0, 0)
    var samples: Int64 = 0

    init(source: AudioSource, outputPath: String, format: AudioFormat) throws(AVFailure) {
        self.format = format
        channels = source.channels == 1 ? 1 : 2
        guard let codec = avcodec_find_encoder_by_name(format.encoder) else {
            throw AVFailure(.resource, operation: "avcodec_find_encoder_by_name", message: "\(format.encoder) is not available in this libavcodec")
        }
        output = try OutputFile(path: outputPath, format: format.muxer)
        // No encoder or library version strings in the file either.
        output.ptr.pointee.flags |= AVFMT_FLAG_BITEXACT
        encoder = try CodecContext(codec, operation: "audio encoder")
        let enc = encoder.ptr
        enc.pointee.sample_fmt = format.sampleFormat
        enc.pointee.sample_rate = Self.rate(for: Int32(source.sampleRate), codec: codec, format: format)
        av_channel_layout_default(&enc.pointee.ch_layout, Int32(channels))
        enc.pointee.bit_rate = Int64(format.bitRate(channels: channels))
        enc.pointee.time_base = AVRational(num: 1, den: enc.pointee.sample_rate)
        enc.pointee.flags |= AV_CODEC_FLAG_BITEXACT
        if (output.ptr.pointee.oformat.pointee.flags & AVFMT_GLOBALHEADER) != 0 { enc.pointee.flags |= AV_CODEC_FLAG_GLOBAL_HEADER }
        var code = avcodec_open2(enc, codec, nil)
        if code < 0 { throw AVFailure.output("avcodec_open2 \(format.encoder)", code) }
        guard let stream = avformat_new_stream(output.ptr, nil) else {
            throw AVFailure(.resource, operation: "avformat_new_stream", message: "out of memory")
        }
        avcodec_parameters_from_context(stream.pointee.codecpar, enc)
        stream.pointee.time_base = enc.pointee.time_base
        packet = try Packet()

        var options: OpaquePointer? = nil
        switch format {
        case .m4a: av_dict_set(&options, "movflags", "+faststart", 0)
        case .mp3: av_dict_set(&options, "id3v2_version", "0", 0)
        case .opus: break
        }
        code = avformat_write_header(output.ptr, &options)
        av_dict_free(&options)
        if code < 0 { throw AVFailure.output("avformat_write_header", code) }
    }

    /// The input's rate when the encoder takes it, else 48 kHz (Opus is always 48 kHz).
    static func rate(for input: Int32, codec: UnsafePointer<AVCodec>, format: AudioFormat) -> Int32 {
        if format == .opus { return 48_000 }
        guard var p = codec.pointee.supported_samplerates else { return input }
        var best: Int32 = 48_000
        while p.pointee != 0 {
            if p.pointee == input { return input }
            if p.pointee == 44_100 && input % 11_025 == 0 { best = 44_100 }
            p += 1
        }
        return best
    }

    func add(_ frame: UnsafeMutablePointer<AVFrame>) throws(AVFailure) {
        let key = (frame.pointee.format, frame.pointee.sample_rate, frame.pointee.ch_layout.nb_channels)
        if resampler == nil || key != inputKey {
            if resampler != nil { try drain(final: true) }
            resampler = try makeResampler(frame)
            inputKey = key
        }
        guard let resampler else { return }
        let code = cshims_av_resample_into_fifo(resampler.swr, resampler.fifo, frame, Int32(channels), format.sampleFormat)
        if code < 0 { throw AVFailure.input("swr_convert", code) }
        try drain(final: false)
    }

    func finish() throws(AVFailure) {
        if let resampler {
            let code = cshims_av_resample_into_fifo(resampler.swr, resampler.fifo, nil, Int32(channels), format.sampleFormat)
            if code < 0 { throw AVFailure.input("swr_convert", code) }
            try drain(final: true)
        }
        try encode(nil)
        var code = av_write_trailer(output.ptr)
        if code < 0 { throw AVFailure.output("av_write_trailer", code) }
        code = avio_closep(&output.ptr.pointee.pb)
        if code < 0 { throw AVFailure.output("avio_close", code) }
    }

    func makeResampler(_ frame: UnsafeMutablePointer<AVFrame>) throws(AVFailure) -> Resampler {
        try Resampler(
            from: frame.pointee.ch_layout, format: AVSampleFormat(frame.pointee.format), rate: frame.pointee.sample_rate, to: encoder,
            format: format.sampleFormat)
    }

    func drain(final: Bool) throws(AVFailure) {
        guard let resampler else { return }
        try resampler.drain(into: encoder, format: format.sampleFormat, final: final, pts: &samples) { frame throws(AVFailure) in
            try encode(frame)
        }
    }

    func encode(_ frame: UnsafeMutablePointer<AVFrame>?) throws(AVFailure) {
        var code = avcodec_send_frame(encoder.ptr, frame)
        if code < 0 { throw AVFailure.output("avcodec_send_frame", code) }
        while true {
            code = avcodec_receive_packet(encoder.ptr, packet.ptr)
            if code == cshims_averror_eagain() || code == cshims_averror_eof() { return }
            if code < 0 { throw AVFailure.output("avcodec_receive_packet", code) }
            let stream = output.ptr.pointee.streams[0]!
            av_packet_rescale_ts(packet.ptr, encoder.ptr.pointee.time_base, stream.pointee.time_base)
            packet.ptr.pointee.stream_index = 0
            code = av_interleaved_write_frame(output.ptr, packet.ptr)
            if code < 0 { throw AVFailure.output("av_interleaved_write_frame", code) }
        }
    }
}

@available(*, unavailable) extension AudioEncodeJob: Sendable {}
