internal import CFFmpeg
internal import CShims

/// Decodes an untrusted input and re-encodes it with a `TranscodeProfile`, in-process with libav*.
public enum Transcoder {
    /// Transcodes `inputPath` into an MP4 at `outputPath` (which the caller renames into place).
    /// - Parameters:
    ///   - posterAt: fraction of the duration where the poster frame is taken (nil: no poster).
    ///   - progress: called about once a second from the transcoding thread.
    public static func transcode(
        inputPath: String, outputPath: String, profile: TranscodeProfile, policy: InputPolicy = InputPolicy(),
        posterAt: Double? = 0.5, deadline: ContinuousClock.Instant,
        progress: (@Sendable (TranscodeProgress) -> Void)? = nil
    ) throws(AVFailure) -> TranscodeResult {
        AVLibrary.configure()
        let deadlineMicros = microsDeadline(deadline)
        let input = try MediaInput(path: inputPath, policy: policy, deadlineMicros: deadlineMicros)
        let probe = try MediaProbe(input: input)
        let job = try TranscodeJob(
            input: input, probe: probe, outputPath: outputPath, profile: profile, posterAt: posterAt,
            deadlineMicros: deadlineMicros, progress: progress)
        return try job.run()
    }
}

/// One transcode's state: decoders, encoders, muxer. Lives on one thread.
private final class TranscodeJob {
    let input: MediaInput
    let probe: MediaProbe
    let profile: TranscodeProfile
    let deadlineMicros: Int64
    let progress: (@Sendable (TranscodeProgress) -> Void)?

    let videoIndex: Int
    let videoDecoder: CodecContext
    let videoEncoder: CodecContext
    let audioIndex: Int?
    let audioDecoder: CodecContext?
    let audioEncoder: CodecContext?
    let resampler: Resampler?
    let output: OutputFile
    let scaler = Scaler()
    let packet: Packet
    let outPacket: Packet

    let turns: Int
    let outWidth: Int32, outHeight: Int32
    let inputTimeBase: AVRational
    let posterTarget: Int64?
    var poster: [UInt8]?
    var posterSeconds: Double?

    var firstVideoPTS: Int64?
    var lastVideoPTS: Int64 = Int64.min
    /// Input time-base ticks between kept frames (frame-rate cap) and when the next frame is due.
    var minFrameSpacing: Double = 0
    var nextFrameDue: Double = -.infinity
    var frames = 0
    var audioSamples: Int64 = 0
    var lastReport: Int64 = 0
    var lastSeconds: Double = 0

