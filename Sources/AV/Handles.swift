internal import CFFmpeg
internal import CShims

/// Owns an AVCodecContext.
final class CodecContext {
    let ptr: UnsafeMutablePointer<AVCodecContext>
    init(_ codec: UnsafePointer<AVCodec>, operation: String) throws(AVFailure) {
        guard let ctx = avcodec_alloc_context3(codec) else {
            throw AVFailure(.resource, operation: operation, message: "avcodec_alloc_context3: out of memory")
        }
        ptr = ctx
    }
    deinit {
        var ctx: UnsafeMutablePointer<AVCodecContext>? = ptr
        avcodec_free_context(&ctx)
    }
}

/// Owns an AVFrame.
final class Frame {
    let ptr: UnsafeMutablePointer<AVFrame>
    init() throws(AVFailure) {
        guard let frame = av_frame_alloc() else {
            throw AVFailure(.resource, operation: "av_frame_alloc", message: "out of memory")
        }
        ptr = frame
    }
    deinit {
        var frame: UnsafeMutablePointer<AVFrame>? = ptr
        av_frame_free(&frame)
    }

    /// A frame with its own buffers for video of the given size and pixel format.
    static func video(width: Int32, height: Int32, format: AVPixelFormat) throws(AVFailure) -> Frame {
        let frame = try Frame()
        frame.ptr.pointee.width = width
        frame.ptr.pointee.height = height
        frame.ptr.pointee.format = format.rawValue
        let code = av_frame_get_buffer(frame.ptr, 0)
        if code < 0 { throw AVFailure(.resource, operation: "av_frame_get_buffer", message: AVFailure.text(code), code: code) }
        return frame
    }
}

/// Owns an AVPacket.
final class Packet {
    let ptr: UnsafeMutablePointer<AVPacket>
    init() throws(AVFailure) {
        guard let packet = av_packet_alloc() else {
            throw AVFailure(.resource, operation: "av_packet_alloc", message: "out of memory")
        }
        ptr = packet
    }
    deinit {
        var packet: UnsafeMutablePointer<AVPacket>? = ptr
        av_packet_free(&packet)
    }
}

/// Owns a SwsContext (recreated when the source geometry changes).
final class Scaler {
    var ptr: OpaquePointer?
    init() {}
    deinit { sws_freeContext(ptr) }

    /// Scales `source` into a new frame of the given size and format.
    func scale(_ source: UnsafeMutablePointer<AVFrame>, width: Int32, height: Int32, format: AVPixelFormat) throws(AVFailure) -> Frame {
        ptr = sws_getCachedContext(
            ptr, source.pointee.width, source.pointee.height, AVPixelFormat(source.pointee.format),
            width, height, format, SWS_BICUBIC, nil, nil, nil)
        guard let ptr else {
            throw AVFailure(.rejectedInput, operation: "sws_getCachedContext", message: "cannot convert pixel format \(source.pointee.format)")
        }
        let out = try Frame.video(width: width, height: height, format: format)
        let code = sws_scale_frame(ptr, out.ptr, source)
        if code < 0 { throw AVFailure(.rejectedInput, operation: "sws_scale_frame", message: AVFailure.text(code), code: code) }
        return out
    }
}

/// The channel layout a resampler is given for an input's `layout`: a copy, or, where the decoder left it
/// unspecified (order UNSPEC, or no channels: some WAV and raw inputs), the default layout for its channel count.
/// The caller uninits the result.
func resamplerInputLayout(_ layout: AVChannelLayout) -> AVChannelLayout {
    var source = layout
    var result = AVChannelLayout()
    if source.order == AV_CHANNEL_ORDER_UNSPEC || source.nb_channels == 0 {
        av_channel_layout_default(&result, max(1, source.nb_channels))
    } else {
        av_channel_layout_copy(&result, &source)
    }
    return result
}

/// Owns a SwrContext and the FIFO that regroups its output into encoder-sized frames.
final class Resampler {
    var swr: OpaquePointer?
    let fifo: OpaquePointer

