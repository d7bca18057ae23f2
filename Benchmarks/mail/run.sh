#!/usr/bin/env bash
# email.send throughput to a local aiosmtpd sink (messages discarded): Conveyor's handler with one kept-alive
# SMTP connection per sending thread vs a new connection per message, and Python's smtplib as a peer.
#   Benchmarks/mail/run.sh            # MESSAGES=2000 CONFIG=release by default
#   MESSAGES=500 CONFIG=debug REPEAT=1 Benchmarks/mail/run.sh
# Each row is the median of REPEAT runs (default 3).
# Writes Benchmarks/results/mail.md (a Markdown table) and prints it.
set -euo pipefail
cd "$(dirname "$0")/../.."
MESSAGES=${MESSAGES:-2000}
CONFIG=${CONFIG:-release}
OUT=Benchmarks/results
mkdir -p "$OUT"

swift build -c "$CONFIG" --product mail-bench >/dev/null
BIN="$(swift build -c "$CONFIG" --show-bin-path)/mail-bench"

SINK_DIR=$(mktemp -d)
SINK_OUT=$(mktemp)
coproc SINK { /usr/bin/python3 Tests/MailTests/smtp_sink.py "$SINK_DIR" --discard; }
read -r -t 20 ready port <&"${SINK[0]}" || { echo "mail benchmark: sink did not start" >&2; exit 1; }
[ "$ready" = READY ] || { echo "mail benchmark: sink said $ready" >&2; exit 1; }
cleanup() { kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true; rm -rf "$SINK_DIR" "$SINK_OUT"; }
trap cleanup EXIT
URL="smtp://127.0.0.1:$port"

REPEAT=${REPEAT:-3}
row() { # name connections command...: the median of REPEAT runs
  local name=$1 conns=$2; shift 2
  local runs=()
  for _ in $(seq 1 "$REPEAT"); do runs+=("$("$@")"); done
  read -r n secs rate < <(printf '%s\n' "${runs[@]}" | sort -k3 -n | sed -n "$(( (REPEAT + 1) / 2 ))p")
  printf '| %s | %s | %s | %s | %s |\n' "$name" "$conns" "$n" "$secs" "$rate"
}

{
  echo "Mail: $MESSAGES messages per run, median of $REPEAT runs, to a local aiosmtpd sink, no TLS ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $CONFIG build, libcurl $(curl-config --version | cut -d' ' -f2))"
  echo
  echo "| sender | connections | messages | seconds | messages/s |"
  echo "|---|---|---|---|---|"
  for c in 1 4; do
    row "Conveyor email.send, connection reused" "$c" "$BIN" "$URL" "$MESSAGES" "$c" reuse
    row "Conveyor email.send, new connection per message" "$c" "$BIN" "$URL" "$MESSAGES" "$c" fresh
    row "Python smtplib, connection reused (peer)" "$c" /usr/bin/python3 Benchmarks/mail/smtplib_peer.py 127.0.0.1 "$port" "$MESSAGES" "$c"
  done
} | tee "$OUT/mail.md"
