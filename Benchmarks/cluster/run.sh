#!/usr/bin/env bash
# Drain rate of pre-enqueued no-op jobs spread over six queues: a Redis Cluster of three masters against one Redis,
# in the same run, with one and with two worker processes; plus each master's command counts (INFO commandstats)
# during a cluster drain, to show the load spread over the shards.
#   Benchmarks/cluster/run.sh   (JOBS=60000 CONCURRENCY=25 ROUNDS=2 BENCH_PORT=6580: one Redis on BENCH_PORT, the
#                                cluster's masters on the next three ports, their bus ports + 10000)
# Prints a Markdown table and writes it to Benchmarks/results/cluster.md. The cluster has no replicas (on a small
# machine they would only take CPU from the masters); its masters and the single Redis run without persistence.
set -euo pipefail
cd "$(dirname "$0")/../.."
JOBS=${JOBS:-60000}
CONCURRENCY=${CONCURRENCY:-25}
ROUNDS=${ROUNDS:-2}
PORT=${BENCH_PORT:-6580}
HERE=Benchmarks/cluster
OUT=Benchmarks/results
RUNDIR="$PWD/.run/bench-cluster"
mkdir -p "$OUT"
rm -rf "$RUNDIR"
mkdir -p "$RUNDIR/jobs"

swift build -c release --product conveyor >/dev/null
BIN="$(swift build -c release --show-bin-path)/conveyor"
unset DATABASE_URL

PORTS=("$PORT" $((PORT + 1)) $((PORT + 2)) $((PORT + 3)))
# By pid, never by port: another checkout's server on these ports is left alone. Workers still running (the run
# failed mid-drain) go first.
pids=()
stop_all() {
  local p f
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for p in "${PORTS[@]}"; do
    f="$RUNDIR/$p/redis.pid"
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
}
trap stop_all EXIT
for p in "${PORTS[@]}"; do
  extra=()
  [ "$p" != "$PORT" ] && extra=(--cluster-enabled yes --cluster-config-file "$RUNDIR/$p/nodes.conf")
  mkdir -p "$RUNDIR/$p"
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "cluster bench: port $p is taken (set BENCH_PORT)" >&2; exit 1; fi
  redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no --dir "$RUNDIR/$p" --daemonize yes \
    --pidfile "$RUNDIR/$p/redis.pid" --logfile "$RUNDIR/$p/redis.log" "${extra[@]}" >/dev/null