    init(
        input: MediaInput, probe: MediaProbe, outputPath: String, profile: TranscodeProfile, posterAt: Double?,
        deadlineMicros: Int64, progress: (@Sendable (TranscodeProgress) -> Void)?
    ) throws(AVFailure) {
        self.input = input
        self.probe = probe
        self.profile = profile
        self.deadlineMicros = deadlineMicros
        self.progress = progress
        guard let videoIndex = input.bestMovingVideoStream() else {
            throw AVFailure(
                .rejectedInput, operation: "transcode \(input.path)",
                message: "no video stream (audio-only input; a cover picture is not one): audio.transcode makes its web rendition")
        }
        self.videoIndex = videoIndex
        let vstream = input.stream(videoIndex)
        inputTimeBase = vstream.pointee.time_base
        videoDecoder = try input.openDecoder(vstream)

        // Rotation: ffmpeg's autorotate turns clockwise by -(display matrix angle).
        let rotation = probe.streams[videoIndex].rotation ?? 0
        turns = (((-rotation) % 360 + 360) % 360 + 45) / 90 % 4
        let w = Int(videoDecoder.ptr.pointee.width), h = Int(videoDecoder.ptr.pointee.height)
        guard w > 0, h > 0 else {
            throw AVFailure(.rejectedInput, operation: "transcode \(input.path)", message: "video stream has no dimensions")
        }
        let display = turns % 2 == 1 ? (w: h, h: w) : (w: w, h: h)
        let size = profile.outputSize(width: display.w, height: display.h)
        outWidth = Int32(size.width)
        outHeight = Int32(size.height)

        var frameRate = av_guess_frame_rate(input.context, vstream, nil)
        if frameRate.num <= 0 || frameRate.den <= 0 || av_q2d(frameRate) > 1000 { frameRate = AVRational(num: 30, den: 1) }
        if av_q2d(frameRate) > profile.maxFrameRate { frameRate = av_d2q(profile.maxFrameRate, 1000) }
        minFrameSpacing = 1 / profile.maxFrameRate / av_q2d(inputTimeBase)
        if let duration = probe.duration, let posterAt {
            posterTarget = av_rescale_q(Int64(duration * posterAt * 1_000_000), AVRational(num: 1, den: 1_000_000), inputTimeBase)
        } else {
            posterTarget = posterAt == nil ? nil : 0
        }

        output = try OutputFile(path: outputPath, format: "mp4")
        let globalHeader = (output.ptr.pointee.oformat.pointee.flags & AVFMT_GLOBALHEADER) != 0

        guard let x264 = avcodec_find_encoder_by_name("libx264") else {
            throw AVFailure(.resource, operation: "avcodec_find_encoder_by_name", message: "libx264 is not available in this libavcodec")
        }
        videoEncoder = try CodecContext(x264, operation: "video encoder")
        let enc = videoEncoder.ptr
        enc.pointee.width = outWidth
        enc.pointee.height = outHeight
        enc.pointee.pix_fmt = AV_PIX_FMT_YUV420P
        enc.pointee.time_base = inputTimeBase
        enc.pointee.framerate = frameRate
        enc.pointee.gop_size = Int32(max(1, (av_q2d(frameRate) * profile.keyframeInterval).rounded()))
        enc.pointee.rc_max_rate = Int64(profile.maxBitRate)
        enc.pointee.rc_buffer_size = Int32(profile.maxBitRate * 2)
        enc.pointee.sample_aspect_ratio = AVRational(num: 1, den: 1)
        enc.pointee.thread_count = 0
        if globalHeader { enc.pointee.flags |= AV_CODEC_FLAG_GLOBAL_HEADER }
        av_opt_set(enc.pointee.priv_data, "preset", profile.preset, 0)
        av_opt_set(enc.pointee.priv_data, "crf", String(profile.crf), 0)
        av_opt_set(enc.pointee.priv_data, "profile", "high", 0)
        var code = avcodec_open2(enc, x264, nil)
        if code < 0 { throw AVFailure.output("avcodec_open2 libx264", code) }
        guard let vout = avformat_new_stream(output.ptr, nil) else {
            throw AVFailure(.resource, operation: "avformat_new_stream", message: "out of memory")
        }
        avcodec_parameters_from_context(vout.pointee.codecpar, enc)
        vout.pointee.time_base = enc.pointee.time_base

        if let audioIndex = input.bestStream(AVMEDIA_TYPE_AUDIO) {
            self.audioIndex = audioIndex
            let astream = input.stream(audioIndex)
            let decoder = try input.openDecoder(astream)
            audioDecoder = decoder
            guard let aacCodec = avcodec_find_encoder_by_name("aac") else {
                throw AVFailure(.resource, operation: "avcodec_find_encoder_by_name", message: "the aac encoder is not available")
            }
            let aenc = try CodecContext(aacCodec, operation: "audio encoder")
            audioEncoder = aenc
            let inRate = decoder.ptr.pointee.sample_rate
            let rate: Int32 = [44100, 48000].contains(inRate) ? inRate : 48000
            aenc.ptr.pointee.sample_rate = rate
            aenc.ptr.pointee.sample_fmt = AV_SAMPLE_FMT_FLTP
            av_channel_layout_default(&aenc.ptr.pointee.ch_layout, 2)
            aenc.ptr.pointee.bit_rate = Int64(profile.audioBitRate)
            aenc.ptr.pointee.time_base = AVRational(num: 1, den: rate)
            if globalHeader { aenc.ptr.pointee.flags |= AV_CODEC_FLAG_GLOBAL_HEADER }
            code = avcodec_open2(aenc.ptr, aacCodec, nil)
            if code < 0 { throw AVFailure.output("avcodec_open2 aac", code) }
            guard let aout = avformat_new_stream(output.ptr, nil) else {
                throw AVFailure(.resource, operation: "avformat_new_stream", message: "out of memory")
            }
            avcodec_parameters_from_context(aout.pointee.codecpar, aenc.ptr)
            aout.pointee.time_base = aenc.ptr.pointee.time_base

            resampler = try Resampler(
                from: decoder.ptr.pointee.ch_layout, format: decoder.ptr.pointee.sample_fmt, rate: decoder.ptr.pointee.sample_rate,
                to: aenc, format: AV_SAMPLE_FMT_FLTP)
        } else {
            audioIndex = nil
            audioDecoder = nil
            audioEncoder = nil
            resampler = nil
        }
        packet = try Packet()
        outPacket = try Packet()
    }

