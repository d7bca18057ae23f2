public import ConveyorCore
public import Images
public import Sandbox

extension IngestHandler {
    /// The image half of `media.ingest` through the images family: `image.strip_metadata` (a clean copy with
    /// orientation applied and metadata removed) and `image.thumbnail` with its default variants.
    public static func imagePipeline(configuration: ImagesConfiguration, pool: HelperPool) -> ImageIngest {
        let strip = ImageJobHandler(kind: .stripMetadata, configuration: configuration, pool: pool)
        let thumbnail = ImageJobHandler(kind: .thumbnail, configuration: configuration, pool: pool)
        return { job, source in
            let step = JobContext(
                jid: job.jid, jobClass: job.jobClass, queue: job.queue, arguments: JSONObject([("source", .string(source))]),
                attempt: job.attempt, deadline: job.deadline, payload: job.payload, logger: job.logger)
            let clean = try await strip.perform(step)
            let thumbnails = try await thumbnail.perform(step)
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
