public import ConveyorCore
public import Postgres

/// One row of `conveyor.media_uploads`, as `media.ingest` wrote it.
public struct MediaUploadRecord: Sendable {
    public var uploadID: String
    public var status: String
    public var kind: String?
    public var detectedType: String
    public var source: String
    public var width: Int?
    public var height: Int?
    public var duration: Double?
    /// `[{"key": ..., "width": ..., "format": ...}]` (images) or `[{"profile", "key", "bytes"}]` (video).
    public var variants: [JSONValue]
    /// The poster's key (video), when there is one.
    public var poster: JSONValue?
    public var probe: JSONValue?
    public var errorClass: String?
    public var errorMessage: String?
    public var jid: String
    public var createdAt: Double?
    public var updatedAt: Double?
    /// Where the keys live (`s3://bucket/prefix`, `file:///srv/media`), as the job's result said.
    public var store: String?

    /// Every media key the row names (variants and poster): the only keys a viewer of this upload may fetch.
    public var mediaKeys: [String] {
        var keys = variants.compactMap { $0["key"]?.stringValue }
        if let poster {
            if let key = poster.stringValue { keys.append(key) } else if let key = poster["key"]?.stringValue { keys.append(key) }
        }
        return keys
    }
}

/// Reads `conveyor.media_uploads` (what an API does to learn an upload's status).
public enum MediaUploadQueries {
    /// The upload's row; nil when there is none, or when `uploadID` could not be one (`IngestHandler.uploadIDProblem`:
    /// a NUL would otherwise reach PostgreSQL as an error).
    public static func byID(_ uploadID: String, on connection: PostgresConnection) throws -> MediaUploadRecord? {
        guard IngestHandler.uploadIDProblem(uploadID) == nil else { return nil }
        let rows = try connection.query(
            """
            SELECT upload_id, status, kind, detected_type, source, width, height, duration, variants::text, poster::text,
                   probe::text, error_class, error_message, jid, extract(epoch FROM created_at)::float8,
                   extract(epoch FROM updated_at)::float8, details->>'store'
              FROM conveyor.media_uploads WHERE upload_id = $1
            """, [uploadID])
        guard let r = rows.rows.first else { return nil }
        func json(_ i: Int) -> JSONValue? { r[i].flatMap { try? JSONValue(parsing: Array($0.utf8)) } }
        return MediaUploadRecord(
            uploadID: r[0] ?? uploadID, status: r[1] ?? "", kind: r[2], detectedType: r[3] ?? "", source: r[4] ?? "",
            width: r[5].flatMap { Int($0) }, height: r[6].flatMap { Int($0) }, duration: r[7].flatMap { Double($0) },
            variants: json(8)?.arrayValue ?? [], poster: json(9).flatMap { $0.isNull ? nil : $0 }, probe: json(10),
            errorClass: r[11], errorMessage: r[12], jid: r[13] ?? "", createdAt: r[14].flatMap { Double($0) },
            updatedAt: r[15].flatMap { Double($0) }, store: r[16])
    }
}
