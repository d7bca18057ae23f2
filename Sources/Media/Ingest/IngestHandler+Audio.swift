import AV
import ConveyorCore
import Storage

extension IngestHandler {
    /// The waveform every audio upload gets: 8-bit (what peaks.js recommends), mono, 100 pixels per second.
    static let audioWaveform = AudioWaveformHandler.Spec(
        output: "", options: WaveformOptions(scale: .pixelsPerSecond(100), bits: 8, split: false), image: nil)

    /// The audio half of `media.ingest`: waveform (`.dat` + JSON, which also probes the file under the audio
    /// policy), an M4A rendition, and the cover picture, if any, through the image pipeline as the poster.
    func ingestAudio(_ job: JobContext, source: String, root: MediaRoot, into row: inout JSONObject) async throws {
        let stem = TranscodeHandler.stem(of: source)
        let waveformHandler = AudioWaveformHandler(store: store, configuration: probe.configuration, pool: probe.pool)
        let transcodeHandler = AudioTranscodeHandler(store: store, configuration: probe.configuration, pool: probe.pool)
        var spec = Self.audioWaveform
        spec.output = stem + ".waveform"
        job.progressStep("waveform", from: 0, to: 40).progress(0)
        let waveform = try await waveformHandler.generate(job, root: root, source: source, spec: spec)
        let transcodeStep = job.progressStep("transcode", from: 40, to: 90)
        transcodeStep.progress(0)
        let rendition = try await transcodeHandler.transcode(
            transcodeStep, root: root, source: source, output: AudioTranscodeHandler.defaultOutput(source, format: .m4a), format: .m4a,
            cover: stem + ".cover")
        row["kind"] = "audio"
        row["duration"] = waveform["duration"] ?? .null
        var variant = JSONObject()
        variant["profile"] = "m4a"
        variant["key"] = rendition["output"] ?? .null
        variant["bytes"] = rendition["output_bytes"] ?? .null
        variant["bit_rate"] = rendition["bit_rate"] ?? .null
        row["variants"] = .array([.object(variant)])
        var peaks = JSONObject()
        for key in ["dat", "json", "samples_per_pixel", "bits", "channels", "length", "sample_rate"] { peaks[key] = waveform[key] ?? .null }
        row["waveform"] = .object(peaks)
        row["poster"] = .null
        if let cover = rendition["cover"]?.stringValue {
            row["cover"] = JSONValue(cover)
            guard let images else {
                throw JobFailure.transient(
                    .ingestNotConfigured,
                    "\(job.jobClass) jid=\(job.jid) source \(source): the cover picture needs the images pipeline, which this worker has not wired")
            }
            do {
                job.progressStep("cover", from: 90, to: 100).progress(0)
                let picture = try await images(job, cover)
                row["poster"] = picture["clean"] ?? .null
                row["poster_variants"] = picture["variants"] ?? .null
            } catch let failure as JobFailure where failure.isPermanent {
                // A broken cover does not make the audio unusable: the upload is ready without a poster.
                row["cover_error"] = JSONValue("\(failure.errorClass): \(failure.message)")
            }
        }
        row["probe"] = waveform["probe"] ?? .null
    }
}
