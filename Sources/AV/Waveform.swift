internal import CFFmpeg
internal import CShims

/// Peak data in the format of BBC's audiowaveform (what peaks.js reads): for each block of `samplesPerPixel`
/// sample frames, the minimum and maximum 16-bit sample of each output channel.
public struct Waveform: Sendable, Equatable {
    public var sampleRate: Int
    public var samplesPerPixel: Int
    /// Output channels: 1 (the average of the input channels) or the input's channel count (split).
    public var channels: Int
    /// 8 or 16: the resolution written to the `.dat` and JSON forms.
    public var bits: Int
    /// 16-bit values: min, max of channel 0, min, max of channel 1, ... for pixel 0, then pixel 1, ...
    public var data: [Int16]

    public init(sampleRate: Int, samplesPerPixel: Int, channels: Int, bits: Int, data: [Int16]) {
        self.sampleRate = sampleRate
        self.samplesPerPixel = samplesPerPixel
        self.channels = channels
        self.bits = bits
        self.data = data
    }

    /// Min/max pairs per channel.
    public var length: Int { channels == 0 ? 0 : data.count / (2 * channels) }

    /// A value at the output resolution: 8-bit is the 16-bit value / 256, truncated toward zero.
    @inline(__always) func scaled(_ value: Int16) -> Int { bits == 8 ? Int(value) / 256 : Int(value) }

    /// The binary `.dat`: version 1 (one channel) or 2 (with a channel count), flags bit 0 = 8-bit, little-endian.
    public var dat: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(24 + data.count * (bits == 8 ? 1 : 2))
        func int32(_ v: Int) { withUnsafeBytes(of: Int32(truncatingIfNeeded: v).littleEndian) { out.append(contentsOf: $0) } }
        int32(channels == 1 ? 1 : 2)
        int32(bits == 8 ? 1 : 0)
        int32(sampleRate)
        int32(samplesPerPixel)
        int32(length)
        if channels != 1 { int32(channels) }
        if bits == 8 {
            for v in data { out.append(UInt8(bitPattern: Int8(truncatingIfNeeded: Int(v) / 256))) }
        } else {
            for v in data {
                let u = UInt16(bitPattern: v)
                out.append(UInt8(u & 0xFF))
                out.append(UInt8(u >> 8))
            }
        }
        return out
    }

    /// The JSON form: `{"version":2,"channels","sample_rate","samples_per_pixel","bits","length","data":[...]}`.
    public var json: [UInt8] {
        var out = Array(
            "{\"version\":2,\"channels\":\(channels),\"sample_rate\":\(sampleRate),\"samples_per_pixel\":\(samplesPerPixel),\"bits\":\(bits),\"length\":\(length),\"data\":[".utf8)
        out.reserveCapacity(out.count + data.count * 6 + 3)
        var first = true
        for v in data {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            Self.appendDecimal(scaled(v), to: &out)
        }
        out.append(contentsOf: Array("]}\n".utf8))
        return out
    }

    static func appendDecimal(_ value: Int, to out: inout [UInt8]) {
        var v = value
        if v < 0 {
            out.append(UInt8(ascii: "-"))
            v = -v
        }
        if v == 0 {
            out.append(UInt8(ascii: "0"))
            return
        }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            while v > 0 {
                buffer[n] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
                n += 1
            }
            for i in stride(from: n - 1, through: 0, by: -1) { out.append(buffer[i]) }
        }
    }
}

/// How the waveform is cut into blocks and written.
public struct WaveformOptions: Sendable, Equatable {
    public enum Scale: Sendable, Equatable {
        /// Samples per pixel = sample rate / this (integer division), as audiowaveform's `--pixels-per-second`.
        case pixelsPerSecond(Int)
        case samplesPerPixel(Int)
    }

    public var scale: Scale = .pixelsPerSecond(100)
    /// 8 or 16.
    public var bits: Int = 16
    /// One waveform per input channel instead of their average.
    public var split: Bool = false

    public init(scale: Scale = .pixelsPerSecond(100), bits: Int = 16, split: Bool = false) {
        self.scale = scale
        self.bits = bits
        self.split = split
    }
}

/// What `WaveformGenerator.generate` found.
public struct WaveformResult: Sendable {
    public var waveform: Waveform
    public var probe: MediaProbe
    /// Seconds of audio decoded.
    public var duration: Double
    /// Channels of the input stream.
    public var inputChannels: Int
    public var cover: CoverArt?
}

