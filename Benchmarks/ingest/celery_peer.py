"""The peer of `media.ingest` a Python team would write: one Celery task per upload, pyvips for the pixels, boto3
for the bucket, psycopg2 for the row. It does what Conveyor's ingest of a JPEG does: a clean copy (orientation
applied, EXIF/XMP/IPTC removed, the ICC profile kept, JPEG q90) and the three default thumbnails (320x320 cover,
800 and 1600 inside, WebP q80, sRGB, no metadata), each uploaded with its Content-Type and Cache-Control, then
one row per upload.

    celery -A celery_peer worker --pool prefork --concurrency 2 -Q media

Environment: REDIS_URL (broker), DATABASE_URL, PEER_BUCKET, AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION.
"""
import json
import os

import boto3
import psycopg2
import pyvips
from botocore.config import Config
from celery import Celery

app = Celery("ingest_peer", broker=os.environ["REDIS_URL"])
# The usual settings for long tasks: acknowledge after the work (a killed process's task runs again) and take
# one task at a time per process, so a slow task does not hold others back.
app.conf.update(
    task_acks_late=True, worker_prefetch_multiplier=1, task_ignore_result=True, task_default_queue="media",
    broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)

BUCKET = os.environ.get("PEER_BUCKET", "")
TABLE = "peer_media_uploads"
CACHE_CONTROL = "public, max-age=86400"
# PEER_OPTIMIZE_CODING=1: optimal Huffman tables for the clean copy, as Conveyor writes its JPEGs (about 5 % smaller,
# a second pass over the coefficients); libvips' default is off.
JPEG_OPTIONS = {"optimize_coding": True} if os.environ.get("PEER_OPTIMIZE_CODING") == "1" else {}
VARIANTS = [("small", 320, 320, "cover"), ("medium", 800, 800, "inside"), ("large", 1600, 1600, "inside")]

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    upload_id  text        PRIMARY KEY,
    status     text        NOT NULL,
    kind       text        NOT NULL,
    source     text        NOT NULL,
    width      integer,
    height     integer,
    clean      text,
    variants   jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
)"""

_clients = None


def clients():
    """One S3 client and one database connection per worker process, made after the fork."""
    global _clients
    if _clients is None:
        s3 = boto3.client(
            "s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"], region_name=os.environ.get("AWS_REGION", "us-east-1"),
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}))
        db = psycopg2.connect(os.environ["DATABASE_URL"])
        _clients = (s3, db)
    return _clients


def without_metadata(image, keep_icc):
    """A copy without metadata fields (EXIF with GPS, XMP, IPTC, comments), the ICC profile kept if asked."""
    image = image.copy()
    for name in image.get_fields():
        if not (keep_icc and name == "icc-profile-data"):
            image.remove(name)
    return image


@app.task(name="media.ingest")
def ingest(upload_id, source):
    s3, db = clients()
    body = s3.get_object(Bucket=BUCKET, Key=source)["Body"].read()
    stem = source.rsplit(".", 1)[0]
    image = pyvips.Image.new_from_buffer(body, "").autorot()
    outputs = [(f"{stem}.clean.jpg", without_metadata(image, keep_icc=True).jpegsave_buffer(Q=90, **JPEG_OPTIONS), "image/jpeg")]
    variants = []
    for name, width, height, fit in VARIANTS:
        thumb = pyvips.Image.thumbnail_buffer(body, width, height=height, crop="centre" if fit == "cover" else "none")
        data = without_metadata(thumb, keep_icc=False).webpsave_buffer(Q=80, strip=True)
        key = f"thumbnails/{stem}/{name}.webp"
        outputs.append((key, data, "image/webp"))
        variants.append({"name": name, "key": key, "width": thumb.width, "height": thumb.height, "bytes": len(data), "format": "webp"})
    for key, data, content_type in outputs:
        s3.put_object(Bucket=BUCKET, Key=key, Body=data, ContentType=content_type, CacheControl=CACHE_CONTROL)
    with db.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {TABLE} (upload_id, status, kind, source, width, height, clean, variants)
                VALUES (%s, 'ready', 'image', %s, %s, %s, %s, %s::jsonb)
                ON CONFLICT (upload_id) DO UPDATE SET status = EXCLUDED.status, width = EXCLUDED.width,
                    height = EXCLUDED.height, clean = EXCLUDED.clean, variants = EXCLUDED.variants, updated_at = now()""",
            (upload_id, source, image.width, image.height, outputs[0][0], json.dumps(variants)))
    db.commit()
    return None
