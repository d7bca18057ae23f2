#!/usr/bin/env bash
# The dashboard's budget, measured against Sidekiq 6.4's own Web UI (Debian's ruby-sidekiq under rackup/WEBrick)
# reading the same Redis in the same run:
#   1. page latency with 100,000 jobs in the dead set (and 1,000 in retry): each page requested REQUESTS times in a
#      row on one kept-alive connection, p50/p95/p99; target p95 < 100 ms for Conveyor's pages.
#   2. a worker's throughput draining JOBS no-op jobs, alone and while OVERVIEW_CLIENTS clients each load the
#      overview every second (5 s is the page's own refresh); target: within 5 %. Rounds interleave the two.
# Writes Benchmarks/results/web.md.
#   Benchmarks/web/run.sh [DEAD] [JOBS] [ROUNDS]     (defaults 100000, 200000, 5; release build)
# Each round drains twice, alone and beside the refreshes, in alternating order; the ratio is taken per round
# (a slow spell on a shared machine hits both halves of a round alike), and the dashboard's own CPU time per
# overview load is read from /proc.
# PAGES_ONLY=1 measures the pages and skips the throughput part.
# Ports: CONVEYOR_REDIS_PORT / CONVEYOR_PG_PORT / CONVEYOR_S3_PORT as for the tests (default: the benchmark ports).
set -euo pipefail
cd "$(dirname "$0")/../.."
DEAD=${1:-100000}
JOBS=${2:-200000}
ROUNDS=${3:-5}
REQUESTS=${REQUESTS:-200}
OVERVIEW_CLIENTS=${OVERVIEW_CLIENTS:-5}
export CONVEYOR_REDIS_PORT=${CONVEYOR_REDIS_PORT:-6590} CONVEYOR_PG_PORT=${CONVEYOR_PG_PORT:-5639} CONVEYOR_S3_PORT=${CONVEYOR_S3_PORT:-8533}
WEB_PORT=${WEB_PORT:-7418}
SIDEKIQ_PORT=${SIDEKIQ_PORT:-7419}

scripts/setup.sh
scripts/services.sh start >/dev/null
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  scripts/services.sh stop
}
trap cleanup EXIT
source .run/env
export REDIS_URL DATABASE_URL
swift build -c release --product conveyor >/dev/null
BIN="$(swift build -c release --show-bin-path)/conveyor"
REDIS_PORT=$(echo "$REDIS_URL" | sed -E 's#.*:([0-9]+)/.*#\1#')
"$BIN" migrate >/dev/null
TMP=$(mktemp -d)

