public import AV
public import ConveyorCore
public import Storage
public import Sandbox
import Foundation

/// `audio.transcode`: a web rendition (AAC-LC in a faststart MP4 by default, MP3 or Opus), gain untouched, no
/// container metadata, at most `CONVEYOR_AUDIO_MAX_DURATION` long.
///
/// Arguments: `source`, `format` (`m4a` default, `mp3`, `opus`), `output` (default `<source stem>.web.<format>`).
public struct AudioTranscodeHandler: JobHandler {
    public static let jobClass = "audio.transcode"
    public let store: any MediaStore
    public let configuration: VideoConfiguration
    public let pool: HelperPool

    public init(store: any MediaStore, configuration: VideoConfiguration, pool: HelperPool) {
        self.store = store
        self.configuration = configuration
        self.pool = pool
    }

    public func perform(_ job: JobContext) async throws -> JSONValue {
        try VideoArguments.check(job, allowed: ["source", "output", "format", "bucket"])
        let source = try job.string("source")
        let store = try store.forJob(job)
        let formatName = try job.optionalString("format") ?? "m4a"
        guard let format = AudioFormat(rawValue: formatName) else {
            throw JobFailure.invalidArguments("\(job.jobClass): format must be m4a, mp3 or opus, got \(formatName)")
        }
        let output = try job.optionalString("output") ?? Self.defaultOutput(source, format: format)
        let input = MediaInput(source, maxBytes: configuration.maxSourceBytes)
        let result = try await store.staged([input], jid: job.jid, deadline: job.deadline) { root in
            try await transcode(job, root: root, source: source, output: output, format: format, cover: nil)
        }
        return store.locating(.object(result))
    }

    static func defaultOutput(_ source: String, format: AudioFormat) -> String {
        "\(TranscodeHandler.stem(of: source)).web.\(format.fileExtension)"
    }

    /// Transcodes in a helper and moves the rendition (and the cover picture, when `cover` is a key stem: it becomes
    /// `<cover>.jpg` or `<cover>.png`) into place; the job's result, with `cover` set when a picture was found.
    func transcode(
        _ job: JobContext, root: MediaRoot, source: String, output: String, format: AudioFormat, cover: String?
    ) async throws -> JSONObject {
        let sourcePath: String, outputPath: String, coverBase: String?
        do {
            sourcePath = try root.source(source)
            outputPath = try root.destination(output, field: "output")
            coverBase = try cover.map { key throws(JobFailure) in try root.destination(key, field: "cover") }
        } catch {
            throw error.about(job)
        }
        if outputPath == sourcePath {
            throw JobFailure.invalidArguments("\(job.jobClass) jid=\(job.jid): output must differ from source \(source)")
        }
        let temporary = AtomicOutput.temporary(for: outputPath)
        let temporaryCover = coverBase.map(AtomicOutput.temporary(for:))
        defer {
            unlink(temporary)
            if let temporaryCover { unlink(temporaryCover) }
        }
        let request = AudioTranscodeHelperRequest(
            mediaRoot: root.path, source: source, output: root.key(of: temporary), format: format,
            cover: temporaryCover.map(root.key(of:)), policy: configuration.audioPolicy)
        job.logger.info("audio.transcode start", metadata: ["source": "\(source)", "format": "\(format.rawValue)"])
        var result: JSONObject
        do {
            result = try await pool.run(AudioOperations.transcodeOperation, request, deadline: job.deadline).objectValue ?? [:]
        } catch let failure as JobFailure {
            throw failure.about(job, source: source)
        }
        do {
            try AtomicOutput.commit(temporary, to: outputPath)
            if let cover, let coverBase, let temporaryCover, let ext = result["cover_format"]?.stringValue,
                FileManager.default.fileExists(atPath: temporaryCover)
            {
                let suffix = ext == "png" ? ".png" : ".jpg"
                try AtomicOutput.commit(temporaryCover, to: coverBase + suffix)
                result["cover"] = JSONValue(cover + suffix)
            }
        } catch {
            throw JobFailure.transient(.audioOutputFailed, "\(job.jobClass) jid=\(job.jid) source \(source): cannot move output into place: \(error)")
        }
        result["source"] = JSONValue(source)
        result["output"] = JSONValue(output)
        if let bytes = (try? FileManager.default.attributesOfItem(atPath: outputPath)[.size] as? Int) ?? nil {
            result["output_bytes"] = JSONValue(bytes)
        }
        job.logger.info("audio.transcode done", metadata: ["output": "\(output)"])
        return result
    }
}
