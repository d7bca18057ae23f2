public import ConveyorCore
public import Images
public import Sandbox

extension IngestHandler {
    /// The image half of `media.ingest` through the images family: `image.thumbnail` with its default variants, then
    /// `image.strip_metadata` (a clean copy with orientation applied and metadata removed). Thumbnails first: they
    /// decode every scan of the source, so a lossless clean copy, which keeps those scans byte for byte, needs no
    /// second decode to be checked.
    public static func imagePipeline(configuration: ImagesConfiguration, pool: HelperPool) -> ImageIngest {
        let strip = ImageJobHandler(kind: .stripMetadata, configuration: configuration, pool: pool, verifiesLosslessCopies: false)
        let thumbnail = ImageJobHandler(kind: .thumbnail, configuration: configuration, pool: pool)
        return { job, source in
            let step = JobContext(
                jid: job.jid, jobClass: job.jobClass, queue: job.queue, arguments: JSONObject([("source", .string(source))]),
                attempt: job.attempt, deadline: job.deadline, payload: job.payload, logger: job.logger)
            let thumbnails = try await thumbnail.perform(step)
            let clean = try await strip.perform(step)
            var row = JSONObject()
            row["width"] = clean["width"] ?? .null
            row["height"] = clean["height"] ?? .null
            row["clean"] = clean["key"] ?? .null
            // Keys only: absolute paths stay inside the worker.
            row["variants"] = .array((thumbnails["variants"]?.arrayValue ?? []).map { variant in
                guard case .object(var object) = variant else { return variant }
                object["path"] = nil
                return .object(object)
            })
            row["source_format"] = thumbnails["source_format"] ?? .null
            return row
        }
    }
}
