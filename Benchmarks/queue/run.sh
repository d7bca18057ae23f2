#!/usr/bin/env bash
# Queue throughput and pickup latency: Conveyor against Sidekiq 6.4 (Debian's ruby-sidekiq), same Redis, same run.
#   Benchmarks/queue/run.sh            (JOBS=200000 CONVEYOR_CONCURRENCY="25 100" SIDEKIQ_CONCURRENCY="10 25")
# Prints a Markdown table and writes it to Benchmarks/results/queue.md.
# COMPARE_REV=<git revision> also builds that revision (release, in .build-compare/) and drains with it right after
# this build at each concurrency, ROUNDS times (default 1, interleaved): a change against the build before it, on
# the same machine at the same time.
# TLS=1 adds rows for this build reaching the same Redis over TLS (its --tls-port, a CA made here with openssl).
# TRACING=1 adds rows for this build exporting a span per job over OTLP/HTTP to a loopback receiver that answers at
# once (Tests/TelemetryTests/otlp_receiver.py --sink), sampling 10 % and 100 %, interleaved with plain rows.
# LIMITS=1 adds rows for this build with a config file whose limits: entry covers the drained class (concurrency
# 100000, one key: every job is judged, holds a slot and gives it up, but the limit is never reached), interleaved
# with plain rows: the cost of a limit that is configured but not reached; and rows with a limit on another class
# only (the drained jobs are judged by their bytes and never decoded).
# WAIT_REPLICAS=1 adds rows for this build with CONVEYOR_REDIS_WAIT_REPLICAS=1 against a replica of the bench Redis
# (started on the next port), interleaved with plain rows of the same concurrency: the cost of waiting for a replica.
set -euo pipefail
cd "$(dirname "$0")/../.."
JOBS=${JOBS:-200000}
CONVEYOR_CONCURRENCY=${CONVEYOR_CONCURRENCY:-"25 100"}
SIDEKIQ_CONCURRENCY=${SIDEKIQ_CONCURRENCY:-"10 25"}
TRICKLE=${TRICKLE:-300}
PORT=${BENCH_REDIS_PORT:-6398}
HERE=Benchmarks/queue
OUT=Benchmarks/results
mkdir -p "$OUT" .run/bench-redis

swift build -c release --product conveyor >/dev/null
BIN="$(swift build -c release --show-bin-path)/conveyor"
ROUNDS=${ROUNDS:-1}
BUILDS=("this:$BIN")
if [ -n "${COMPARE_REV:-}" ]; then
  COMPARE_DIR="$PWD/.build-compare/src"
  rm -rf "$COMPARE_DIR"; mkdir -p "$COMPARE_DIR"
  git archive "$COMPARE_REV" | tar -x -C "$COMPARE_DIR"
  (cd "$COMPARE_DIR" && swift build -c release --product conveyor >/dev/null)
  COMPARE_NAME=$(git rev-parse --short "$COMPARE_REV")
  BUILDS+=("$COMPARE_NAME:$(cd "$COMPARE_DIR" && swift build -c release --show-bin-path)/conveyor")
fi
declare -A best
if [ "${TLS:-0}" = 1 ]; then BUILDS+=("tls:$BIN"); fi
if [ "${WAIT_REPLICAS:-0}" -gt 0 ]; then BUILDS+=("wait:$BIN"); fi
if [ "${LIMITS:-0}" = 1 ]; then
  BUILDS+=("limit:$BIN" "limitother:$BIN")
  printf 'limits:\n  bench:\n    classes: [noop]\n    concurrency: 100000\n' > .run/bench-limits.yml
  printf 'limits:\n  bench:\n    classes: [sleep]\n    key: args.tenant\n    concurrency: 2\n' > .run/bench-limits-other.yml
fi
if [ "${TRACING:-0}" = 1 ]; then
  BUILDS+=("trace10:$BIN" "trace100:$BIN")
  exec {RECEIVER_IN}> >(exec python3 -u Tests/TelemetryTests/otlp_receiver.py --sink > .run/bench-otlp.port)
  for _ in $(seq 1 100); do grep -q listening .run/bench-otlp.port 2>/dev/null && break; sleep 0.1; done
  OTLP_PORT=$(awk '/listening/ {print $2}' .run/bench-otlp.port)
