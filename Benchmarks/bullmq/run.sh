#!/usr/bin/env bash
# BullMQ worker mode against BullMQ's own (Python) worker: the same 50,000 no-op jobs, added by BullMQ's Python
# Queue into the same private Redis, drained once by each, and Conveyor's Sidekiq mode beside them.
#   Benchmarks/bullmq/run.sh     (JOBS=50000 CONCURRENCY=25 ROUNDS=1)
# Prints a Markdown table and writes it to Benchmarks/results/bullmq.md. Node is not installable here: the Python
# port is BullMQ's worker in this run (its Lua scripts are the same files Conveyor runs).
set -euo pipefail
cd "$(dirname "$0")/../.."
JOBS=${JOBS:-50000}
CONCURRENCY=${CONCURRENCY:-25}
ROUNDS=${ROUNDS:-1}
PORT=${BENCH_REDIS_PORT:-6423}
HERE=Benchmarks/bullmq
OUT=Benchmarks/results
mkdir -p "$OUT" .run/bench-bullmq-redis

swift build -c release --product conveyor >/dev/null
BIN="$(swift build -c release --show-bin-path)/conveyor"
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir .run/bench-bullmq-redis --daemonize yes \
  --pidfile "$PWD/.run/bench-bullmq-redis/redis.pid" --logfile "$PWD/.run/bench-bullmq-redis/redis.log" >/dev/null
trap 'redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
URL="redis://127.0.0.1:$PORT/0"
R() { redis-cli -p "$PORT" "$@"; }

# Jobs/s from the first finished job to the last, the count read by the command given (BullMQ's completed set, which
# both workers keep; Sidekiq's processed counter).
drain_rate() {
  local start="" now count first=0
  while :; do
    count=$("$@"); count=${count:-0}
    now=$(date +%s.%N)
    if [ -z "$start" ] && [ "$count" -gt 0 ]; then start=$now; first=$count; fi
    if [ "$count" -ge "$JOBS" ]; then break; fi
    sleep 0.01
  done
  python3 -c "print(round(($JOBS - $first) / ($now - $start)))"
}

rows=()
for round in $(seq 1 "$ROUNDS"); do
  R flushall >/dev/null
  python3 "$HERE/bullmq_bench.py" add "$URL" bench "$JOBS"
  rate=$(python3 "$HERE/bullmq_bench.py" work "$URL" bench "$JOBS" "$CONCURRENCY")
  left=$(R llen bull:bench:wait)
  rows+=("| BullMQ 3.4.4's Python Worker | $CONCURRENCY | $rate | $left |"); echo "${rows[-1]}" >&2
  python_best=$(( ${python_best:-0} > rate ? ${python_best:-0} : rate ))

  R flushall >/dev/null
  python3 "$HERE/bullmq_bench.py" add "$URL" bench "$JOBS"
  REDIS_URL=$URL "$BIN" worker --bullmq-queues bench -c "$CONCURRENCY" --log-level warning 2>"$OUT/bullmq-worker.log" &
  pid=$!
  rate=$(drain_rate R zcard bull:bench:completed)
  kill -TERM "$pid"; wait "$pid" || true
  left=$(R llen bull:bench:wait)
  rows+=("| Conveyor, BullMQ worker mode | $CONCURRENCY | $rate | $left |"); echo "${rows[-1]}" >&2
  lost=$(grep -c "lock lost" "$OUT/bullmq-worker.log" || true)
  conveyor_best=$(( ${conveyor_best:-0} > rate ? ${conveyor_best:-0} : rate ))

  R flushall >/dev/null
  REDIS_URL=$URL ruby Benchmarks/queue/enqueue.rb noop "$JOBS"
  REDIS_URL=$URL "$BIN" worker --queues default -c "$CONCURRENCY" --log-level warning 2>/dev/null &
  pid=$!
  rate=$(drain_rate R get stat:processed)
  kill -TERM "$pid"; wait "$pid" || true
  rows+=("| Conveyor, Sidekiq format (reliable fetch) | $CONCURRENCY | $rate | $(R llen queue:default) |"); echo "${rows[-1]}" >&2
done

{
  echo "Drain of $JOBS no-op jobs added by BullMQ's Python Queue (addBulk), one process each, same Redis ($(redis-server --version | awk '{print $3}')), $(nproc) cores, $(date -u +%Y-%m-%d); best of $ROUNDS."
  echo
  echo "| Worker | Concurrency | Jobs/s | Left waiting |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Conveyor's BullMQ mode / BullMQ's Python worker: **$(python3 -c "print(round($conveyor_best / $python_best, 1))")x** (target at least 5x). Lock-lost warnings in Conveyor's last round: $lost."
} | tee "$OUT/bullmq.md"
