#!/usr/bin/env bash
# Audio waveform benchmark, Conveyor against the ffmpeg CLI in the same run, on a 60-minute MP3 and a 60-minute M4A:
#   - Conveyor: `audio.waveform`'s in-process work (decode, 8-bit min/max at 100 pixels/s, write .dat + JSON);
#   - the decode floor: `ffmpeg -i IN -f null -` (decode and convert to s16, nothing else);
#   - an image peer: `ffmpeg -i IN -filter_complex showwavespic` (a waveform picture, the CLI's own answer).
# Wall time and CPU time (user + system) of each process, RUNS runs alternating, best run counts (the machine may
# be shared: CPU time moves less than wall time when other builds compete for the cores).
# Writes Benchmarks/audio/results.md. Not part of `make test`.
#   MINUTES=60 RUNS=3 CONFIG=release Benchmarks/audio/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
MINUTES=${MINUTES:-60}
RUNS=${RUNS:-3}
CONFIG=${CONFIG:-release}
# Generated sources are kept between runs (encoding an hour of audio takes about a minute each).
CACHE=${AUDIO_BENCH_CACHE:-.run/audio-bench}
mkdir -p "$CACHE"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/conveyor-audio-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
min() { awk -v a="$1" -v b="$2" 'BEGIN{print (a == "" || b < a) ? b : a}'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{print b-a}'; }
# Runs a command and prints its CPU seconds (user + system) from /usr/bin/time.
cpu() { /usr/bin/time -f "%U %S" -o "$WORK/time" "$@" >/dev/null; awk '{print $1 + $2}' "$WORK/time"; }
ff() { ffmpeg -nostdin -v error -y "$@"; }

swift build -c "$CONFIG" --product AudioBench >&2
BENCH="$(swift build -c "$CONFIG" --show-bin-path)/AudioBench"

seconds=$((MINUTES * 60))
# Stereo with different channels: a tone under pink noise on the left, a lower tone and white noise on the right.
signal="sine=frequency=220:sample_rate=44100:duration=$seconds[a];anoisesrc=c=pink:r=44100:a=0.2:d=$seconds[b];[a][b]amix=inputs=2[l];"
signal+="sine=frequency=330:sample_rate=44100:duration=$seconds[c];anoisesrc=c=white:r=44100:a=0.1:d=$seconds[d];[c][d]amix=inputs=2[r];"
signal+="[l][r]join=inputs=2:channel_layout=stereo"
MP3="$CACHE/episode-${MINUTES}m.mp3"
M4A="$CACHE/episode-${MINUTES}m.m4a"
[ -s "$MP3" ] || { echo "encoding $MP3" >&2; ff -filter_complex "$signal" -c:a libmp3lame -b:a 128k "$MP3"; }
[ -s "$M4A" ] || { echo "encoding $M4A" >&2; ff -filter_complex "$signal" -c:a aac -b:a 128k "$M4A"; }

rows=""
for file in "$MP3" "$M4A"; do
  ours=""; floor=""; picture=""; ours_cpu=""; floor_cpu=""; picture_cpu=""
  for run in $(seq 1 "$RUNS"); do
    echo "$(basename "$file") run $run/$RUNS" >&2
    start=$(now); c=$(cpu "$BENCH" "$file" "$WORK/w" 8 100); ours=$(min "$ours" "$(elapsed "$start")"); ours_cpu=$(min "$ours_cpu" "$c")
    start=$(now); c=$(cpu ffmpeg -nostdin -v error -i "$file" -f null -); floor=$(min "$floor" "$(elapsed "$start")"); floor_cpu=$(min "$floor_cpu" "$c")
    start=$(now); c=$(cpu ffmpeg -nostdin -v error -y -i "$file" -filter_complex "showwavespic=s=1800x280" -frames:v 1 "$WORK/w.png")
    picture=$(min "$picture" "$(elapsed "$start")"); picture_cpu=$(min "$picture_cpu" "$c")
  done
  "$BENCH" "$file" "$WORK/w" 8 100 >"$WORK/ours.json"
  length=$(sed -E 's/.*"length":([0-9]+).*/\1/' "$WORK/ours.json")
  [ "$length" -ge $((seconds * 100)) ] || { echo "waveform of $file has $length pixels, expected $((seconds * 100))" >&2; exit 1; }
  rows+=$(awk -v f="$(basename "$file")" -v o="$ours" -v fl="$floor" -v p="$picture" -v oc="$ours_cpu" -v fc="$floor_cpu" -v pc="$picture_cpu" 'BEGIN{
    printf "| %s | %.2f (%.2f) | %.2f (%.2f) | %.2f (%.2f) | %.2fx (%.2fx) | %.2fx (%.2fx) faster |\n", f, o, oc, fl, fc, p, pc, o/fl, oc/fc, p/o, pc/oc }')
  rows+=$'\n'
done
{
  echo "# Audio waveform benchmark results"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores (load $(cut -d' ' -f1 /proc/loadavg)), best of $RUNS, FFmpeg $(ffmpeg -version | head -1 | awk '{print $3}'), build $CONFIG, ${MINUTES}-minute 44.1 kHz stereo sources at 128 kb/s."
  echo
  echo "Wall seconds (CPU seconds, user + system, in brackets)."
  echo
  echo "| Source | Conveyor waveform | \`ffmpeg -f null -\` decode floor | \`ffmpeg showwavespic\` | Conveyor / floor | Conveyor vs showwavespic |"
  echo "|---|---|---|---|---|---|"
  printf "%s" "$rows"
} > Benchmarks/audio/results.md
cat Benchmarks/audio/results.md
