internal import CFFmpeg
internal import CShims

/// An opened untrusted media file: one owner for its AVFormatContext, its AVIOContext and the guard
/// that refuses nested opens and enforces the deadline.
final class MediaInput {
    let context: UnsafeMutablePointer<AVFormatContext>
    private var io: UnsafeMutablePointer<AVIOContext>?
    let guardState: UnsafeMutablePointer<cshims_av_guard>
    let path: String
    let policy: InputPolicy

    /// Opens `path` (a local file) under `policy`, reading stream parameters, or throws a classified failure.
    /// - Parameter deadlineMicros: `cshims_av_now_us()`-based instant after which every FFmpeg call stops.
    init(path: String, policy: InputPolicy, deadlineMicros: Int64) throws(AVFailure) {
        self.path = path
        self.policy = policy
        guardState = .allocate(capacity: 1)
        guardState.initialize(to: cshims_av_guard())
        guardState.pointee.deadline_us = deadlineMicros

        // The main file is opened here, not through io_open: io_open refuses everything, so a playlist or
        // concat list inside the upload cannot reach a second file or the network.
        var interrupt = cshims_av_guard_interrupt(guardState)
        var ioOptions: OpaquePointer? = nil
        av_dict_set(&ioOptions, "protocol_whitelist", "file", 0)
        var pb: UnsafeMutablePointer<AVIOContext>? = nil
        let openCode = avio_open2(&pb, "file:" + path, AVIO_FLAG_READ, &interrupt, &ioOptions)
        av_dict_free(&ioOptions)
        guard openCode >= 0, let pb else {
            let failure = AVFailure.input("avio_open2 \(path)", openCode, guard: UnsafePointer(guardState))
            guardState.deallocate()
            throw failure
        }
        guard let ctx = avformat_alloc_context() else {
            var pbOwned: UnsafeMutablePointer<AVIOContext>? = pb
            avio_closep(&pbOwned)
            guardState.deallocate()
            throw AVFailure(.resource, operation: "avformat_alloc_context", message: "out of memory")
        }
        ctx.pointee.pb = pb
        ctx.pointee.flags |= AVFMT_FLAG_CUSTOM_IO
        cshims_av_guard_install(ctx, guardState)
        io = pb

        var options: OpaquePointer? = nil
        // The main file is already open (protocol_whitelist=file above). Nested opens get no protocol at all:
        // the concat demuxer of libavformat 59 does not pass io_open on to the files it opens, so this is
        // what stops it if it is ever allowed.
        av_dict_set(&options, "protocol_whitelist", "none", 0)
        av_dict_set(&options, "format_whitelist", policy.formats.joined(separator: ","), 0)
        av_dict_set(&options, "codec_whitelist", policy.codecs.joined(separator: ","), 0)
        av_dict_set(&options, "probesize", String(policy.probeSize), 0)
        av_dict_set(&options, "analyzeduration", String(policy.analyzeDuration), 0)
        av_dict_set(&options, "max_streams", String(policy.maxStreams), 0)
        // mov: never follow data references to other files; no external subtitle/chapters.
        av_dict_set(&options, "enable_drefs", "0", 0)
        var ctxOpt: UnsafeMutablePointer<AVFormatContext>? = ctx
        let code = avformat_open_input(&ctxOpt, "file:" + path, nil, &options)
        av_dict_free(&options)
        guard code >= 0, let opened = ctxOpt else {
            // avformat_open_input frees the context on failure but never a caller-supplied pb.
            var pbOwned: UnsafeMutablePointer<AVIOContext>? = pb
            avio_closep(&pbOwned)
            let failure = AVFailure.input("avformat_open_input \(path)", code, guard: UnsafePointer(guardState))
            guardState.deallocate()
            throw failure.describingInput(path, policy: policy, code: code)
        }
        context = opened
        // Dimensions the demuxer reports are checked before any decoder runs.
        try checkDimensions()
        let infoCode = avformat_find_stream_info(opened, nil)
        if infoCode < 0 {
            throw AVFailure.input("avformat_find_stream_info \(path)", infoCode, guard: UnsafePointer(guardState))
        }
        try checkDimensions()
        try checkNestedOpens()
    }

    /// An input that tried to open anything besides itself is hostile, even if libavformat carried on.
    func checkNestedOpens() throws(AVFailure) {
        if guardState.pointee.refused_opens > 0 {
            throw AVFailure.input("nested open", cshims_averror_eperm(), guard: UnsafePointer(guardState))
        }
    }

