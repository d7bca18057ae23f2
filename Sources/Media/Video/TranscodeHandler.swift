public import AV
public import ConveyorCore
public import Storage
public import Sandbox
public import Images
import Foundation
import Logging
import Synchronization

/// `video.transcode`: a web MP4 (H.264 High yuv420p + AAC stereo, faststart, no metadata) and a JPEG poster.
///
/// Arguments: `source`, optional `profile` (`1080p` default, `720p`), `output` and `poster` keys (defaults:
/// `<source>.<profile>.mp4` and `<source>.poster.jpg`), `poster: false` to skip the poster.
public struct TranscodeHandler: JobHandler {
    /// Where the sources are and the outputs go (the local media root, or a bucket staged per job).
    public let store: any MediaStore
    public let configuration: VideoConfiguration
    /// Called about once a second with the job id and progress (for metrics).
    public let onProgress: (@Sendable (_ jid: String, _ progress: TranscodeProgress) -> Void)?
    /// Where libav* runs: helper processes, or this process when the pool is configured `inProcess`.
    public let pool: HelperPool
    /// `CONVEYOR_VIDEO_TRANSCODE_CONCURRENCY` slots, shared by every copy of this handler (`media.ingest` holds one).
    let slots: TranscodeSlots

    public init(
        store: any MediaStore, configuration: VideoConfiguration, pool: HelperPool,
        onProgress: (@Sendable (_ jid: String, _ progress: TranscodeProgress) -> Void)? = nil
    ) {
        self.store = store
        self.configuration = configuration
        self.pool = pool
        self.onProgress = onProgress
        slots = TranscodeSlots(configuration.transcodeConcurrency)
    }

    public init(
        root: MediaRoot, configuration: VideoConfiguration, pool: HelperPool,
        onProgress: (@Sendable (_ jid: String, _ progress: TranscodeProgress) -> Void)? = nil
    ) {
        self.init(store: LocalMediaStore(root: root), configuration: configuration, pool: pool, onProgress: onProgress)
    }

    public func perform(_ job: JobContext) async throws -> JSONValue {
        try VideoArguments.check(job, allowed: ["source", "profile", "output", "poster", "bucket"])
        let sourceKey = try job.string("source")
        let store = try store.forJob(job)
        let source = sourceKey
        let profileName = try job.optionalString("profile") ?? "1080p"
        guard let profile = configuration.profile(named: profileName) else {
            throw JobFailure.invalidArguments("\(job.jobClass): profile must be 1080p or 720p, got \(profileName)")
        }
        let wantsPoster: Bool
        let posterKey: String?
        switch job.arguments["poster"] {
        case nil, .null?: wantsPoster = true; posterKey = nil
        case .bool(let b)?: wantsPoster = b; posterKey = nil
        case .string(let key)?: wantsPoster = true; posterKey = key
        case let other?: throw JobFailure.invalidArguments("poster must be a key or a boolean, got \(other.typeName)")
        }
        let base = Self.stem(of: source)
        let outputKey = try job.optionalString("output") ?? "\(base).\(profile.name).mp4"
        let finalPosterKey = wantsPoster ? (posterKey ?? "\(base).poster.jpg") : nil
        // Every key checked before the source is fetched or a folder made (a long poster key must not leave the
        // output's folder behind).
        do {
            try MediaRoot.validate(sourceKey, field: "source")
            try MediaRoot.validate(outputKey, field: "output")
            if let finalPosterKey { try MediaRoot.validate(finalPosterKey, field: "poster") }
        } catch {
            throw error.about(job)
        }
        let input = MediaInput(sourceKey, maxBytes: configuration.maxSourceBytes)
        let result = try await slots.withSlot {
            try await store.staged([input], jid: job.jid, deadline: job.deadline) { root in
                try await transcode(job, root: root, source: sourceKey, profile: profile, outputKey: outputKey, finalPosterKey: finalPosterKey)
            }
        }
        return store.locating(result)
    }

