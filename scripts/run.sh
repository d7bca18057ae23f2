#!/usr/bin/env bash
# make run: private Redis + PostgreSQL on loopback, the worker in the foreground, and example jobs flowing.
# Ctrl-C stops the worker gracefully, then the servers this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${CONFIG:-debug}
BIN="$(swift build -c "$CONFIG" --show-bin-path)/conveyor"

scripts/services.sh start app >/dev/null
source .run/env
export REDIS_URL DATABASE_URL
export CONVEYOR_MEDIA_ROOT=${CONVEYOR_MEDIA_ROOT:-$PWD/.run/media}
export CONVEYOR_MAIL_OUTBOX=${CONVEYOR_MAIL_OUTBOX:-$PWD/.run/mail}
export CONVEYOR_METRICS_ADDR=${CONVEYOR_METRICS_ADDR:-127.0.0.1:9464}
export CONVEYOR_WEB_ADDR=${CONVEYOR_WEB_ADDR:-127.0.0.1:9292}
export CONVEYOR_WEB_METRICS_URLS=${CONVEYOR_WEB_METRICS_URLS:-http://$CONVEYOR_METRICS_ADDR/metrics}
mkdir -p "$CONVEYOR_MEDIA_ROOT" "$CONVEYOR_MAIL_OUTBOX"

examples_pid=""
web_pid=""
cleanup() {
  [ -n "$examples_pid" ] && kill "$examples_pid" 2>/dev/null || true
  [ -n "$web_pid" ] && kill "$web_pid" 2>/dev/null && wait "$web_pid" 2>/dev/null || true
  scripts/services.sh stop
  echo "make run: stopped the worker, Redis and PostgreSQL."
}
trap cleanup EXIT

cat <<MSG
make run: Redis at $REDIS_URL, PostgreSQL at $DATABASE_URL
          media under $CONVEYOR_MEDIA_ROOT, mail written to $CONVEYOR_MAIL_OUTBOX
          dashboard at http://$CONVEYOR_WEB_ADDR/  (queues, busy, retries, dead, uploads with thumbnails)
          metrics and health at http://$CONVEYOR_METRICS_ADDR/metrics, /healthz, /readyz
          from another terminal:  export REDIS_URL=$REDIS_URL DATABASE_URL=$DATABASE_URL
                                  $BIN enqueue noop;  $BIN stats;  $BIN dead list
                                  psql "\$DATABASE_URL" -c 'table conveyor.job_results'
          Ctrl-C stops everything.
MSG

# The dashboard beside the worker (it runs no jobs); its log goes to .run/web.log.
"$BIN" web >.run/web.out 2>.run/web.log &
web_pid=$!

# Example jobs, pushed once the worker has registered.
(
  for _ in $(seq 1 100); do
    [ "$(redis-cli -u "$REDIS_URL" scard conveyor:processes 2>/dev/null || echo 0)" -gt 0 ] && break
    sleep 0.1
  done
  scripts/examples.sh "$BIN"
) &
examples_pid=$!

"$BIN" worker "$@"