fi
TLS_ARGS=()
if [ "${TLS:-0}" = 1 ]; then
  T="$PWD/.run/bench-tls"
  mkdir -p "$T"
  if [ ! -f "$T/server.crt" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=bench-ca -keyout "$T/ca.key" -out "$T/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$T/server.key" -out "$T/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$T/san.ext"
    openssl x509 -req -in "$T/server.csr" -CA "$T/ca.crt" -CAkey "$T/ca.key" -CAcreateserial -days 30 -extfile "$T/san.ext" \
      -out "$T/server.crt" 2>/dev/null
  fi
  TLS_ARGS=(--tls-port "$((PORT + 2))" --tls-cert-file "$T/server.crt" --tls-key-file "$T/server.key" --tls-ca-cert-file "$T/ca.crt"
    --tls-auth-clients no)
fi

redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir .run/bench-redis --daemonize yes \
  --pidfile "$PWD/.run/bench-redis/redis.pid" --logfile "$PWD/.run/bench-redis/redis.log" "${TLS_ARGS[@]}" >/dev/null
trap 'redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true; redis-cli -p "$((PORT + 1))" shutdown nosave >/dev/null 2>&1 || true; pkill -f "sidekiq.*bench" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
export REDIS_URL="redis://127.0.0.1:$PORT/0"
if [ "${WAIT_REPLICAS:-0}" -gt 0 ]; then
  mkdir -p .run/bench-redis-replica
  redis-server --port "$((PORT + 1))" --bind 127.0.0.1 --save "" --appendonly no --dir .run/bench-redis-replica --daemonize yes \
    --replicaof 127.0.0.1 "$PORT" --logfile "$PWD/.run/bench-redis-replica/redis.log" >/dev/null
  for _ in $(seq 1 100); do [ "$(redis-cli -p "$PORT" wait 1 100)" = 1 ] && break; done
fi
R() { redis-cli -p "$PORT" "$@"; }

# Seconds from the first processed job to the last: start-up is left out for both systems.
drain_rate() {
  local start="" now count
  while :; do
    count=$(R get stat:processed); count=${count:-0}
    now=$(date +%s.%N)
    if [ -z "$start" ] && [ "$count" -gt 0 ]; then start=$now; first=$count; fi
    if [ "$count" -ge "$JOBS" ]; then break; fi
    sleep 0.01
  done
  python3 -c "print(round(($JOBS - $first) / ($now - $start)))"
}

peak_rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

rows=()
for c in $CONVEYOR_CONCURRENCY; do
  for round in $(seq 1 "$ROUNDS"); do
    for build in "${BUILDS[@]}"; do
      label=${build%%:*}; bin=${build#*:}
      R flushall >/dev/null
      ruby "$HERE/enqueue.rb" noop "$JOBS"
      if [ "$label" = wait ]; then
        CONVEYOR_REDIS_WAIT_REPLICAS=$WAIT_REPLICAS "$bin" worker --queues default -c "$c" --log-level warning &
      elif [ "$label" = trace10 ] || [ "$label" = trace100 ]; then
        ratio=$([ "$label" = trace10 ] && echo 0.1 || echo 1)
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=$ratio \
          "$bin" worker --queues default -c "$c" --log-level warning &
      elif [ "$label" = limit ]; then
        "$bin" worker --config .run/bench-limits.yml --queues default -c "$c" --log-level warning &
      elif [ "$label" = limitother ]; then
        "$bin" worker --config .run/bench-limits-other.yml --queues default -c "$c" --log-level warning &
      elif [ "$label" = tls ]; then
        REDIS_URL="rediss://127.0.0.1:$((PORT + 2))/0" CONVEYOR_REDIS_CA_FILE="$PWD/.run/bench-tls/ca.crt" \
          "$bin" worker --queues default -c "$c" --log-level warning &
      else
        "$bin" worker --queues default -c "$c" --log-level warning &
      fi
      pid=$!
      rate=$(drain_rate)
      rss=$(peak_rss_kb "$pid")
      kill -TERM "$pid"; wait "$pid" || true
      left=$(R llen queue:default)
      case $label in
        this) name="Conveyor (reliable fetch)" ;;
        wait) name="Conveyor, WAIT $WAIT_REPLICAS after each ack batch" ;;
        tls) name="Conveyor over TLS" ;;
        limit) name="Conveyor, a limit on the class, never reached" ;;
        limitother) name="Conveyor, a limit on another class" ;;
        trace10) name="Conveyor, tracing 10 % of jobs" ;;
        trace100) name="Conveyor, tracing every job" ;;
        *) name="Conveyor @$label" ;;
      esac
      rows+=("| $name | $c | $rate | $((rss / 1024)) | $left |"); echo "${rows[-1]}" >&2
      key="$label:$c"; best[$key]=$(( ${best[$key]:-0} > rate ? ${best[$key]:-0} : rate ))
      if [ "$label" = this ]; then conveyor_best=$(( ${conveyor_best:-0} > rate ? ${conveyor_best:-0} : rate )); fi
    done
  done
done
for c in $SIDEKIQ_CONCURRENCY; do
  R flushall >/dev/null
  ruby "$HERE/enqueue.rb" NoopJob "$JOBS"
  sidekiq -r "./$HERE/sidekiq_jobs.rb" -c "$c" -q default -e production -g bench >/dev/null 2>&1 &
  pid=$!
  rate=$(drain_rate)
  rss=$(peak_rss_kb "$pid")
  kill -TERM "$pid"; wait "$pid" || true
  rows+=("| Sidekiq 6.4.1 (BRPOP, not crash-safe) | $c | $rate | $((rss / 1024)) | $(R llen queue:default) |"); echo "${rows[-1]}" >&2
  sidekiq_best=$(( ${sidekiq_best:-0} > rate ? ${sidekiq_best:-0} : rate ))
done

