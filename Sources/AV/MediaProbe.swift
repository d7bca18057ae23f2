internal import CFFmpeg
internal import CShims

/// What an input contains, with ffprobe's field names and meanings.
public struct MediaProbe: Sendable, Equatable {
    public struct Stream: Sendable, Equatable {
        public var index: Int
        /// `video`, `audio`, `subtitle`, `data`, `attachment`.
        public var codecType: String
        public var codecName: String
        public var codecLongName: String?
        public var profile: String?
        public var width: Int?
        public var height: Int?
        public var pixFmt: String?
        /// Frame rates as ffprobe prints them: `30/1`, `30000/1001`.
        public var rFrameRate: String?
        public var avgFrameRate: String?
        public var timeBase: String
        public var duration: Double?
        public var bitRate: Int?
        public var nbFrames: Int?
        public var sampleFmt: String?
        public var sampleRate: Int?
        public var channels: Int?
        public var channelLayout: String?
        /// A cover picture stored as a stream (ID3 APIC, MP4 `covr`, FLAC PICTURE), not video.
        public var attachedPicture = false
        /// Degrees from the display matrix, as ffprobe's side_data_list reports it (counter-clockwise positive).
        public var rotation: Int?
    }

    /// Demuxer name as ffprobe's `format_name`: `mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`.
    public var formatName: String
    public var formatLongName: String?
    public var duration: Double?
    public var startTime: Double?
    public var size: Int?
    public var bitRate: Int?
    public var probeScore: Int
    public var streams: [Stream]

    public var videoStream: Stream? { streams.first { $0.codecType == "video" && !$0.attachedPicture } }
    public var audioStream: Stream? { streams.first { $0.codecType == "audio" } }

    /// Width and height after applying the rotation (what a player shows).
    public var displaySize: (width: Int, height: Int)? {
        guard let v = videoStream, let w = v.width, let h = v.height else { return nil }
        let quarter = ((v.rotation ?? 0) % 180 + 180) % 180
        return quarter == 90 ? (h, w) : (w, h)
    }
}

extension MediaProbe {
    /// Probes a local file in-process under `policy`, stopping at `deadline`.
    public static func probe(path: String, policy: InputPolicy = InputPolicy(), deadline: ContinuousClock.Instant) throws(AVFailure) -> MediaProbe {
        AVLibrary.configure()
        let input = try MediaInput(path: path, policy: policy, deadlineMicros: microsDeadline(deadline))
        return try MediaProbe(input: input)
    }

    init(input: MediaInput, checkDuration: Bool = true) throws(AVFailure) {
        let ctx = input.context.pointee
        let format = ctx.iformat.pointee
        formatName = String(cString: format.name)
        formatLongName = format.long_name.map { String(cString: $0) }
        duration = ctx.duration > 0 ? Double(ctx.duration) / Double(AV_TIME_BASE) : nil
        startTime = ctx.start_time != avNoPTS ? Double(ctx.start_time) / Double(AV_TIME_BASE) : nil
        let bytes = avio_size(ctx.pb)
        size = bytes >= 0 ? Int(bytes) : nil
        bitRate = ctx.bit_rate > 0 ? Int(ctx.bit_rate) : nil
        probeScore = Int(ctx.probe_score)
        var streams: [Stream] = []
        for i in 0..<input.streamCount {
            streams.append(Stream(input.stream(i)))
        }
        self.streams = streams
        if checkDuration, let duration, input.policy.maxDurationSeconds > 0, duration > input.policy.maxDurationSeconds {
            throw AVFailure(
                .rejectedInput, operation: "probe \(input.path)",
                message: "duration \(Int(duration)) s is over the \(Int(input.policy.maxDurationSeconds)) s limit (CONVEYOR_VIDEO_MAX_DURATION)")
        }
        if streams.allSatisfy({ $0.codecType != "video" && $0.codecType != "audio" }) {
            throw AVFailure(.rejectedInput, operation: "probe \(input.path)", message: "no video or audio stream")
        }
    }
}

let avNoPTS = Int64(bitPattern: 0x8000_0000_0000_0000)

func rationalText(_ r: AVRational) -> String { "\(r.num)/\(r.den)" }

func microsDeadline(_ deadline: ContinuousClock.Instant) -> Int64 {
    let left = deadline - .now
    let micros = left.components.seconds * 1_000_000 + left.components.attoseconds / 1_000_000_000_000
    return cshims_av_now_us() + max(0, micros)
}

extension MediaProbe.Stream {
    init(_ stream: UnsafeMutablePointer<AVStream>) {
        let st = stream.pointee
        let par = st.codecpar.pointee
        index = Int(st.index)
        codecType = av_get_media_type_string(par.codec_type).map { String(cString: $0) } ?? "unknown"
        codecName = String(cString: avcodec_get_name(par.codec_id))
        codecLongName = avcodec_descriptor_get(par.codec_id).map { String(cString: $0.pointee.long_name) }
        profile = par.profile != FF_PROFILE_UNKNOWN
            ? avcodec_profile_name(par.codec_id, par.profile).map { String(cString: $0) } : nil
        timeBase = rationalText(st.time_base)
        duration = st.duration != avNoPTS && st.duration > 0 ? Double(st.duration) * av_q2d(st.time_base) : nil
        bitRate = par.bit_rate > 0 ? Int(par.bit_rate) : nil
        nbFrames = st.nb_frames > 0 ? Int(st.nb_frames) : nil
        attachedPicture = st.disposition & (1 << 10) != 0  // AV_DISPOSITION_ATTACHED_PIC
        if par.codec_type == AVMEDIA_TYPE_VIDEO {
            width = Int(par.width)
            height = Int(par.height)
            pixFmt = av_get_pix_fmt_name(AVPixelFormat(par.format)).map { String(cString: $0) }
            rFrameRate = rationalText(st.r_frame_rate)
            avgFrameRate = rationalText(st.avg_frame_rate)
            var size: Int = 0
            if let matrix = av_stream_get_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, &size), size >= 36 {
                let degrees = matrix.withMemoryRebound(to: Int32.self, capacity: 9) { av_display_rotation_get($0) }
                if degrees.isFinite { rotation = Int(degrees.rounded()) }
            }
        } else if par.codec_type == AVMEDIA_TYPE_AUDIO {
            sampleFmt = av_get_sample_fmt_name(AVSampleFormat(par.format)).map { String(cString: $0) }
            sampleRate = Int(par.sample_rate)
            channels = Int(par.ch_layout.nb_channels)
            var layout = par.ch_layout
            var buffer = [CChar](repeating: 0, count: 64)
            if av_channel_layout_describe(&layout, &buffer, buffer.count) > 0 {
                channelLayout = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
    }
}