    deinit {
        var ctx: UnsafeMutablePointer<AVFormatContext>? = context
        avformat_close_input(&ctx)
        avio_closep(&io)
        guardState.deallocate()
    }

    var refusedOpens: Int { Int(guardState.pointee.refused_opens) }

    var streamCount: Int { Int(context.pointee.nb_streams) }

    func stream(_ index: Int) -> UnsafeMutablePointer<AVStream> { context.pointee.streams[index]! }

    /// The stream libavformat considers best for a media type, or nil.
    func bestStream(_ type: AVMediaType) -> Int? {
        let index = av_find_best_stream(context, type, -1, -1, nil, 0)
        return index >= 0 ? Int(index) : nil
    }

    /// The best video stream that moves: an attached picture (an audio file's cover art, one frame) is not one.
    func bestMovingVideoStream() -> Int? {
        let attachedPicture: Int32 = 1 << 10  // AV_DISPOSITION_ATTACHED_PIC
        func moving(_ i: Int) -> Bool {
            let st = stream(i).pointee
            return st.codecpar.pointee.codec_type == AVMEDIA_TYPE_VIDEO && st.disposition & attachedPicture == 0
        }
        if let best = bestStream(AVMEDIA_TYPE_VIDEO), moving(best) { return best }
        return (0..<streamCount).first(where: moving)
    }

    private func checkDimensions() throws(AVFailure) {
        for i in 0..<streamCount {
            let par = stream(i).pointee.codecpar.pointee
            guard par.codec_type == AVMEDIA_TYPE_VIDEO else { continue }
            let pixels = Int(par.width) * Int(par.height)
            if pixels > policy.maxPixels {
                throw AVFailure(
                    .rejectedInput, operation: "probe \(path)",
                    message: "video stream \(i) is \(par.width)x\(par.height), over the \(policy.maxPixels)-pixel limit (CONVEYOR_VIDEO_MAX_PIXELS)")
            }
        }
    }
}

extension MediaInput {
    /// Opens the decoder of one of this input's streams under the policy's codec allow-list and pixel limit.
    func openDecoder(_ stream: UnsafeMutablePointer<AVStream>) throws(AVFailure) -> CodecContext {
        let par = stream.pointee.codecpar!
        let name = String(cString: avcodec_get_name(par.pointee.codec_id))
        guard let codec = avcodec_find_decoder(par.pointee.codec_id) else {
            throw AVFailure(.rejectedInput, operation: "decoder for stream \(stream.pointee.index)", message: "no decoder for \(name)")
        }
        let ctx = try CodecContext(codec, operation: "decoder \(name)")
        var code = avcodec_parameters_to_context(ctx.ptr, par)
        if code < 0 { throw AVFailure.input("avcodec_parameters_to_context", code) }
        ctx.ptr.pointee.pkt_timebase = stream.pointee.time_base
        ctx.ptr.pointee.max_pixels = Int64(policy.maxPixels)
        ctx.ptr.pointee.thread_count = 0
        var options: OpaquePointer? = nil
        av_dict_set(&options, "codec_whitelist", policy.codecs.joined(separator: ","), 0)
        code = avcodec_open2(ctx.ptr, codec, &options)
        av_dict_free(&options)
        if code < 0 {
            var failure = AVFailure.input("avcodec_open2 \(name)", code)
            if failure.kind == AVFailure.Kind.rejectedInput {
                failure.message = "codec \(String(cString: codec.pointee.name)) is not accepted or cannot be opened (\(failure.message))"
            }
            throw failure
        }
        return ctx
    }
}

@available(*, unavailable)
extension MediaInput: Sendable {}

extension AVFailure {
    /// Adds what the caller can do to the raw FFmpeg message of a failed open.
    func describingInput(_ path: String, policy: InputPolicy, code: Int32) -> AVFailure {
        guard kind == .rejectedInput else { return self }
        var copy = self
        if code == cshims_averror_invaliddata() {
            copy.message = "not a recognised video or audio file (\(message))"
        } else if code == -EINVAL_CODE {
            copy.message = "container is not accepted (allowed: \(policy.formats.joined(separator: ", "))) or invalid (\(message))"
        }
        return copy
    }
}

private let EINVAL_CODE: Int32 = 22