    func checkDeadline() throws(AVFailure) {
        if cshims_av_now_us() >= deadlineMicros {
            throw AVFailure(.deadline, operation: "transcode \(input.path)", message: "stopped at the job deadline after \(frames) frames")
        }
    }

    func run() throws(AVFailure) -> TranscodeResult {
        var options: OpaquePointer? = nil
        av_dict_set(&options, "movflags", "+faststart", 0)
        // No metadata is copied from the input (no QuickTime location atoms, titles, or creation dates).
        var code = avformat_write_header(output.ptr, &options)
        av_dict_free(&options)
        if code < 0 { throw AVFailure.output("avformat_write_header", code) }

        let eof = cshims_averror_eof()
        var decodeErrors = 0
        while true {
            try checkDeadline()
            code = av_read_frame(input.context, packet.ptr)
            if code == eof { break }
            if code < 0 {
                let failure = AVFailure.input("av_read_frame \(input.path)", code, guard: UnsafePointer(input.guardState))
                if failure.kind != .rejectedInput { throw failure }
                // A truncated or damaged tail: keep what decoded so far, as the ffmpeg CLI does.
                decodeErrors += 1
                break
            }
            defer { av_packet_unref(packet.ptr) }
            let index = Int(packet.ptr.pointee.stream_index)
            if index == videoIndex {
                decodeErrors += try decode(videoDecoder, packet.ptr) { frame throws(AVFailure) in try self.videoFrame(frame) }
            } else if index == audioIndex, let audioDecoder {
                decodeErrors += try decode(audioDecoder, packet.ptr) { frame throws(AVFailure) in try self.audioFrame(frame) }
            }
        }
        _ = try decode(videoDecoder, nil) { frame throws(AVFailure) in try self.videoFrame(frame) }
        if let audioDecoder {
            _ = try decode(audioDecoder, nil) { frame throws(AVFailure) in try self.audioFrame(frame) }
            try flushAudio()
        }
        try input.checkNestedOpens()
        if frames == 0 {
            throw AVFailure(
                .rejectedInput, operation: "transcode \(input.path)",
                message: "no video frame could be decoded (\(decodeErrors) damaged packets); the file is truncated or corrupt")
        }
        try encode(videoEncoder.ptr, nil, streamIndex: 0)
        if let audioEncoder { try encode(audioEncoder.ptr, nil, streamIndex: 1) }
        code = av_write_trailer(output.ptr)
        if code < 0 { throw AVFailure.output("av_write_trailer", code) }
        code = avio_closep(&output.ptr.pointee.pb)
        if code < 0 { throw AVFailure.output("avio_close", code) }
        reportProgress(force: true)
        return TranscodeResult(
            input: probe, width: Int(outWidth), height: Int(outHeight), frames: frames, duration: lastSeconds,
            hasAudio: audioEncoder != nil, quarterTurns: turns, poster: poster, posterSeconds: posterSeconds)
    }

