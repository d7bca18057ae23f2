public import Postgres

/// The `media.ingest` table: one row per upload, which the API reads by upload id. `details` holds the whole
/// result object (for images also `clean`, the metadata-stripped original, and `source_format`).
public enum MediaMigrations {
    public static let component = "media"

    public static let all: [Migration] = [
        Migration(
            component: component, version: 1, name: "media_uploads",
            sql: """
                CREATE TABLE IF NOT EXISTS conveyor.media_uploads (
                    upload_id     text        PRIMARY KEY,
                    status        text        NOT NULL CHECK (status IN ('ready', 'failed')),
                    kind          text,
                    detected_type text        NOT NULL,
                    source        text        NOT NULL,
                    width         integer,
                    height        integer,
                    duration      double precision,
                    variants      jsonb       NOT NULL DEFAULT '[]',
                    poster        jsonb,
                    probe         jsonb,
                    error_class   text,
                    error_message text,
                    details       jsonb       NOT NULL DEFAULT '{}',
                    jid           text        NOT NULL,
                    created_at    timestamptz NOT NULL DEFAULT now(),
                    updated_at    timestamptz NOT NULL DEFAULT now()
                );
                CREATE INDEX IF NOT EXISTS media_uploads_updated_at ON conveyor.media_uploads (updated_at);
                """),
    ]
}