    private func transcode(
        _ job: JobContext, root: MediaRoot, source: String, profile: TranscodeProfile, outputKey: String, finalPosterKey: String?
    ) async throws -> JSONValue {
        let inputPath: String, outputPath: String, posterPath: String?
        do {
            inputPath = try root.source(source)
            outputPath = try root.destination(outputKey, field: "output")
            posterPath = try finalPosterKey.map { key throws(JobFailure) in try root.destination(key, field: "poster") }
        } catch {
            throw error.about(job)
        }
        if outputPath == inputPath || posterPath == inputPath {
            throw JobFailure.invalidArguments("\(job.jobClass) jid=\(job.jid): output and poster must differ from source \(source)")
        }

        // The helper writes temporary files next to the outputs, all inside the media root, and gets their keys.
        let temporaryOutput = AtomicOutput.temporary(for: outputPath)
        let temporaryPoster = posterPath.map { AtomicOutput.temporary(for: $0) }
        let progressFile = temporaryOutput + ".progress"
        defer {
            unlink(temporaryOutput)
            unlink(progressFile)
            if let temporaryPoster { unlink(temporaryPoster) }
        }
        let request = TranscodeHelperRequest(
            mediaRoot: root.path, source: source, output: root.key(of: temporaryOutput), poster: temporaryPoster.map(root.key(of:)),
            progress: root.key(of: progressFile), profile: profile, policy: configuration.policy)

        let logger = job.logger
        let jid = job.jid
        let onProgress = self.onProgress
        let progress: @Sendable (TranscodeProgress) -> Void = { p in
            var line = "video.transcode progress frames=\(p.frames) time=\(String(format: "%.1f", p.seconds))s"
            // The helper's numbers: bounded before they become an Int.
            if let fraction = p.fraction, fraction.isFinite { line += " \(Int(min(1, max(0, fraction)) * 100))%" }
            logger.info("\(line)")
            onProgress?(jid, p)
            // The job's progress hash: percent when the duration is known, frames and media seconds always.
            var detail = JSONObject([("frames", JSONValue(p.frames))])
            if p.seconds.isFinite { detail["seconds"] = JSONValue((p.seconds * 10).rounded() / 10) }
            let fraction = p.fraction.flatMap { $0.isFinite ? min(1, max(0, $0)) : nil }
            job.progress((fraction ?? 0) * 100, detail: detail)
        }
        logger.info("video.transcode start", metadata: ["source": "\(source)", "profile": "\(profile.name)"])
        // The helper rewrites the progress file about once a second (and once at the end); report each new state.
        let lastReported = Mutex(-1)
        let reportNew: @Sendable () -> Void = {
            guard let p = VideoOperations.readProgress(progressFile) else { return }
            let isNew = lastReported.withLock { last in
                defer { last = max(last, p.frames) }
                return p.frames > last
            }
            if isNew { progress(p) }
        }
        let watcher = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                reportNew()
            }
        }
        var result: JSONValue
        do {
            defer { watcher.cancel() }
            result = try await pool.run(VideoOperations.transcodeOperation, request, deadline: job.deadline)
        } catch let failure as JobFailure {
            throw failure.about(job, source: source)
        }
        reportNew()
        do {
            try AtomicOutput.commit(temporaryOutput, to: outputPath)
            if let temporaryPoster, let posterPath, FileManager.default.fileExists(atPath: temporaryPoster) {
                try AtomicOutput.commit(temporaryPoster, to: posterPath)
            }
        } catch {
            throw JobFailure.transient(.videoOutputFailed, "\(job.jobClass) jid=\(job.jid) source \(source): cannot move output into place: \(error)")
        }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: outputPath)[.size] as? Int) ?? nil
        if case .object(var object) = result {
            object["source"] = JSONValue(source)
            object["profile"] = JSONValue(profile.name)
            object["output"] = JSONValue(outputKey)
            if let bytes { object["output_bytes"] = JSONValue(bytes) }
            if let finalPosterKey, object["poster_bytes"] != nil { object["poster"] = JSONValue(finalPosterKey) }
            result = .object(object)
        }
        logger.info("video.transcode done", metadata: ["output": "\(outputKey)"])
        return result
    }

    /// `uploads/a/clip.mov` → `uploads/a/clip`.
    static func stem(of key: String) -> String {
        let name = (key as NSString).lastPathComponent
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return key }
        let directory = (key as NSString).deletingLastPathComponent
        let stem = String(name[..<dot])
        return directory.isEmpty ? stem : directory + "/" + stem
    }
}
