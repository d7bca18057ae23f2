#!/usr/bin/env bash
# Starts or stops the private Redis and PostgreSQL that make run and make test use, on loopback, with their
# data under .run/. A REDIS_URL or DATABASE_URL already set means that server is someone else's: left alone.
#   scripts/services.sh start   -> writes .run/env (export REDIS_URL=... DATABASE_URL=...)
#   scripts/services.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUN="$ROOT/.run"
REDIS_PORT=${CONVEYOR_REDIS_PORT:-6390}
PG_PORT=${CONVEYOR_PG_PORT:-5439}
mkdir -p "$RUN"

pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$d" ] || { echo "services: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }
  echo "$d"
}

# PostgreSQL refuses to run as root: as root, run it as the postgres system user.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_redis() {
  if [ -n "${REDIS_URL:-}" ]; then echo "export REDIS_URL='$REDIS_URL'"; return; fi
  mkdir -p "$RUN/redis"
  if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$RUN/redis" --daemonize yes \
      --pidfile "$RUN/redis/redis.pid" --logfile "$RUN/redis/redis.log" --save "" --appendonly no >/dev/null
    for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
    redis-cli -p "$REDIS_PORT" ping >/dev/null || { echo "services: redis did not start, see $RUN/redis/redis.log" >&2; exit 1; }
  fi
  echo "export REDIS_URL='redis://127.0.0.1:$REDIS_PORT/0'"
}

start_postgres() {
  if [ -n "${DATABASE_URL:-}" ]; then echo "export DATABASE_URL='$DATABASE_URL'"; return; fi
  local bin data
  bin=$(pg_bin)
  if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$RUN" 2>/dev/null; then
    # The postgres user cannot reach this checkout (under /root, say): keep the cluster where it can, linked from .run/.
    if [ ! -L "$RUN/pg" ]; then
      local elsewhere
      elsewhere=$(mktemp -d /var/tmp/conveyor-pg.XXXXXX)
      rm -rf "$RUN/pg"
      ln -s "$elsewhere" "$RUN/pg"
    fi
  fi
  mkdir -p "$RUN/pg"
  data="$RUN/pg/data"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$(readlink -f "$RUN/pg")"; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$data" -U conveyor --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$RUN/initdb.log" 2>&1 \
      || { cat "$RUN/initdb.log" >&2; exit 1; }
  fi
  if ! as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" -D "$data" -l "$(readlink -f "$RUN/pg")/postgres.log" -w -t 60 \
      -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $(readlink -f "$RUN/pg") -c max_connections=200 -c fsync=off" start >/dev/null \
      || { tail -20 "$RUN/pg/postgres.log" >&2; exit 1; }
  fi
  psql -h 127.0.0.1 -p "$PG_PORT" -U conveyor -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='conveyor'" | grep -q 1 \
    || psql -h 127.0.0.1 -p "$PG_PORT" -U conveyor -d postgres -qc "CREATE DATABASE conveyor" >/dev/null
  echo "export DATABASE_URL='postgres://conveyor@127.0.0.1:$PG_PORT/conveyor'"
}

stop_all() {
  if [ -f "$RUN/redis/redis.pid" ]; then
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || kill "$(cat "$RUN/redis/redis.pid")" 2>/dev/null || true
    rm -f "$RUN/redis/redis.pid"
  fi
  if [ -f "$RUN/pg/data/postmaster.pid" ]; then
    as_pg "$(pg_bin)/pg_ctl" -D "$RUN/pg/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

case "${1:-}" in
  start)
    { start_redis; start_postgres; } >"$RUN/env.tmp"
    mv "$RUN/env.tmp" "$RUN/env"
    cat "$RUN/env"
    ;;
  stop) stop_all ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
