#!/usr/bin/env bash
# 1,000 llm.summarize jobs with the primary provider hard-down (connection refused) versus the same jobs
# sent to the fallback alone, in one run, against the local provider stand-in (Tests/SummariesTests/
# fake_llm_server.py). Writes Benchmarks/llm/results.md. Not part of `make test`.
#   JOBS=1000 CONCURRENCY=8 CONFIG=debug (or release) Benchmarks/llm/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
JOBS="${JOBS:-1000}"
CONCURRENCY="${CONCURRENCY:-8}"
CONFIG="${CONFIG:-debug}"

swift build -c "$CONFIG" --product llm-bench >/dev/null
BIN="$(swift build -c "$CONFIG" --show-bin-path)/llm-bench"

# The stand-in server exits when its stdin closes.
coproc SERVER { python3 -u Tests/SummariesTests/fake_llm_server.py; }
read -r line <&"${SERVER[0]}"
PORT="${line#PORT }"
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT

# A loopback port with nothing listening: the primary is hard-down (connection refused).
DOWN_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"

{
  echo "# LLM summaries: primary hard-down vs fallback only"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, build $CONFIG, local stand-in provider on loopback (no model time)."
  echo
  "$BIN" "http://127.0.0.1:$PORT" "$JOBS" "$CONCURRENCY" "http://127.0.0.1:$DOWN_PORT/v1"
} | tee Benchmarks/llm/results.md
