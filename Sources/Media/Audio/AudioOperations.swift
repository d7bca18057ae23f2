public import AV
public import ConveyorCore
import Foundation
public import Sandbox
import Storage
import Vips

/// The native work of the audio jobs as helper operations, confined like the video ones: keys under the media
/// root, resolved by the helper, FFmpeg under `InputPolicy.audio`.
public enum AudioOperations {
    /// `audio.waveform`: writes the `.dat`, the JSON and optionally the image to the temporary keys it is given.
    public static let waveformOperation = HelperOperation<WaveformHelperRequest, JSONValue>("audio.waveform") {
        request, context throws(JobFailure) in
        try waveform(request, deadline: context.deadline)
    }

    /// `audio.transcode`: writes the rendition and, when asked, the cover picture's bytes.
    public static let transcodeOperation = HelperOperation<AudioTranscodeHelperRequest, JSONValue>("audio.transcode") {
        request, context throws(JobFailure) in
        try transcode(request, deadline: context.deadline)
    }

    static func waveform(_ request: WaveformHelperRequest, deadline: ContinuousClock.Instant?) throws(JobFailure) -> JSONValue {
        let root = try MediaRoot(request.mediaRoot, create: false)
        let path = try root.source(request.source)
        let datPath = try root.writable(request.dat, field: "dat")
        let jsonPath = try root.writable(request.json, field: "json")
        let imagePath = try request.image.map { key throws(JobFailure) in try root.writable(key, field: "image") }
        let result: WaveformResult
        do {
            result = try WaveformGenerator.generate(
                path: path, policy: request.policy, options: request.options, deadline: VideoOperations.deadline(deadline))
        } catch {
            throw JobFailure(audio: error)
        }
        let waveform = result.waveform
        try write(waveform.dat, to: datPath, what: "the .dat")
        try write(waveform.json, to: jsonPath, what: "the JSON")
        if let imagePath, let style = request.imageStyle {
            let pixels = WaveformImage.render(waveform, style: style)
            do {
                try Vips.start()
                let image = try Vips.image(rgba: pixels, width: style.width, height: style.height)
                try Vips.save(image, to: imagePath, format: style.format == "webp" ? .webp : .png, quality: 90, strip: true)
            } catch {
                throw .transient(.audioOutputFailed, "cannot write the waveform image: \(error)")
            }
        }
        var object = JSONObject()
        object["duration"] = JSONValue(result.duration)
        object["sample_rate"] = JSONValue(waveform.sampleRate)
        object["channels"] = JSONValue(waveform.channels)
        object["input_channels"] = JSONValue(result.inputChannels)
        object["samples_per_pixel"] = JSONValue(waveform.samplesPerPixel)
        object["bits"] = JSONValue(waveform.bits)
        object["length"] = JSONValue(waveform.length)
        object["probe"] = result.probe.ffprobeJSON
        return .object(object)
    }

    static func transcode(_ request: AudioTranscodeHelperRequest, deadline: ContinuousClock.Instant?) throws(JobFailure) -> JSONValue {
        let root = try MediaRoot(request.mediaRoot, create: false)
        let path = try root.source(request.source)
        let output = try root.writable(request.output, field: "output")
        let coverPath = try request.cover.map { key throws(JobFailure) in try root.writable(key, field: "cover") }
        let result: AudioTranscodeResult
        do {
            result = try AudioTranscoder.transcode(
                inputPath: path, outputPath: output, format: request.format, policy: request.policy,
                deadline: VideoOperations.deadline(deadline))
        } catch {
            throw JobFailure(audio: error)
        }
        var object = JSONObject()
        object["format"] = JSONValue(result.format.rawValue)
        object["duration"] = JSONValue(result.duration)
        object["sample_rate"] = JSONValue(result.sampleRate)
        object["channels"] = JSONValue(result.channels)
        object["bit_rate"] = JSONValue(result.bitRate)
        if let coverPath, let cover = result.cover {
            try write(cover.bytes, to: coverPath, what: "the cover picture")
            object["cover_format"] = JSONValue(cover.format)
            object["cover_bytes"] = JSONValue(cover.bytes.count)
        }
        object["input"] = result.probe.ffprobeJSON
        return .object(object)
    }