    /// Sends a packet (nil: flush) and hands every decoded frame to `body`. Returns 1 when the packet was damaged.
    func decode(
        _ decoder: CodecContext, _ packet: UnsafeMutablePointer<AVPacket>?,
        _ body: (UnsafeMutablePointer<AVFrame>) throws(AVFailure) -> Void
    ) throws(AVFailure) -> Int {
        var damaged = 0
        var code = avcodec_send_packet(decoder.ptr, packet)
        if code < 0 && code != cshims_averror_eof() {
            let failure = AVFailure.input("avcodec_send_packet", code, guard: UnsafePointer(input.guardState))
            if failure.kind != .rejectedInput { throw failure }
            damaged = 1
        }
        let frame = try Frame()
        while true {
            code = avcodec_receive_frame(decoder.ptr, frame.ptr)
            if code == cshims_averror_eagain() || code == cshims_averror_eof() { break }
            if code < 0 {
                let failure = AVFailure.input("avcodec_receive_frame", code, guard: UnsafePointer(input.guardState))
                if failure.kind != .rejectedInput { throw failure }
                damaged = 1
                break
            }
            try body(frame.ptr)
            av_frame_unref(frame.ptr)
        }
        return damaged
    }

    func videoFrame(_ frame: UnsafeMutablePointer<AVFrame>) throws(AVFailure) {
        if Int(frame.pointee.width) * Int(frame.pointee.height) > input.policy.maxPixels {
            throw AVFailure(.rejectedInput, operation: "transcode \(input.path)", message: "a frame is \(frame.pointee.width)x\(frame.pointee.height), over the pixel limit")
        }
        var pts = frame.pointee.best_effort_timestamp
        if pts == avNoPTS { pts = lastVideoPTS == Int64.min ? 0 : lastVideoPTS + 1 }
        if firstVideoPTS == nil { firstVideoPTS = pts }
        pts -= firstVideoPTS ?? 0
        if Double(pts) < nextFrameDue - 0.5 { return }
        nextFrameDue = max(nextFrameDue + minFrameSpacing, Double(pts))
        if pts <= lastVideoPTS { pts = lastVideoPTS + 1 }
        lastVideoPTS = pts

        // Already the right size and format (the common 1080p/720p yuv420p upload): encode the decoded frame.
        let passthrough = turns == 0 && frame.pointee.width == outWidth && frame.pointee.height == outHeight
            && frame.pointee.format == AV_PIX_FMT_YUV420P.rawValue
        var owned: Frame? = nil
        if !passthrough {
            let rotatedFirst = turns % 2 == 1
            let scaled = try scaler.scale(
                frame, width: rotatedFirst ? outHeight : outWidth, height: rotatedFirst ? outWidth : outHeight,
                format: AV_PIX_FMT_YUV420P)
            owned = scaled
            if turns != 0 {
                let rotated = try Frame.video(width: outWidth, height: outHeight, format: AV_PIX_FMT_YUV420P)
                cshims_av_rotate_yuv420p(scaled.ptr, rotated.ptr, Int32(turns))
                owned = rotated
            }
        }
        let encoded = owned?.ptr ?? frame
        encoded.pointee.pts = pts
        encoded.pointee.pict_type = AV_PICTURE_TYPE_NONE
        encoded.pointee.sample_aspect_ratio = AVRational(num: 1, den: 1)
        if poster == nil, let posterTarget, pts >= posterTarget {
            poster = try encodePoster(encoded)
            posterSeconds = Double(pts) * av_q2d(inputTimeBase)
        }
        try encode(videoEncoder.ptr, encoded, streamIndex: 0)
        withExtendedLifetime(owned) {}
        frames += 1
        lastSeconds = Double(pts) * av_q2d(inputTimeBase)
        reportProgress()
    }

    func audioFrame(_ frame: UnsafeMutablePointer<AVFrame>) throws(AVFailure) {
        guard let resampler, let audioEncoder else { return }
        let code = cshims_av_resample_into_fifo(resampler.swr, resampler.fifo, frame, 2, AV_SAMPLE_FMT_FLTP)
        if code < 0 { throw AVFailure.input("swr_convert", code) }
        try drainAudio(audioEncoder, resampler, final: false)
    }

