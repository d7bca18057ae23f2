#!/usr/bin/env bash
# Web Push sends per second from one process to a local stand-in push service (Tests/PushTests/push_service.py
# --accept-only: every POST answered 201 unread), Conveyor's push.send path (push-bench: border checks, RFC 8291
# encryption, VAPID token, libcurl) against pywebpush 2.5.0 (requests, one Session per thread), same run, same sink.
#   Benchmarks/push/run.sh                      # PUSHES=2000 CONFIG=release REPEAT=3
#   PUSHES=500 CONFIG=debug REPEAT=1 Benchmarks/push/run.sh
#   PUSH_BENCH_BIN=.build-push/release/push-bench Benchmarks/push/run.sh
# Each row is the median of REPEAT runs. Writes Benchmarks/results/push.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/../.."
PUSHES=${PUSHES:-2000}
CONFIG=${CONFIG:-release}
REPEAT=${REPEAT:-3}
OUT=Benchmarks/results
mkdir -p "$OUT"

# PUSH_BENCH_BIN: an already built push-bench (say from another --scratch-path) instead of building here.
if [ -n "${PUSH_BENCH_BIN:-}" ]; then
  BIN=$PUSH_BENCH_BIN
else
  swift build -c "$CONFIG" --product push-bench >/dev/null
  BIN="$(swift build -c "$CONFIG" --show-bin-path)/push-bench"
fi

SUBS=$(mktemp)
echo '{}' >"$SUBS"
coproc SINK { python3 -u Tests/PushTests/push_service.py "$SUBS" --accept-only; }
read -r -t 20 word port <&"${SINK[0]}" || { echo "push benchmark: stand-in did not start" >&2; exit 1; }
[ "$word" = PORT ] || { echo "push benchmark: stand-in said $word" >&2; exit 1; }
cleanup() { kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true; rm -f "$SUBS"; }
trap cleanup EXIT
ENDPOINT="http://127.0.0.1:$port/bench/s"

row() { # name concurrency command...: the median (by rate) of REPEAT runs
  local name=$1 conc=$2; shift 2
  local runs=()
  for _ in $(seq 1 "$REPEAT"); do runs+=("$("$@")"); done
  read -r n secs rate p99 < <(printf '%s\n' "${runs[@]}" | sort -k3 -n | sed -n "$(( (REPEAT + 1) / 2 ))p")
  printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$conc" "$n" "$secs" "$rate" "$p99"
}

{
  echo "Web Push: $PUSHES pushes per run, median of $REPEAT runs, one process each, to a local accept-only stand-in over plain HTTP ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $CONFIG build, libcurl $(curl-config --version | cut -d' ' -f2), pywebpush $(python3 -c 'import importlib.metadata as m; print(m.version("pywebpush"))'))"
  echo
  echo "| sender | at once | pushes | seconds | pushes/s | p99 ms |"
  echo "|---|---|---|---|---|---|"
  for c in 1 8; do
    row "Conveyor push.send path" "$c" "$BIN" "$ENDPOINT" "$PUSHES" "$c"
    row "pywebpush 2.5.0 (peer)" "$c" python3 Benchmarks/push/pywebpush_peer.py "$ENDPOINT" "$PUSHES" "$c"
  done
} | tee "$OUT/push.md"