done
for p in "${PORTS[@]}"; do for _ in $(seq 1 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.05; done; done
redis-cli --cluster create 127.0.0.1:$((PORT + 1)) 127.0.0.1:$((PORT + 2)) 127.0.0.1:$((PORT + 3)) --cluster-yes >"$RUNDIR/create.log"
for _ in $(seq 1 100); do redis-cli -p $((PORT + 1)) cluster info | grep -q cluster_state:ok && break; sleep 0.1; done
MASTERS=($((PORT + 1)) $((PORT + 2)) $((PORT + 3)))
# PORT=FIRST-LAST for each master, from CLUSTER NODES.
NODES=$(redis-cli -p "${MASTERS[0]}" cluster nodes | awk '/master/ { split($2, a, "[:@]"); print a[2] "=" $9 }' | paste -sd,)
CLUSTER_URL="redis+cluster://127.0.0.1:${MASTERS[0]},127.0.0.1:${MASTERS[1]},127.0.0.1:${MASTERS[2]}"

# Six queues, two on each master.
QUEUES=$(python3 - "$NODES" <<'PY'
import sys
sys.path.insert(0, "Benchmarks/cluster")
from enqueue import slot
spans = [tuple(map(int, s.split("=")[1].split("-"))) for s in sys.argv[1].split(",")]
picked, counts, i = [], [0] * len(spans), 0
while len(picked) < 6:
    name = f"b{i}"; i += 1
    s = slot("queue:" + name)
    m = next(j for j, (a, b) in enumerate(spans) if a <= s <= b)
    if counts[m] < 2:
        counts[m] += 1; picked.append(name)
print(" ".join(picked))
PY
)
QUEUE_LIST=$(echo "$QUEUES" | tr ' ' ',')
python3 "$HERE/enqueue.py" "$RUNDIR/jobs" "$JOBS" $QUEUES >/dev/null
python3 "$HERE/enqueue.py" "$RUNDIR/jobs" "$JOBS" $QUEUES --nodes "$NODES" >/dev/null

# Jobs processed so far: one counter, or the per-queue counters on their masters.
processed() {
  if [ "$1" = single ]; then
    redis-cli -p "$PORT" get stat:processed
  else
    local q sum=0 n
    for q in $QUEUES; do
      n=$(redis-cli -c -p "${MASTERS[0]}" get "conveyor:{queue:$q}:stat:processed"); sum=$((sum + ${n:-0}))
    done
    echo "$sum"
  fi
}

# Seconds from the first processed job to the last: start-up is left out.
drain_rate() {
  local start="" now count first=0
  while :; do
    count=$(processed "$1"); count=${count:-0}
    now=$(date +%s.%N)
    if [ -z "$start" ] && [ "$count" -gt 0 ]; then start=$now; first=$count; fi
    if [ "$count" -ge "$JOBS" ]; then break; fi
    sleep 0.02
  done
  # A drain shorter than one poll (a tiny JOBS) has no measurable rate: report 0 rather than divide by zero.
  python3 -c "d = $now - $start; print(round(($JOBS - $first) / d) if d > 0 and $JOBS > $first else 0)"
}

load() {
  if [ "$1" = single ]; then
    redis-cli -p "$PORT" flushall >/dev/null
    redis-cli -p "$PORT" --pipe <"$RUNDIR/jobs/single" >/dev/null
  else
    for p in "${MASTERS[@]}"; do redis-cli -p "$p" flushall >/dev/null; redis-cli -p "$p" config resetstat >/dev/null; done
    for p in "${MASTERS[@]}"; do [ -f "$RUNDIR/jobs/$p" ] && redis-cli -p "$p" --pipe <"$RUNDIR/jobs/$p" >/dev/null; done
  fi
}

rows=()
spread=""
for round in $(seq 1 "$ROUNDS"); do
  for workers in 1 2; do
    for topology in single cluster; do
      load "$topology"
      url="redis://127.0.0.1:$PORT/0"
      [ "$topology" = cluster ] && url="$CLUSTER_URL"
      pids=()
      for _ in $(seq 1 "$workers"); do
        REDIS_URL="$url" "$BIN" worker --queues "$QUEUE_LIST" -c "$CONCURRENCY" --log-level warning &
        pids+=($!)
      done
      rate=$(drain_rate "$topology")
      kill -TERM "${pids[@]}"; wait "${pids[@]}" || true
      pids=()
      name="one Redis"; [ "$topology" = cluster ] && name="cluster, 3 masters"
      rows+=("| $round | $name | $workers | $rate |"); echo "${rows[-1]}" >&2
      if [ "$topology" = cluster ] && [ "$workers" = 2 ] && [ "$round" = "$ROUNDS" ]; then
        for p in "${MASTERS[@]}"; do
          stats=$(redis-cli -p "$p" info commandstats | tr -d '\r')
          total=$(echo "$stats" | awk -F'[=,]' '/^cmdstat_/ { s += $2 } END { print s }')
          top=$(echo "$stats" | awk -F'[:=,]' '/^cmdstat_/ { print $3, substr($1, 9) }' | sort -rn | head -4 | awk '{ printf "%s%s %s", sep, $2, $1; sep=", " }')
          spread+="| $p | $total | $top |"$'\n'
        done
      fi
    done
  done
done

{
  echo "Drain of $JOBS pre-enqueued no-op jobs over six queues (two per master), worker processes with -c $CONCURRENCY, Redis $(redis-server --version | awk '{print $3}'), $(nproc) cores, $(date -u +%Y-%m-%d)."
  echo
  echo "| round | Redis | worker processes | jobs/s |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Commands per master during the last two-worker cluster drain (INFO commandstats, reset before it):"
  echo
  echo "| master port | commands | most called |"
  echo "|---|---|---|"
  printf '%s' "$spread"
} | tee "$OUT/cluster.md"
