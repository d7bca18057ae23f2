#!/usr/bin/env bash
# Thumbnails of generated 12 MP JPEGs into three WebP variants (320, 800, 1600 px boxes, q80):
# Conveyor's helper pool vs vipsthumbnail vs ImageMagick convert -thumbnail, in the same run, plus what WebP
# encoding alone costs. Two corpora: photo-like (fractal, 1/f spectrum, sensor grain) and noise (static).
# Writes Benchmarks/images/results.md. Not part of `make test`.
#
#   Benchmarks/images/run.sh              # 24 images of 12 MP, 2 parallel jobs
#   IMAGES=8 PARALLEL=2 CONTENT=photo Benchmarks/images/run.sh
#   EFFORT=2 Benchmarks/images/run.sh      # libwebp effort 2 for every tool (default: each tool's own, 4)
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGES=${IMAGES:-24}
PARALLEL=${PARALLEL:-2}
ROUNDS=${ROUNDS:-3}
WORK=${WORK:-.run/bench-images}
CONTENT=${CONTENT:-photo,noise}
EFFORT_ARGS=()
OUT=${OUT:-Benchmarks/images/results.md}
if [[ -n "${EFFORT:-}" ]]; then EFFORT_ARGS=(--effort "$EFFORT"); OUT=${OUT%.md}-effort$EFFORT.md; fi

if [[ -z "${CONVEYOR_BIN:-}" ]]; then
  swift build -c release --product conveyor >&2
  CONVEYOR_BIN="$(swift build -c release --show-bin-path)/conveyor"
fi
export CONVEYOR_BIN
for tool in vips vipsthumbnail convert python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (scripts/setup.sh installs it)" >&2; exit 1; }
done
exec python3 Benchmarks/images/bench.py --images "$IMAGES" --parallel "$PARALLEL" --rounds "$ROUNDS" --work "$WORK" --content "$CONTENT" "${EFFORT_ARGS[@]}" \
  --conveyor "$CONVEYOR_BIN" --out "$OUT"