# No namespace: Sidekiq 6's Web UI reads the plain layout. This Redis is the benchmark's own.
redis-cli -p "$REDIS_PORT" flushdb >/dev/null
python3 - "$DEAD" <<'PY' | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
import json, sys, time
n = int(sys.argv[1])
out = sys.stdout.buffer
def cmd(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    out.write(b"".join(parts))
now = time.time()
classes = ["image.thumbnail", "email.send", "summary.generate", "media.ingest", "video.transcode"]
errors = [("ImageTooLarge", "source uploads/x.jpg: 42000x42000 exceeds the 50 megapixel limit"), ("SMTPRejected", "550 mailbox unavailable"),
          ("LLMUnavailable", "breaker open"), ("UnsupportedMedia", "not media Conveyor accepts"), ("MediaDeadline", "deadline passed")]
for i in range(n):
    at = now - i * 0.5
    c = classes[i % 5]
    e = errors[i % 5] if i % 1000 else ("RareFailure", "only one in a thousand")
    job = {"class": c, "args": [{"upload_id": f"u{i}", "source": f"uploads/2026/{i}.jpg"}], "queue": "media" if i % 2 else "default",
           "jid": "%024x" % (0xdead0000000000 + i), "retry": 3, "created_at": at - 100, "enqueued_at": at - 100,
           "error_class": e[0], "error_message": e[1], "failed_at": at, "retry_count": 3}
    cmd("ZADD", "dead", "%.3f" % at, json.dumps(job))
    if i < 1000:
        cmd("ZADD", "retry", "%.3f" % (now + i), json.dumps(dict(job, jid="%024x" % (0xbeef0000000000 + i))))
cmd("SADD", "queues", "default", "media", "bench")
PY
echo "web benchmark: $(redis-cli -p "$REDIS_PORT" zcard dead) dead, $(redis-cli -p "$REDIS_PORT" zcard retry) retry jobs loaded"
DEEP_JID=$(printf '%024x' $((0xdead0000000000 + DEAD / 2)))

# Conveyor's dashboard (release) and Sidekiq's Web UI.
CONVEYOR_WEB_REFRESH_SECONDS=5 "$BIN" web --addr "127.0.0.1:$WEB_PORT" --log-level warning >"$TMP/web.out" 2>"$TMP/web.log" &
WEB_PID=$!
pids+=($WEB_PID)
cat >"$TMP/config.ru" <<'RU'
require "securerandom"
require "sidekiq"
require "sidekiq/web"
Sidekiq.configure_client { |c| c.redis = { url: ENV.fetch("REDIS_URL") } }
use Rack::Session::Cookie, secret: SecureRandom.hex(32), same_site: true
run Sidekiq::Web
RU
rackup "$TMP/config.ru" -s webrick -o 127.0.0.1 -p "$SIDEKIQ_PORT" -E deployment -q >"$TMP/sidekiq.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do
  curl -sf "http://127.0.0.1:$WEB_PORT/healthz" >/dev/null && curl -sf "http://127.0.0.1:$SIDEKIQ_PORT/" >/dev/null && break
  sleep 0.1
done

# 1. Page latency, one page after another, each REQUESTS times.
python3 - "$WEB_PORT" "$SIDEKIQ_PORT" "$REQUESTS" "$DEEP_JID" "$DEAD" >"$TMP/pages.md" <<'PY'
import http.client, sys, time
web, sidekiq, n, jid, dead = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
deep = dead // 25 // 2
pages = [
    ("overview", "/", "/"),
    ("queues", "/queues", "/queues"),
    ("busy", "/busy", "/busy"),
    ("retries (1,000)", "/retry", "/retries"),
    ("dead, first page", "/dead", "/morgue"),
    (f"dead, page {deep}", f"/dead?page={deep}", f"/morgue?page={deep}"),
    ("dead, filtered by class (page 1)", "/dead?class=email.send", None),
    ("dead, filter matching 1 in 1,000 (page 1)", "/dead?error=%5ERareFailure", None),
    ("dead, filter matching nothing (scans all)", "/dead?error=%5ENoSuchError", None),
    ("job detail (deep in the set)", None, None),
    ("lookup by jid (scans dead, retry, scheduled)", f"/lookup?q={jid}", None),
]
def measure(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    began = time.perf_counter()
    for i in range(n + 5):
        if len(times) >= 20 and time.perf_counter() - began > 20:
            break  # a slow page: 20 samples or 20 seconds, whichever is more
        t = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise SystemExit(f"{port}{path}: HTTP {r.status} {body[:200]!r}")
        if i >= 5:
            times.append((time.perf_counter() - t) * 1000)
    conn.close()
    times.sort()
    pct = lambda p: times[min(len(times) - 1, int(p / 100 * len(times)))]
    return pct(50), pct(95), pct(99), len(times)
print("| Page | Conveyor p50 / p95 / p99 ms (n) | Sidekiq 6.4 Web p50 / p95 / p99 ms (n) |")
print("|---|---|---|")
for name, ours, theirs in pages:
    if ours is None:
        # The link the dead page itself gives: jid and score.
        import re
        conn = http.client.HTTPConnection("127.0.0.1", web, timeout=30)
        conn.request("GET", f"/dead?page={deep}")
        html = conn.getresponse().read().decode()
        ours = re.search(r'href="(/dead/job\?[^"]+)"', html).group(1).replace("&amp;", "&")
    a = measure(web, ours)
    b = measure(sidekiq, theirs) if theirs else None
    cell = lambda m: "%.1f / %.1f / %.1f (%d)" % m if m else "-"
    print(f"| {name} | {cell(a)} | {cell(b)} |", flush=True)
PY
cat "$TMP/pages.md"

if [ -n "${PAGES_ONLY:-}" ]; then
  mkdir -p Benchmarks/results
  { echo "## Dashboard page latency only (PAGES_ONLY)"; echo; cat "$TMP/pages.md"; } > Benchmarks/results/web.md
  exit 0
fi

# 2. Worker throughput alone and beside overview refreshes.
drain() {
  local refreshing=$1 poller=""
  redis-cli -p "$REDIS_PORT" del queue:bench stat:processed >/dev/null
  python3 - "$JOBS" <<'PY' | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
import sys, time
n = int(sys.argv[1]); out = sys.stdout.buffer; now = time.time()
for i in range(n):
    b = ('{"class":"noop","args":[],"queue":"bench","jid":"bench%016d","retry":3,"created_at":%.3f,"enqueued_at":%.3f}' % (i, now, now)).encode()
    out.write(b"*3\r\n$5\r\nLPUSH\r\n$11\r\nqueue:bench\r\n$%d\r\n%s\r\n" % (len(b), b))
PY
  if [ "$refreshing" = yes ]; then
    python3 - "$WEB_PORT" "$OVERVIEW_CLIENTS" "$TMP/refreshes" <<'PY' &
import http.client, sys, threading, time
port, clients, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
count = [0]
def client(k):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    start = time.monotonic() + k / clients
    while True:
        time.sleep(max(0, start - time.monotonic()))
        conn.request("GET", "/"); conn.getresponse().read()
        conn.request("GET", "/assets/app.css"); conn.getresponse().read()
        count[0] += 1
        open(out, "w").write(str(count[0]))
        start += 1
for k in range(clients):
    threading.Thread(target=client, args=(k,), daemon=True).start()
while True:
    time.sleep(1)
PY
    poller=$!
  fi
  local start end
  start=$(date +%s.%N)
  CONVEYOR_RESULTS_FLUSH_MS=50 "$BIN" worker --queues bench --concurrency 20 --log-level warning &
  local pid=$!
  while [ "$(redis-cli -p "$REDIS_PORT" get stat:processed)" != "$JOBS" ]; do sleep 0.05; done
  end=$(date +%s.%N)
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  [ -n "$poller" ] && { kill "$poller"; wait "$poller" 2>/dev/null || true; }
  python3 -c "print(round($JOBS / ($end - $start)))"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$WEB_PID/stat"; }
alone=""; beside=""; ratios=""; loads=0; ticks=0
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order="no yes"; else order="yes no"; fi
  for mode in $order; do
    if [ "$mode" = yes ]; then
      rm -f "$TMP/refreshes"; t0=$(cpu_ticks)
      b1=$(drain yes)
      ticks=$((ticks + $(cpu_ticks) - t0)); loads=$((loads + $(cat "$TMP/refreshes" 2>/dev/null || echo 0)))
    else
      a1=$(drain no)
    fi
  done
  alone+="$a1 "; beside+="$b1 "
  ratios+="$(python3 -c "print(round(100 * $b1 / $a1, 1))") "
done
a=$(printf '%s\n' $alone | median)
b=$(printf '%s\n' $beside | median)
ratio=$(printf '%s\n' $ratios | median)
per_load=$(python3 -c "print(round(1000 * $ticks / $(getconf CLK_TCK) / max(1, $loads), 2))")
mkdir -p Benchmarks/results
{
  echo "## Dashboard page latency, $(redis-cli -p "$REDIS_PORT" zcard dead) dead jobs ($(date -u +%Y-%m-%d), $(nproc) cores, $REQUESTS requests per page)"
  echo
  cat "$TMP/pages.md"
  echo
  echo "## Worker throughput, $JOBS no-op jobs, concurrency 20, DATABASE_URL set (median of $ROUNDS, interleaved)"
  echo
  echo "| Setup | Runs (jobs/s) | Median jobs/s |"
  echo "|---|---|---|"
  echo "| worker alone | $alone | $a |"
  echo "| worker + $OVERVIEW_CLIENTS clients loading the overview every second | $beside | $b |"
  echo
  echo "Beside/alone per round: $ratios% (median $ratio %). The dashboard spent $per_load ms of CPU per overview load"
  echo "(with its stylesheet), over $loads loads. Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
} > Benchmarks/results/web.md
cat Benchmarks/results/web.md
rm -rf "$TMP"