    func flushAudio() throws(AVFailure) {
        guard let resampler, let audioEncoder else { return }
        let code = cshims_av_resample_into_fifo(resampler.swr, resampler.fifo, nil, 2, AV_SAMPLE_FMT_FLTP)
        if code < 0 { throw AVFailure.input("swr_convert", code) }
        try drainAudio(audioEncoder, resampler, final: true)
    }

    func drainAudio(_ encoder: CodecContext, _ resampler: Resampler, final: Bool) throws(AVFailure) {
        try resampler.drain(into: encoder, format: AV_SAMPLE_FMT_FLTP, final: final, pts: &audioSamples) { frame throws(AVFailure) in
            try encode(encoder.ptr, frame, streamIndex: 1)
        }
    }

    /// Sends a frame (nil: flush) to an encoder and writes its packets to output stream `streamIndex`.
    func encode(_ encoder: UnsafeMutablePointer<AVCodecContext>, _ frame: UnsafeMutablePointer<AVFrame>?, streamIndex: Int32) throws(AVFailure) {
        var code = avcodec_send_frame(encoder, frame)
        if code < 0 { throw AVFailure.output("avcodec_send_frame", code) }
        while true {
            code = avcodec_receive_packet(encoder, outPacket.ptr)
            if code == cshims_averror_eagain() || code == cshims_averror_eof() { return }
            if code < 0 { throw AVFailure.output("avcodec_receive_packet", code) }
            let stream = output.ptr.pointee.streams[Int(streamIndex)]!
            av_packet_rescale_ts(outPacket.ptr, encoder.pointee.time_base, stream.pointee.time_base)
            outPacket.ptr.pointee.stream_index = streamIndex
            code = av_interleaved_write_frame(output.ptr, outPacket.ptr)
            if code < 0 { throw AVFailure.output("av_interleaved_write_frame", code) }
        }
    }

    /// Encodes one frame as a full-range JPEG.
    func encodePoster(_ frame: UnsafeMutablePointer<AVFrame>) throws(AVFailure) -> [UInt8] {
        guard let mjpeg = avcodec_find_encoder(AV_CODEC_ID_MJPEG) else {
            throw AVFailure(.resource, operation: "avcodec_find_encoder", message: "the mjpeg encoder is not available")
        }
        let enc = try CodecContext(mjpeg, operation: "poster encoder")
        enc.ptr.pointee.width = frame.pointee.width
        enc.ptr.pointee.height = frame.pointee.height
        enc.ptr.pointee.pix_fmt = AV_PIX_FMT_YUVJ420P
        enc.ptr.pointee.color_range = AVCOL_RANGE_JPEG
        enc.ptr.pointee.time_base = AVRational(num: 1, den: 25)
        enc.ptr.pointee.flags |= AV_CODEC_FLAG_QSCALE
        enc.ptr.pointee.global_quality = 3 * FF_QP2LAMBDA
        var code = avcodec_open2(enc.ptr, mjpeg, nil)
        if code < 0 { throw AVFailure.output("avcodec_open2 mjpeg", code) }
        let posterScaler = Scaler()
        let full = try posterScaler.scale(frame, width: frame.pointee.width, height: frame.pointee.height, format: AV_PIX_FMT_YUVJ420P)
        full.ptr.pointee.pts = 0
        full.ptr.pointee.quality = 3 * FF_QP2LAMBDA
        code = avcodec_send_frame(enc.ptr, full.ptr)
        if code < 0 { throw AVFailure.output("avcodec_send_frame mjpeg", code) }
        let packet = try Packet()
        code = avcodec_receive_packet(enc.ptr, packet.ptr)
        if code < 0 { throw AVFailure.output("avcodec_receive_packet mjpeg", code) }
        return Array(UnsafeBufferPointer(start: packet.ptr.pointee.data, count: Int(packet.ptr.pointee.size)))
    }

    func reportProgress(force: Bool = false) {
        guard let progress else { return }
        let now = cshims_av_now_us()
        if now - lastReport < 1_000_000 && !force { return }
        lastReport = now
        progress(TranscodeProgress(frames: frames, seconds: lastSeconds, duration: probe.duration))
    }
}