    static func write(_ bytes: [UInt8], to path: String, what: String) throws(JobFailure) {
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: path))
        } catch {
            throw .transient(.audioOutputFailed, "cannot write \(what): \(error)")
        }
    }
}

/// Drawing of an optional waveform picture for feeds and link previews.
public struct WaveformImageStyle: Sendable, Equatable {
    public var width = 800
    public var height = 250
    /// RGBA.
    public var color: [UInt8] = [0x98, 0x98, 0x98, 0xFF]
    public var background: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF]
    /// `png` or `webp`.
    public var format = "png"

    public init() {}

    /// `#rrggbb` or `#rrggbbaa` (the `#` optional), or nil.
    public static func color(_ text: String) -> [UInt8]? {
        let hex = text.hasPrefix("#") ? String(text.dropFirst()) : text
        guard hex.count == 6 || hex.count == 8, hex.allSatisfy(\.isHexDigit) else { return nil }
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        if bytes.count == 3 { bytes.append(0xFF) }
        return bytes
    }

    static func hex(_ rgba: [UInt8]) -> String { "#" + rgba.map { String(format: "%02x", $0) }.joined() }

    var json: JSONValue {
        ["width": JSONValue(width), "height": JSONValue(height), "color": JSONValue(Self.hex(color)),
         "background": JSONValue(Self.hex(background)), "format": JSONValue(format)]
    }

    init?(json: JSONObject) {
        guard let w = json["width"]?.intValue, let h = json["height"]?.intValue,
            let c = json["color"]?.stringValue.flatMap(Self.color), let b = json["background"]?.stringValue.flatMap(Self.color),
            let f = json["format"]?.stringValue
        else { return nil }
        width = w
        height = h
        color = c
        background = b
        format = f
    }
}

enum WaveformImage {
    /// RGBA pixels: one vertical line per column from the block maximum to the block minimum of the pixels it
    /// covers; split channels get a band each, top to bottom.
    static func render(_ waveform: Waveform, style: WaveformImageStyle) -> [UInt8] {
        let width = style.width, height = style.height
        var pixels = [UInt8](repeating: 0, count: width * height * 4)
        for i in 0..<(width * height) {
            pixels[i * 4] = style.background[0]
            pixels[i * 4 + 1] = style.background[1]
            pixels[i * 4 + 2] = style.background[2]
            pixels[i * 4 + 3] = style.background[3]
        }
        let length = waveform.length, channels = max(1, waveform.channels)
        guard length > 0 else { return pixels }
        let band = height / channels
        guard band > 0 else { return pixels }
        for channel in 0..<channels {
            let top = channel * band
            for x in 0..<width {
                let start = x * length / width
                let end = max(start + 1, (x + 1) * length / width)
                var lo = Int(Int16.max), hi = Int(Int16.min)
                for p in start..<min(end, length) {
                    let base = (p * channels + channel) * 2
                    lo = min(lo, Int(waveform.data[base]))
                    hi = max(hi, Int(waveform.data[base + 1]))
                }
                // Value +32767 is the band's top row, -32768 its bottom row.
                func row(_ v: Int) -> Int { top + min(band - 1, max(0, (32767 - v) * (band - 1) / 65535)) }
                let y0 = row(hi), y1 = row(lo)
                for y in y0...max(y0, y1) {
                    let i = (y * width + x) * 4
                    pixels[i] = style.color[0]
                    pixels[i + 1] = style.color[1]
                    pixels[i + 2] = style.color[2]
                    pixels[i + 3] = style.color[3]
                }
            }
        }
        return pixels
    }
}

/// What the worker sends `audio.waveform`. Wire: `{"media_root", "source", "dat", "json", "image"?, "image_style"?,
/// "pixels_per_second" | "samples_per_pixel", "bits", "split", "policy"}`.
public struct WaveformHelperRequest: HelperRequest {
    public var mediaRoot: String
    public var source: String
    public var dat: String
    public var json: String
    public var image: String?
    public var imageStyle: WaveformImageStyle?
    public var options: WaveformOptions
    public var policy: InputPolicy

