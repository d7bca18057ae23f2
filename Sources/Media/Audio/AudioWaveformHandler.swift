public import AV
public import ConveyorCore
public import Storage
public import Sandbox
import Foundation

/// `audio.waveform`: peak data in audiowaveform's `.dat` and JSON forms (what peaks.js draws), and optionally a
/// PNG or WebP picture of it.
///
/// Arguments: `source`, `output` (key stem, default `<source stem>.waveform`: writes `<output>.dat`,
/// `<output>.json`, `<output>.png|webp`), `pixels_per_second` (default 100) or `samples_per_pixel`, `bits` (8 or
/// 16, default 16), `channels` (`mono` or `split`), `image` (`{"width", "height", "color", "background", "format"}`).
public struct AudioWaveformHandler: JobHandler {
    public static let jobClass = "audio.waveform"
    public let store: any MediaStore
    public let configuration: VideoConfiguration
    public let pool: HelperPool

    public init(store: any MediaStore, configuration: VideoConfiguration, pool: HelperPool) {
        self.store = store
        self.configuration = configuration
        self.pool = pool
    }

    /// What to compute and where to put it, from the job's arguments.
    public struct Spec: Sendable {
        public var output: String
        public var options: WaveformOptions
        public var image: WaveformImageStyle?
    }

    public func perform(_ job: JobContext) async throws -> JSONValue {
        try VideoArguments.check(job, allowed: ["source", "output", "pixels_per_second", "samples_per_pixel", "bits", "channels", "image", "bucket"])
        let source = try job.string("source")
        let store = try store.forJob(job)
        let spec = try Self.spec(job, source: source)
        let input = MediaInput(source, maxBytes: configuration.maxSourceBytes)
        let result = try await store.staged([input], jid: job.jid, deadline: job.deadline) { root in
            try await generate(job, root: root, source: source, spec: spec)
        }
        return store.locating(.object(result))
    }

    static func spec(_ job: JobContext, source: String) throws(JobFailure) -> Spec {
        var options = WaveformOptions()
        let pps = try job.optionalInt("pixels_per_second", in: 1...192_000)
        let spp = try job.optionalInt("samples_per_pixel", in: 2...(1 << 24))
        if pps != nil && spp != nil {
            throw .invalidArguments("\(job.jobClass): give pixels_per_second or samples_per_pixel, not both")
        }
        if let spp { options.scale = .samplesPerPixel(spp) } else { options.scale = .pixelsPerSecond(pps ?? 100) }
        options.bits = try job.optionalInt("bits", in: 8...16) ?? 16
        guard options.bits == 8 || options.bits == 16 else { throw .invalidArguments("\(job.jobClass): bits must be 8 or 16") }
        switch try job.optionalString("channels") ?? "mono" {
        case "mono": options.split = false
        case "split": options.split = true
        case let other: throw .invalidArguments("\(job.jobClass): channels must be mono or split, got \(other)")
        }
        var image: WaveformImageStyle?
        switch job.arguments["image"] {
        case nil, .null?: image = nil
        case .object(let object)?:
            for key in object.keys where !["width", "height", "color", "background", "format"].contains(key) {
                throw .invalidArguments("\(job.jobClass): unknown image field \(key.debugDescription); allowed: background, color, format, height, width")
            }
            var style = WaveformImageStyle()
            if let v = object["width"] {
                guard let w = v.intValue, (1...8192).contains(w) else { throw .invalidArguments("\(job.jobClass): image.width must be 1...8192") }
                style.width = w
            }
            if let v = object["height"] {
                guard let h = v.intValue, (1...2048).contains(h) else { throw .invalidArguments("\(job.jobClass): image.height must be 1...2048") }
                style.height = h
            }
            for (field, assign) in [("color", { (c: [UInt8]) in style.color = c }), ("background", { (c: [UInt8]) in style.background = c })] {
                guard let v = object[field] else { continue }
                guard let text = v.stringValue, let c = WaveformImageStyle.color(text) else {
                    throw .invalidArguments("\(job.jobClass): image.\(field) must be #rrggbb or #rrggbbaa")
                }
                assign(c)
            }
            if let v = object["format"] {
                guard let f = v.stringValue, f == "png" || f == "webp" else { throw .invalidArguments("\(job.jobClass): image.format must be png or webp") }
                style.format = f
            }
            image = style
        case let other?: throw .invalidArguments("\(job.jobClass): image must be an object, got \(other.typeName)")
        }
        var output = try job.optionalString("output") ?? "\(TranscodeHandler.stem(of: source)).waveform"
        if output.hasSuffix(".dat") { output.removeLast(4) }
        if output.isEmpty { throw .invalidArguments("\(job.jobClass): output is empty") }
        // Every output key within the key limits before anything is written.
        for ext in ["dat", "json"] + (image.map { [$0.format] } ?? []) {
            do { try MediaRoot.validate(output + "." + ext, field: "output") } catch { throw error.with(message: "\(job.jobClass): \(error.message)") }
        }
        return Spec(output: output, options: options, image: image)
    }

    /// Computes the waveform of `source` in a helper and moves its outputs into place; the job's result.
    func generate(_ job: JobContext, root: MediaRoot, source: String, spec: Spec) async throws -> JSONObject {
        let datKey = spec.output + ".dat", jsonKey = spec.output + ".json"
        let imageKey = spec.image.map { spec.output + "." + $0.format }
        let finals: [String]
        let sourcePath: String
        do {
            sourcePath = try root.source(source)
            finals = try ([datKey, jsonKey] + (imageKey.map { [$0] } ?? [])).map { key throws(JobFailure) in try root.destination(key, field: "output") }
        } catch {
            throw error.about(job)
        }
        if finals.contains(sourcePath) {
            throw JobFailure.invalidArguments("\(job.jobClass) jid=\(job.jid): output must differ from source \(source)")
        }
        let temporaries = finals.map(AtomicOutput.temporary(for:))
        defer { for t in temporaries { unlink(t) } }
        let request = WaveformHelperRequest(
            mediaRoot: root.path, source: source, dat: root.key(of: temporaries[0]), json: root.key(of: temporaries[1]),
            image: temporaries.count > 2 ? root.key(of: temporaries[2]) : nil, imageStyle: spec.image, options: spec.options,
            policy: configuration.audioPolicy)
        var result: JSONObject
        do {
            result = try await pool.run(AudioOperations.waveformOperation, request, deadline: job.deadline).objectValue ?? [:]
        } catch let failure as JobFailure {
            throw failure.about(job, source: source)
        }
        do {
            for (temporary, final) in zip(temporaries, finals) { try AtomicOutput.commit(temporary, to: final) }
        } catch {
            throw JobFailure.transient(.audioOutputFailed, "\(job.jobClass) jid=\(job.jid) source \(source): cannot move output into place: \(error)")
        }
        result["source"] = JSONValue(source)
        result["dat"] = JSONValue(datKey)
        result["json"] = JSONValue(jsonKey)
        if let imageKey { result["image"] = JSONValue(imageKey) }
        return result
    }
}
