#!/usr/bin/env bash
# `make bench`: every area's benchmark against its peer, one after another (each prints its own table).
#   Benchmarks/run.sh               all areas
#   Benchmarks/run.sh queue images  only these
# Each area's run.sh documents its knobs (JOBS, IMAGES, CLIPS, ...) and where its results go.
set -euo pipefail
cd "$(dirname "$0")/.."
areas=("$@")
if [ ${#areas[@]} -eq 0 ]; then
  areas=(queue bullmq cluster images ingest video audio mail llm push ops web)
fi
failed=()
for area in "${areas[@]}"; do
  script="Benchmarks/$area/run.sh"
  if [ ! -x "$script" ]; then
    echo "no benchmark named $area (expected $script)" >&2
    exit 2
  fi
  echo "=== $area"
  if ! "$script"; then
    failed+=("$area")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "benchmarks that failed: ${failed[*]}" >&2
  exit 1
fi