/// Min/max per block of sample frames, over interleaved 16-bit samples, with audiowaveform's definition: mono is
/// the sum of the channels / channel count (integer division), each block starts at 32767/-32768, a final partial
/// block is emitted.
public struct WaveformAccumulator: Sendable {
    public let inputChannels: Int
    public let split: Bool
    public let samplesPerPixel: Int
    private var mins: [Int32]
    private var maxs: [Int32]
    private var count = 0
    public private(set) var data: [Int16] = []

    public init(inputChannels: Int, split: Bool, samplesPerPixel: Int) {
        self.inputChannels = inputChannels
        self.split = split
        self.samplesPerPixel = samplesPerPixel
        let outputs = split ? inputChannels : 1
        mins = Array(repeating: Int32(Int16.max), count: outputs)
        maxs = Array(repeating: Int32(Int16.min), count: outputs)
    }

    public var outputChannels: Int { split ? inputChannels : 1 }

    /// Adds `frames` sample frames of `inputChannels` interleaved samples.
    public mutating func add(_ samples: UnsafePointer<Int16>, frames: Int) {
        var done = 0
        while done < frames {
            let n = min(frames - done, samplesPerPixel - count)
            let block = samples + done * inputChannels
            if split {
                for c in 0..<inputChannels {
                    var lo = mins[c], hi = maxs[c]
                    var p = block + c
                    for _ in 0..<n {
                        let s = Int32(p.pointee)
                        lo = min(lo, s)
                        hi = max(hi, s)
                        p += inputChannels
                    }
                    mins[c] = lo
                    maxs[c] = hi
                }
            } else {
                var lo = mins[0], hi = maxs[0]
                switch inputChannels {
                case 1:
                    for i in 0..<n {
                        let s = Int32(block[i])
                        lo = min(lo, s)
                        hi = max(hi, s)
                    }
                case 2:
                    for i in 0..<n {
                        let s = (Int32(block[2 * i]) + Int32(block[2 * i + 1])) / 2
                        lo = min(lo, s)
                        hi = max(hi, s)
                    }
                default:
                    let channels = Int32(inputChannels)
                    for i in 0..<n {
                        var sum: Int32 = 0
                        for c in 0..<inputChannels { sum += Int32(block[i * inputChannels + c]) }
                        let s = sum / channels
                        lo = min(lo, s)
                        hi = max(hi, s)
                    }
                }
                mins[0] = lo
                maxs[0] = hi
            }
            count += n
            done += n
            if count == samplesPerPixel { emit() }
        }
    }

    private mutating func emit() {
        for c in 0..<mins.count {
            data.append(Int16(clamping: mins[c]))
            data.append(Int16(clamping: maxs[c]))
            mins[c] = Int32(Int16.max)
            maxs[c] = Int32(Int16.min)
        }
        count = 0
    }

    /// Emits the final partial block, if any.
    public mutating func finish() {
        if count > 0 { emit() }
    }
}

public enum WaveformGenerator {
    /// Decodes the audio of `path` under `policy` (an audio policy) and computes its waveform. Samples reach the
    /// accumulator as libswresample converts them to interleaved 16-bit at the stream's own rate and layout (what
    /// `ffmpeg -f s16le` writes).
    public static func generate(
        path: String, policy: InputPolicy = .audio, options: WaveformOptions, deadline: ContinuousClock.Instant
    ) throws(AVFailure) -> WaveformResult {
        let source = try AudioSource(path: path, policy: policy, deadlineMicros: microsDeadline(deadline))
        let rate = source.sampleRate
        let channels = source.channels
        guard rate > 0, channels > 0 else {
            throw AVFailure(.rejectedInput, operation: "probe \(path)", message: "the audio stream has no sample rate or channel count")
        }
        let samplesPerPixel: Int
        switch options.scale {
        case .pixelsPerSecond(let pps): samplesPerPixel = pps > 0 ? rate / pps : 0
        case .samplesPerPixel(let spp): samplesPerPixel = spp
        }
        guard samplesPerPixel >= 2 else {
            throw AVFailure(
                .rejectedInput, operation: "waveform \(path)",
                message: "\(samplesPerPixel) samples per pixel at \(rate) Hz; at least 2 are needed (lower pixels_per_second)")
        }
        var accumulator = WaveformAccumulator(inputChannels: channels, split: options.split, samplesPerPixel: samplesPerPixel)
        let converter = S16Converter(channels: channels, rate: Int32(rate))
        let decoded = try source.decode(maxSeconds: policy.maxDurationSeconds) { frame throws(AVFailure) in
            try converter.convert(frame) { samples, frames in accumulator.add(samples, frames: frames) }
        }
        try converter.flush { samples, frames in accumulator.add(samples, frames: frames) }
        accumulator.finish()
        let waveform = Waveform(
            sampleRate: rate, samplesPerPixel: samplesPerPixel, channels: accumulator.outputChannels, bits: options.bits,
            data: accumulator.data)
        return WaveformResult(waveform: waveform, probe: source.probe, duration: decoded.seconds, inputChannels: channels, cover: source.cover)
    }
}

