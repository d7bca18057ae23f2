public import ConveyorCore
public import Storage
import Foundation
public import Sandbox
public import Images

/// The image half of `media.ingest` (metadata stripping and the default thumbnails), supplied by the images
/// family when the executable wires it: takes the job and the upload's media key, returns a result object
/// with at least `width`, `height` and `variants`.
public typealias ImageIngest = @Sendable (_ job: JobContext, _ source: String) async throws -> JSONObject

/// Where `media.ingest` records one row per upload (kind, dimensions, duration, variants, probe, status) for the
/// API to read by upload id; the executable wires a PostgreSQL table here.
public protocol IngestRecorder: Sendable {
    func record(uploadID: String, jid: String, row: JSONObject) async throws
    /// Records a `failed` row for an upload whose job died without the handler writing one (its transient
    /// failures ran out of retries, or it failed before the upload was read), unless the upload already has a row.
    func recordIfAbsent(uploadID: String, jid: String, row: JSONObject) async throws
}

/// `media.ingest`: the one job the API enqueues after any upload. Sniffs the real type from the bytes and
/// runs the matching steps: video → probe, transcode, poster; image → the images family's pipeline.
///
/// Arguments: `upload_id`, `source`.
public struct IngestHandler: JobHandler {
    public static let jobClass = "media.ingest"
    /// Where uploads are and variants go; the probe, transcode and image steps share its staged root.
    public let store: any MediaStore
    public let probe: ProbeHandler
    public let transcode: TranscodeHandler
    public let images: ImageIngest?
    public let recorder: (any IngestRecorder)?

    public init(
        root: MediaRoot, probe: ProbeHandler, transcode: TranscodeHandler, images: ImageIngest?,
        recorder: (any IngestRecorder)?
    ) {
        self.init(store: LocalMediaStore(root: root), probe: probe, transcode: transcode, images: images, recorder: recorder)
    }

    public init(
        store: any MediaStore, probe: ProbeHandler, transcode: TranscodeHandler, images: ImageIngest?,
        recorder: (any IngestRecorder)?
    ) {
        self.store = store
        self.probe = probe
        self.transcode = transcode
        self.images = images
        self.recorder = recorder
    }

