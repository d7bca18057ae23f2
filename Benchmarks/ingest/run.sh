#!/usr/bin/env bash
# media.ingest of generated 12 MP photos end to end (Redis -> source -> helpers: clean copy + 3 thumbnails ->
# outputs -> PostgreSQL row) with one worker process, three ways in the same run: Conveyor on S3 (SeaweedFS),
# Conveyor on the local media root, and the Celery + pyvips + boto3 peer of celery_peer.py on the same S3 server.
# Writes Benchmarks/ingest/results.md and prints its table. Not part of `make test`.
#
#   Benchmarks/ingest/run.sh                    # N=200 photos, ROUNDS=1
#   N=50 ROUNDS=2 Benchmarks/ingest/run.sh
#   CONVEYOR_CONCURRENCY=4 CONVEYOR_HELPERS=2 CELERY_CONCURRENCY=2 Benchmarks/ingest/run.sh
#   QUIET_WHILE='pgrep -f make >/dev/null' Benchmarks/ingest/run.sh   # wait before each run while it succeeds
#
# Its own Redis, PostgreSQL and SeaweedFS (scripts/services.sh, run from a copy under $WORK so that their data and
# .run/env are not those of `make run`), on BENCH_REDIS_PORT (6590), BENCH_PG_PORT (5639), BENCH_S3_PORT (8533
# and the four after it), stopped at the end. Photos are generated once and kept in $WORK/photos.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-200}
ROUNDS=${ROUNDS:-1}
# Two cores: one helper per core; four ingests in flight keep both helpers busy while others download, upload
# and write their rows (media.ingest runs one at a time per process unless its class concurrency is raised).
CONVEYOR_CONCURRENCY=${CONVEYOR_CONCURRENCY:-4}
CONVEYOR_HELPERS=${CONVEYOR_HELPERS:-2}
CELERY_CONCURRENCY=${CELERY_CONCURRENCY:-2}
WORK=${WORK:-.run/bench-ingest}
OUT=${OUT:-Benchmarks/ingest/results.md}
REDIS_PORT=${BENCH_REDIS_PORT:-6590}
PG_PORT=${BENCH_PG_PORT:-5639}
S3_PORT=${BENCH_S3_PORT:-8533}

for tool in vips exiftool redis-server weed python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (scripts/setup.sh installs it)" >&2; exit 1; }
done
if ! python3 -c 'import celery, redis, pyvips, boto3, psycopg2' 2>/dev/null; then
  python3 -m pip install --quiet 'celery[redis]' pyvips boto3 psycopg2-binary
fi
if [[ -z "${CONVEYOR_BIN:-}" ]]; then
  swift build -c release --product conveyor >&2
  CONVEYOR_BIN="$(swift build -c release --show-bin-path)/conveyor"
fi

SERVICES="$WORK/services"
mkdir -p "$SERVICES/scripts"
cp scripts/services.sh "$SERVICES/scripts/services.sh"
services() {
  env -u REDIS_URL -u DATABASE_URL -u CONVEYOR_TEST_S3_ENDPOINT \
    CONVEYOR_REDIS_PORT="$REDIS_PORT" CONVEYOR_PG_PORT="$PG_PORT" CONVEYOR_S3_PORT="$S3_PORT" \
    "$SERVICES/scripts/services.sh" "$1"
}
trap 'services stop >/dev/null 2>&1 || true' EXIT
# Each run uploads into a fresh bucket; the earlier runs' buckets (600 MB each for N=200) are not kept.
services stop >/dev/null 2>&1 || true
rm -rf "$SERVICES/.run/s3/data"
services start >/dev/null
# shellcheck disable=SC1091
source "$SERVICES/.run/env"

python3 Benchmarks/ingest/bench.py --n "$N" --rounds "$ROUNDS" --concurrency "$CONVEYOR_CONCURRENCY" \
  --helpers "$CONVEYOR_HELPERS" --celery-concurrency "$CELERY_CONCURRENCY" --conveyor "$CONVEYOR_BIN" --work "$WORK" \
  --s3-pid "$SERVICES/.run/s3/weed.pid" --out "$OUT" --quiet-while "${QUIET_WHILE:-}" ${SYSTEMS:+--systems "$SYSTEMS"}
