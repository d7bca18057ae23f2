#!/usr/bin/env bash
# What recording outcomes costs: drain N pre-enqueued `noop` jobs with one `conveyor worker` process, three ways,
# in the same run on the same Redis:
#   baseline   no DATABASE_URL, no --metrics-addr       (queue only)
#   metrics    --metrics-addr, no DATABASE_URL          (Prometheus observer + Redis poller)
#   results    --metrics-addr + DATABASE_URL            (metrics + batched writes to conveyor.job_results)
# The target: "results" keeps at least 85% of the baseline rate. Writes a table to
# Benchmarks/results/ops.md. Needs the worker wired with WorkerOperations (`conveyor worker --metrics-addr`).
#   Benchmarks/ops/run.sh [JOBS] [ROUNDS]      (defaults 200000, 3; release build)
# COMPARE_REV=<git revision> also builds that revision (release, in .build-compare/) and runs its baseline and
# results setups in the same interleaved rounds, as "baseline@REV" and "results@REV": before and after a change,
# on the same machine at the same time.
# Two CPU layouts, each with all three setups (LAYOUTS="shared split" by default):
#   shared  every process on every core: PostgreSQL's own CPU time competes with the worker's
#   split   the worker and Redis on CPU 0, PostgreSQL on CPU 1, as when the database has its own host
set -euo pipefail
cd "$(dirname "$0")/../.."
JOBS=${1:-200000}
ROUNDS=${2:-3}
CONCURRENCY=${CONVEYOR_BENCH_CONCURRENCY:-20}
LAYOUTS=${LAYOUTS:-"shared split"}

scripts/setup.sh
scripts/services.sh start >/dev/null
trap 'scripts/services.sh stop' EXIT
source .run/env
swift build -c release --product conveyor >/dev/null
BIN="$(swift build -c release --show-bin-path)/conveyor"
MODES="baseline metrics results"
if [ -n "${COMPARE_REV:-}" ]; then
  COMPARE_DIR="$PWD/.build-compare/src"
  rm -rf "$COMPARE_DIR"; mkdir -p "$COMPARE_DIR"
  git archive "$COMPARE_REV" | tar -x -C "$COMPARE_DIR"
  (cd "$COMPARE_DIR" && swift build -c release --product conveyor >/dev/null)
  COMPARE_BIN="$(cd "$COMPARE_DIR" && swift build -c release --show-bin-path)/conveyor"
  COMPARE_NAME=$(git rev-parse --short "$COMPARE_REV")
  MODES="baseline baseline@$COMPARE_NAME metrics results results@$COMPARE_NAME"
fi
if ! "$BIN" worker --help 2>&1 | grep -q -- "--metrics-addr"; then
  echo "ops benchmark: this build's worker has no --metrics-addr yet (WorkerOperations not wired); nothing measured" >&2
  exit 2
fi
REDIS_PORT=$(echo "$REDIS_URL" | sed -E 's#.*:([0-9]+)/.*#\1#')
PG="psql -q -t -A $DATABASE_URL"
NS="bench-ops"
"$BIN" migrate >/dev/null