    public init(
        mediaRoot: String, source: String, dat: String, json: String, image: String?, imageStyle: WaveformImageStyle?,
        options: WaveformOptions, policy: InputPolicy
    ) {
        self.mediaRoot = mediaRoot
        self.source = source
        self.dat = dat
        self.json = json
        self.image = image
        self.imageStyle = imageStyle
        self.options = options
        self.policy = policy
    }

    public init(helperArguments arguments: JSONObject) throws(JobFailure) {
        mediaRoot = try MediaRoot.helperArgument(arguments)
        source = try VideoOperations.required(arguments, "source")
        dat = try VideoOperations.required(arguments, "dat")
        json = try VideoOperations.required(arguments, "json")
        image = arguments["image"]?.stringValue
        imageStyle = arguments["image_style"]?.objectValue.flatMap(WaveformImageStyle.init(json:))
        var options = WaveformOptions()
        if let spp = arguments["samples_per_pixel"]?.intValue {
            options.scale = .samplesPerPixel(spp)
        } else if let pps = arguments["pixels_per_second"]?.intValue {
            options.scale = .pixelsPerSecond(pps)
        } else {
            throw .permanent(.invalidHelperArguments, "audio.waveform: pixels_per_second or samples_per_pixel missing")
        }
        options.bits = arguments["bits"]?.intValue ?? 16
        options.split = arguments["split"]?.boolValue ?? false
        self.options = options
        policy = InputPolicy(json: arguments["policy"]?.objectValue)
    }

    public var helperArguments: JSONObject {
        var arguments = JSONObject([
            ("media_root", .string(mediaRoot)), ("source", .string(source)), ("dat", .string(dat)), ("json", .string(json)),
        ])
        if let image { arguments["image"] = .string(image) }
        if let imageStyle { arguments["image_style"] = imageStyle.json }
        switch options.scale {
        case .pixelsPerSecond(let pps): arguments["pixels_per_second"] = JSONValue(pps)
        case .samplesPerPixel(let spp): arguments["samples_per_pixel"] = JSONValue(spp)
        }
        arguments["bits"] = JSONValue(options.bits)
        arguments["split"] = JSONValue(options.split)
        arguments["policy"] = policy.json
        return arguments
    }
}

/// What the worker sends `audio.transcode`. Wire: `{"media_root", "source", "output", "format", "cover"?, "policy"}`.
public struct AudioTranscodeHelperRequest: HelperRequest {
    public var mediaRoot: String
    public var source: String
    public var output: String
    public var format: AudioFormat
    /// Where the cover picture's bytes go (nil: not extracted).
    public var cover: String?
    public var policy: InputPolicy

    public init(mediaRoot: String, source: String, output: String, format: AudioFormat, cover: String?, policy: InputPolicy) {
        self.mediaRoot = mediaRoot
        self.source = source
        self.output = output
        self.format = format
        self.cover = cover
        self.policy = policy
    }

    public init(helperArguments arguments: JSONObject) throws(JobFailure) {
        mediaRoot = try MediaRoot.helperArgument(arguments)
        source = try VideoOperations.required(arguments, "source")
        output = try VideoOperations.required(arguments, "output")
        guard let format = AudioFormat(rawValue: try VideoOperations.required(arguments, "format")) else {
            throw .permanent(.invalidHelperArguments, "audio.transcode: unknown format")
        }
        self.format = format
        cover = arguments["cover"]?.stringValue
        policy = InputPolicy(json: arguments["policy"]?.objectValue)
    }

    public var helperArguments: JSONObject {
        var arguments = JSONObject([
            ("media_root", .string(mediaRoot)), ("source", .string(source)), ("output", .string(output)),
            ("format", .string(format.rawValue)),
        ])
        if let cover { arguments["cover"] = .string(cover) }
        arguments["policy"] = policy.json
        return arguments
    }
}

extension JobFailure {
    /// As `init(_ failure:)`, with audio's output error class.
    init(audio failure: AVFailure) {
        self.init(failure)
        if errorClass == ErrorClass.videoOutputFailed.rawValue {
            self = isPermanent ? .permanent(.audioOutputFailed, message) : .transient(.audioOutputFailed, message)
        }
    }
}