    /// Converts input of `layout`, `format` and `rate` to what `encoder` takes (its layout and rate) in `outFormat`.
    init(
        from layout: AVChannelLayout, format: AVSampleFormat, rate: Int32, to encoder: CodecContext, format outFormat: AVSampleFormat
    ) throws(AVFailure) {
        var inLayout = resamplerInputLayout(layout)
        defer { av_channel_layout_uninit(&inLayout) }
        var made: OpaquePointer? = nil
        var code = swr_alloc_set_opts2(
            &made, &encoder.ptr.pointee.ch_layout, outFormat, encoder.ptr.pointee.sample_rate, &inLayout, format, rate, 0, nil)
        guard code >= 0, let made else { throw AVFailure.input("swr_alloc_set_opts2", code) }
        code = swr_init(made)
        guard code >= 0, let fifo = av_audio_fifo_alloc(outFormat, encoder.ptr.pointee.ch_layout.nb_channels, 4096) else {
            var owned: OpaquePointer? = made
            swr_free(&owned)
            throw AVFailure.input("swr_init", code)
        }
        swr = made
        self.fifo = fifo
    }
    deinit {
        swr_free(&swr)
        av_audio_fifo_free(fifo)
    }

    /// Takes frames of the encoder's frame size out of the FIFO (with `final`, the rest too, in a shorter last
    /// frame), numbers them from `pts` in samples, and hands each to `encode`.
    func drain(
        into encoder: CodecContext, format: AVSampleFormat, final: Bool, pts: inout Int64,
        _ encode: (UnsafeMutablePointer<AVFrame>) throws(AVFailure) -> Void
    ) throws(AVFailure) {
        let frameSize = encoder.ptr.pointee.frame_size > 0 ? encoder.ptr.pointee.frame_size : 1024
        while true {
            let available = av_audio_fifo_size(fifo)
            if available <= 0 || (available < frameSize && !final) { return }
            let count = min(available, frameSize)
            let frame = try Frame()
            frame.ptr.pointee.nb_samples = count
            frame.ptr.pointee.format = format.rawValue
            frame.ptr.pointee.sample_rate = encoder.ptr.pointee.sample_rate
            av_channel_layout_copy(&frame.ptr.pointee.ch_layout, &encoder.ptr.pointee.ch_layout)
            var code = av_frame_get_buffer(frame.ptr, 0)
            if code < 0 { throw AVFailure(.resource, operation: "av_frame_get_buffer", message: AVFailure.text(code), code: code) }
            code = cshims_av_fifo_read(fifo, frame.ptr, count)
            if code < 0 { throw AVFailure.output("av_audio_fifo_read", code) }
            frame.ptr.pointee.pts = pts
            pts += Int64(count)
            try encode(frame.ptr)
        }
    }
}

/// Owns an output AVFormatContext and its file.
final class OutputFile {
    let ptr: UnsafeMutablePointer<AVFormatContext>
    init(path: String, format: String) throws(AVFailure) {
        var ctx: UnsafeMutablePointer<AVFormatContext>? = nil
        let code = avformat_alloc_output_context2(&ctx, nil, format, "file:" + path)
        guard code >= 0, let ctx else { throw AVFailure.output("avformat_alloc_output_context2", code) }
        ptr = ctx
        // +faststart reopens the file by name to move the moov box: keep that to the file protocol too.
        av_opt_set(ctx, "protocol_whitelist", "file", 0)
        var options: OpaquePointer? = nil
        av_dict_set(&options, "protocol_whitelist", "file", 0)
        let openCode = avio_open2(&ctx.pointee.pb, "file:" + path, AVIO_FLAG_WRITE, nil, &options)
        av_dict_free(&options)
        if openCode < 0 { throw AVFailure.output("avio_open2 \(path)", openCode) }
    }
    deinit {
        avio_closep(&ptr.pointee.pb)
        avformat_free_context(ptr)
    }
}

@available(*, unavailable) extension CodecContext: Sendable {}
@available(*, unavailable) extension Frame: Sendable {}
@available(*, unavailable) extension Packet: Sendable {}
@available(*, unavailable) extension Scaler: Sendable {}
@available(*, unavailable) extension Resampler: Sendable {}
@available(*, unavailable) extension OutputFile: Sendable {}
