public import ConveyorCore
import Foundation
public import Postgres

/// Writes `media.ingest` rows to `conveyor.media_uploads` (created on first use if `conveyor migrate` has not
/// run). A later outcome replaces an earlier one, except that a failed attempt never overwrites a ready upload:
/// a duplicate delivery of the job that fails (the source was since deleted, say) leaves the API's answer intact.
public final class PostgresIngestRecorder: IngestRecorder, Sendable {
    private let database: PostgresThread
    private let schema = SchemaOnce(MediaMigrations.all)

    /// A later outcome replaces an earlier one, except that a failure never replaces a ready upload.
    private static let replace = """
        UPDATE
           SET status = EXCLUDED.status, kind = EXCLUDED.kind, detected_type = EXCLUDED.detected_type,
               source = EXCLUDED.source, width = EXCLUDED.width, height = EXCLUDED.height,
               duration = EXCLUDED.duration, variants = EXCLUDED.variants, poster = EXCLUDED.poster,
               probe = EXCLUDED.probe, error_class = EXCLUDED.error_class,
               error_message = EXCLUDED.error_message, jid = EXCLUDED.jid, details = EXCLUDED.details,
               updated_at = now()
         WHERE NOT (u.status = 'ready' AND EXCLUDED.status = 'failed')
        """

    public init(database: PostgresThread) {
        self.database = database
    }

    public convenience init(url: String) {
        self.init(database: PostgresThread(url: url, name: "conveyor-media-uploads"))
    }

    public func record(uploadID: String, jid: String, row: JSONObject) async throws {
        try await write(uploadID: uploadID, jid: jid, row: row, onlyIfAbsent: false)
    }

    public func recordIfAbsent(uploadID: String, jid: String, row: JSONObject) async throws {
        try await write(uploadID: uploadID, jid: jid, row: row, onlyIfAbsent: true)
    }

    private func write(uploadID: String, jid: String, row: JSONObject, onlyIfAbsent: Bool) async throws {
        try await schema.ensure(on: database)
        func json(_ key: String) -> String? {
            guard let value = row[key], !value.isNull else { return nil }
            return value.text
        }
        let parameters: [String?] = [
            uploadID, row["status"]?.stringValue ?? "failed", row["kind"]?.stringValue,
            row["detected_type"]?.stringValue ?? "unknown", row["source"]?.stringValue ?? "",
            row["width"]?.intValue.map(String.init), row["height"]?.intValue.map(String.init),
            row["duration"]?.doubleValue.map(\.postgresText),
            json("variants") ?? "[]", json("poster"), json("probe"),
            row["error_class"]?.stringValue, row["error_message"]?.stringValue.map { String($0.prefix(2000)) }, jid,
            JSONValue.object(row).text,
        ]
        try await database.run { connection in
            _ = try connection.query(
                """
                INSERT INTO conveyor.media_uploads AS u
                    (upload_id, status, kind, detected_type, source, width, height, duration, variants, poster, probe,
                     error_class, error_message, jid, details)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb, $11::jsonb, $12, $13, $14, $15::jsonb)
                ON CONFLICT (upload_id) DO \(onlyIfAbsent ? "NOTHING" : Self.replace)
                """, parameters.map { $0 as (any PostgresEncodable)? })
        }
    }
}