enqueue() {
  # RESP straight into redis-cli --pipe: 200k LPUSHes in about a second.
  python3 - "$JOBS" "$NS" <<'PY' | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
import sys, time
n, ns = int(sys.argv[1]), sys.argv[2]
out = sys.stdout.buffer
def cmd(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    out.write(b"".join(parts))
cmd("DEL", f"{ns}:queue:bench", f"{ns}:stat:processed")
cmd("SADD", f"{ns}:queues", "bench")
now = time.time()
for i in range(n):
    cmd("LPUSH", f"{ns}:queue:bench",
        '{"class":"noop","args":[{"upload_id":"u%d"}],"queue":"bench","jid":"bench%012d","retry":3,"created_at":%.3f,"enqueued_at":%.3f}' % (i, i, now, now))
PY
}

# Runs one drain; prints jobs/s.
pin=()
drain() {
  local mode=$1 args=() env=() bin=$BIN
  case $mode in *@*) bin=$COMPARE_BIN; mode=${mode%@*} ;; esac
  case $mode in
    baseline) env=(env -u DATABASE_URL) ;;
    metrics) env=(env -u DATABASE_URL); args=(--metrics-addr 127.0.0.1:0) ;;
    results) env=(env); args=(--metrics-addr 127.0.0.1:0); $PG -c "DELETE FROM conveyor.job_results WHERE jid LIKE 'bench%'"
             $PG -c "VACUUM conveyor.job_results" ;;  # not autovacuum in the middle of the next run
  esac
  enqueue
  local start end
  start=$(date +%s.%N)
  "${pin[@]}" "${env[@]}" "$bin" worker --namespace "$NS" --queues bench --concurrency "$CONCURRENCY" "${args[@]}" --log-level warning &
  local pid=$!
  while [ "$(redis-cli -p "$REDIS_PORT" get "$NS:stat:processed")" != "$JOBS" ]; do sleep 0.05; done
  local processed_at
  processed_at=$(date +%s.%N)
  # With results on, a second clock stops when every outcome is in PostgreSQL.
  if [ "$mode" = results ]; then
    local waited=0
    while [ "$($PG -c "SELECT count(*) FROM conveyor.job_results WHERE jid LIKE 'bench%'")" != "$JOBS" ]; do
      sleep 0.05; waited=$((waited + 1))
      [ $waited -lt 1200 ] || { echo "ops benchmark: outcomes missing after 60 s" >&2; break; }
    done
  fi
  end=$(date +%s.%N)
  kill -TERM "$pid"
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then echo "ops benchmark: worker did not exit 30 s after SIGTERM; killing it" >&2; kill -KILL "$pid"; fi
  wait "$pid" 2>/dev/null || true
  python3 -c "print(round($JOBS / ($processed_at - $start)), round($JOBS / ($end - $start)))"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Pins PostgreSQL (existing processes and the postmaster, whose new backends inherit it) and Redis.
layout() {
  local last=$(( $(nproc) - 1 )) pg redis
  pg=$(pgrep -u postgres postgres || true)
  redis=$(pgrep -f "redis-server 127.0.0.1:$REDIS_PORT" || true)
  case $1 in
    shared) pin=(); for p in $pg $redis; do taskset -a -p -c "0-$last" "$p" >/dev/null; done ;;
    split)
      pin=(taskset -c 0)
      for p in $pg; do taskset -a -p -c "$last" "$p" >/dev/null; done
      for p in $redis; do taskset -a -p -c 0 "$p" >/dev/null; done ;;
  esac
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Two rates per run: jobs processed per second (queue drained), and jobs per second until the last outcome
# row is in PostgreSQL (the same as the first without DATABASE_URL).
mkdir -p Benchmarks/results
: > Benchmarks/results/ops.md
for lay in $LAYOUTS; do
  if [ "$lay" = split ] && [ "$(nproc)" -lt 2 ]; then echo "ops benchmark: split layout needs 2 CPUs" >&2; continue; fi
  layout "$lay"
  # Rounds interleave the setups, so a slow spell on the shared machine hits all three alike.
  declare -A rate recorded runs ends
  for _ in $(seq "$ROUNDS"); do
    for mode in $MODES; do
      read -r p r < <(drain "$mode")
      runs[$mode]+="$p "; ends[$mode]+="$r "
    done
  done
  for mode in $MODES; do
    rate[$mode]=$(printf '%s\n' ${runs[$mode]} | median)
    recorded[$mode]=$(printf '%s\n' ${ends[$mode]} | median)
    echo "$lay $mode: processed ${runs[$mode]}jobs/s (median ${rate[$mode]}); until recorded ${ends[$mode]}(median ${recorded[$mode]})"
  done
  {
    echo "Layout: $lay ($( [ "$lay" = split ] && echo "worker and Redis on CPU 0, PostgreSQL on CPU $(( $(nproc) - 1 ))" || echo "every process on all $(nproc) CPUs"))"
    echo
    echo "| Worker setup (@REV: the build of that revision; $JOBS noop jobs, concurrency $CONCURRENCY, median of $ROUNDS interleaved rounds) | Processed jobs/s | vs baseline | Until all rows in PostgreSQL, jobs/s | vs baseline |"
    echo "|---|---|---|---|---|"
    for mode in $MODES; do
      base=baseline; case $mode in *@*) base=baseline@${mode#*@} ;; esac
      echo "| $mode | ${rate[$mode]} | $(python3 -c "print(f'{${rate[$mode]}/${rate[$base]}:.0%}')") | ${recorded[$mode]} | $(python3 -c "print(f'{${recorded[$mode]}/${rate[$base]}:.0%}')") |"
    done
    echo
  } | tee -a Benchmarks/results/ops.md
  unset rate recorded runs ends
done
layout shared