/// Turns decoded frames into interleaved 16-bit samples at one fixed rate and channel count (those of the first
/// frame's stream), rebuilding the SwrContext when the input's format, rate or layout changes mid-stream.
final class S16Converter {
    let channels: Int32
    let rate: Int32
    private var swr: OpaquePointer?
    private var inputKey: (Int32, Int32, Int32) = (-1, 0, 0)
    private var outLayout = AVChannelLayout()
    private var buffer: UnsafeMutablePointer<Int16>
    private var capacity: Int

    init(channels: Int, rate: Int32) {
        self.channels = Int32(channels)
        self.rate = rate
        av_channel_layout_default(&outLayout, Int32(channels))
        capacity = 8192
        buffer = .allocate(capacity: capacity * channels)
    }

    deinit {
        swr_free(&swr)
        av_channel_layout_uninit(&outLayout)
        buffer.deallocate()
    }

    func convert(_ frame: UnsafeMutablePointer<AVFrame>, _ body: (UnsafePointer<Int16>, Int) -> Void) throws(AVFailure) {
        let f = frame.pointee
        let count = Int(f.nb_samples)
        guard count > 0 else { return }
        // Already interleaved 16-bit at the output's rate and channel count: no copy.
        if f.format == AV_SAMPLE_FMT_S16.rawValue && f.sample_rate == rate && f.ch_layout.nb_channels == channels, let data = f.data.0 {
            data.withMemoryRebound(to: Int16.self, capacity: count * Int(channels)) { body($0, count) }
            return
        }
        let key = (f.format, f.sample_rate, f.ch_layout.nb_channels)
        if swr == nil || key != inputKey {
            try rebuild(frame)
            inputKey = key
        }
        let room = Int(swr_get_out_samples(swr, Int32(count)))
        if room > capacity { grow(room) }
        let written = buffer.withMemoryRebound(to: UInt8.self, capacity: capacity * Int(channels) * 2) { bytes in
            cshims_av_convert_interleaved(swr, frame, bytes, Int32(capacity))
        }
        if written < 0 { throw AVFailure.input("swr_convert", written) }
        if written > 0 { body(UnsafePointer(buffer), Int(written)) }
    }

    /// Samples a resampler still holds (only when the rate changed mid-stream).
    func flush(_ body: (UnsafePointer<Int16>, Int) -> Void) throws(AVFailure) {
        guard let swr else { return }
        let written = buffer.withMemoryRebound(to: UInt8.self, capacity: capacity * Int(channels) * 2) { bytes in
            cshims_av_convert_interleaved(swr, nil, bytes, Int32(capacity))
        }
        if written < 0 { throw AVFailure.input("swr_convert", written) }
        if written > 0 { body(UnsafePointer(buffer), Int(written)) }
    }

    private func grow(_ frames: Int) {
        buffer.deallocate()
        capacity = frames
        buffer = .allocate(capacity: capacity * Int(channels))
    }

    private func rebuild(_ frame: UnsafeMutablePointer<AVFrame>) throws(AVFailure) {
        swr_free(&swr)
        var inLayout = resamplerInputLayout(frame.pointee.ch_layout)
        defer { av_channel_layout_uninit(&inLayout) }
        // The output keeps the input's own layout when the channel count is unchanged: no remix, format conversion only.
        var out = AVChannelLayout()
        if inLayout.nb_channels == channels { av_channel_layout_copy(&out, &inLayout) } else { av_channel_layout_copy(&out, &outLayout) }
        defer { av_channel_layout_uninit(&out) }
        var ctx: OpaquePointer? = nil
        var code = swr_alloc_set_opts2(
            &ctx, &out, AV_SAMPLE_FMT_S16, rate, &inLayout, AVSampleFormat(frame.pointee.format), frame.pointee.sample_rate, 0, nil)
        guard code >= 0, let ctx else { throw AVFailure.input("swr_alloc_set_opts2", code) }
        code = swr_init(ctx)
        if code < 0 {
            var owned: OpaquePointer? = ctx
            swr_free(&owned)
            throw AVFailure.input("swr_init", code)
        }
        swr = ctx
    }
}

@available(*, unavailable)
extension S16Converter: Sendable {}