    /// Why `id` cannot be an upload id (it keys `conveyor.media_uploads`: PostgreSQL text holds no NUL), or nil.
    public static func uploadIDProblem(_ id: String) -> String? {
        guard !id.isEmpty, id.utf8.count <= 200 else { return "must be 1 to 200 bytes" }
        guard !id.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            return "must not contain NUL or other control characters"
        }
        return nil
    }

    public func perform(_ job: JobContext) async throws -> JSONValue {
        try VideoArguments.check(job, allowed: ["upload_id", "source", "bucket"])
        // The job's bucket, when it names one; the steps below join its staged root, so they read and write there too.
        let store = try store.forJob(job)
        let uploadID = try job.string("upload_id")
        if let problem = Self.uploadIDProblem(uploadID) {
            throw JobFailure.invalidArguments("\(job.jobClass): upload_id \(problem)")
        }
        let source = try job.string("source")
        do { try MediaRoot.validate(source, field: "source") } catch { throw error.with(message: "\(job.jobClass): \(error.message)") }
        // The video limit, the larger one: an image step checks its own limit again on the staged file.
        let input = MediaInput(source, maxBytes: probe.configuration.maxSourceBytes)
        let row = try await store.staged([input], jid: job.jid, deadline: job.deadline) { root in
            try await ingest(job, uploadID: uploadID, source: source, root: root, location: store.location)
        }
        // Ready only once the store has published the variants: the API may fetch them the moment it reads the row.
        try await recorder?.record(uploadID: uploadID, jid: job.jid, row: row)
        return .object(row)
    }

    /// The upload's row; a permanent failure is recorded as a `failed` row here, before it is thrown.
    private func ingest(_ job: JobContext, uploadID: String, source: String, root: MediaRoot, location: String) async throws -> JSONObject {
        let path: String
        do { path = try root.source(source) } catch { throw error.about(job) }
        let kind = try Self.sniff(path, job: job, source: source)

        var row = JSONObject()
        row["upload_id"] = JSONValue(uploadID)
        row["source"] = JSONValue(source)
        row["detected_type"] = JSONValue(kind.rawValue)
        row["store"] = JSONValue(location)
        do {
            switch kind.family {
            case "video":
                try await ingestVideo(job, source: source, root: root, into: &row)
            case "audio":
                try await ingestAudio(job, source: source, root: root, into: &row)
            case "playlist":
                throw JobFailure.permanent(
                    .mediaPlaylistRefused,
                    "\(job.jobClass) jid=\(job.jid) source \(source): the upload is an M3U/HLS playlist, not media; playlists are not accepted")
            case "image":
                guard let images else {
                    throw JobFailure.transient(
                        .ingestNotConfigured,
                        "\(job.jobClass) jid=\(job.jid) source \(source): image uploads need the images pipeline, which this worker has not wired")
                }
                row["kind"] = "image"
                job.progressStep("images", from: 0, to: 100).progress(0)
                for (key, value) in try await images(job, source) { row[key] = value }
            default:
                throw JobFailure.permanent(
                    .unsupportedMedia, "\(job.jobClass) jid=\(job.jid) source \(source): not a JPEG, PNG, GIF, WebP, HEIF/AVIF, MP4/MOV/M4A, Matroska/WebM, MP3, AAC, Ogg, FLAC or WAV file")
            }
            row["status"] = "ready"
        } catch let failure as JobFailure {
            if failure.isPermanent {
                // The API learns that this upload will never be ready; transient failures are retried first.
                row["status"] = "failed"
                row["error_class"] = JSONValue(failure.errorClass)
                row["error_message"] = JSONValue(StoredErrorMessage.clean(failure.message, jid: job.jid))
                try await recorder?.record(uploadID: uploadID, jid: job.jid, row: row)
            }
            throw failure
        }
        return row
    }

    func ingestVideo(_ job: JobContext, source: String, root: MediaRoot, into row: inout JSONObject) async throws {
        var probeJob = JobContext(
            jid: job.jid, jobClass: job.jobClass, queue: job.queue, arguments: JSONObject([("source", .string(source))]),
            attempt: job.attempt, deadline: job.deadline, payload: job.payload, logger: job.logger, progressReporter: job.progressReporter)
        probeJob.progressSpan = job.progressSpan
        // The job's bar: probe the first 5 %, the transcode (which reports frames as it goes) the rest.
        probeJob.progressStep("probe", from: 0, to: 5).progress(0)
        let probeResult = try await probe.perform(probeJob)
        let streams = probeResult["streams"]?.arrayValue ?? []
        // A cover picture is a video stream too, but an attached one: such a file is audio.
        guard let video = streams.first(where: { $0["codec_type"] == "video" && $0["disposition"]?["attached_pic"] != 1 }) else {
            try await ingestAudio(job, source: source, root: root, into: &row)
            return
        }
        let result = try await transcode.perform(probeJob.progressStep("transcode", from: 5, to: 100))
        row["kind"] = "video"
        row["width"] = result["width"] ?? .null
        row["height"] = result["height"] ?? .null
        row["duration"] = result["duration"] ?? .null
        row["source_width"] = video["width"] ?? .null
        row["source_height"] = video["height"] ?? .null
        var variant = JSONObject()
        variant["profile"] = result["profile"] ?? .null
        variant["key"] = result["output"] ?? .null
        variant["bytes"] = result["output_bytes"] ?? .null
        row["variants"] = .array([.object(variant)])
        row["poster"] = result["poster"] ?? .null
        row["probe"] = probeResult
    }

    static func sniff(_ path: String, job: JobContext, source: String) throws(JobFailure) -> MediaKind {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw .transient(.mediaUnreadable, "\(job.jobClass) jid=\(job.jid) source \(source): cannot open the upload")
        }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 64)).map { [UInt8]($0) } ?? []
        if head.isEmpty {
            throw .permanent(.unsupportedMedia, "\(job.jobClass) jid=\(job.jid) source \(source): the upload is empty")
        }
        return MediaKind(sniffing: head)
    }
}