# Redis's own ceiling for the commands one reliable job costs: push, atomic move into in-flight, remove on ack.
R flushall >/dev/null
ceiling() { redis-benchmark -p "$PORT" -n 200000 -q "$@" 2>/dev/null | awk -F'[:"]' '/requests per second/ {gsub(/ requests per second.*/, "", $NF); print $NF}' | tr -d ' ' | tail -1; }
lpush=$(ceiling -P 50 LPUSH queue:ceiling '{"class":"noop","args":[{}],"queue":"default","jid":"0b1c2d3e4f5a6b7c8d9e0f1a"}')
lmove=$(ceiling -P 50 LMOVE queue:ceiling conveyor:inflight:ceiling RIGHT LEFT)
# An ack scans the in-flight list, which holds about as many jobs as the worker's concurrency: measure on 50.
R del conveyor:inflight:acks >/dev/null
for i in $(seq 1 50); do R rpush conveyor:inflight:acks "{\"class\":\"noop\",\"jid\":\"$i\"}" >/dev/null; done
lrem=$(ceiling -P 50 LREM conveyor:inflight:acks 1 absent)
lmove1=$(ceiling -P 1 LMOVE queue:ceiling conveyor:inflight:ceiling RIGHT LEFT)

# Pickup latency on an idle worker: each job pushed onto an empty queue; the worker logs start - enqueued_at.
R flushall >/dev/null
"$BIN" worker --queues default -c 10 --log-level info 2>"$OUT/queue-latency.log" &
pid=$!
ruby "$HERE/trickle.rb" noop "$TRICKLE"
kill -TERM "$pid"; wait "$pid" || true
read -r p50 p99 < <(grep -o 'latency_ms=[0-9.]*' "$OUT/queue-latency.log" | cut -d= -f2 | sort -n |
  awk '{v[NR]=$1} END {i50=int(NR*0.5); i99=int(NR*0.99); if (i50<1) i50=1; if (i99<1) i99=1; print v[i50], v[i99]}')

ratio=$(python3 -c "print(round($conveyor_best / $sidekiq_best, 1))")
{
  echo "Drain of $JOBS pre-enqueued no-op jobs, one process each, same Redis ($(redis-server --version | awk '{print $3}')), $(nproc) cores, $(date -u +%Y-%m-%d)."
  echo
  echo "| System | Concurrency | Jobs/s | Peak RSS MiB | Left in queue |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Best Conveyor / best Sidekiq: **${ratio}x**."
  if [ "${TLS:-0}" = 1 ]; then
    echo
    for c in $CONVEYOR_CONCURRENCY; do
      echo "TLS against plain TCP at concurrency $c (best of $ROUNDS): $(python3 -c "print(round(100 * ${best[tls:$c]} / ${best[this:$c]}))") %."
    done
  fi
  if [ "${TRACING:-0}" = 1 ]; then
    echo
    for c in $CONVEYOR_CONCURRENCY; do
      echo "Tracing against none at concurrency $c (best of $ROUNDS): 10 % sampled $(python3 -c "print(round(100 * ${best[trace10:$c]} / ${best[this:$c]}))") %, every job $(python3 -c "print(round(100 * ${best[trace100:$c]} / ${best[this:$c]}))") %."
    done
  fi
  if [ "${LIMITS:-0}" = 1 ]; then
    echo
    for c in $CONVEYOR_CONCURRENCY; do
      echo "A limit configured but never reached against none at concurrency $c (best of $ROUNDS): on the drained class $(python3 -c "print(round(100 * ${best[limit:$c]} / ${best[this:$c]}))") %, on another class $(python3 -c "print(round(100 * ${best[limitother:$c]} / ${best[this:$c]}))") %."
    done
  fi
  if [ "${WAIT_REPLICAS:-0}" -gt 0 ]; then
    echo
    for c in $CONVEYOR_CONCURRENCY; do
      echo "WAIT $WAIT_REPLICAS against none at concurrency $c (best of $ROUNDS): $(python3 -c "print(round(100 * ${best[wait:$c]} / ${best[this:$c]}))") %."
    done
  fi
  if [ -n "${COMPARE_NAME:-}" ]; then
    echo
    for c in $CONVEYOR_CONCURRENCY; do
      echo "This build against @$COMPARE_NAME at concurrency $c (best of $ROUNDS): $(python3 -c "print(round(100 * ${best[this:$c]} / ${best[$COMPARE_NAME:$c]}))") %."
    done
  fi
  echo
  echo "Redis ceiling (redis-benchmark, pipelined 50): LPUSH $lpush/s, LMOVE $lmove/s, LREM on a 50-job in-flight list $lrem/s; LMOVE unpipelined $lmove1/s. One reliable job costs one of each, so one Redis core tops out near $(python3 -c "print(round(1 / (1 / $lpush + 1 / $lmove + 1 / $lrem)))") jobs/s enqueued and drained."
  echo
  echo "Idle pickup latency (enqueue to handler start, $TRICKLE jobs pushed one at a time onto an idle worker): p50 ${p50} ms, p99 ${p99} ms."
} | tee "$OUT/queue.md"
