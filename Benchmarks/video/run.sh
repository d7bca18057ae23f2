#!/usr/bin/env bash
# Video benchmarks, Conveyor against its peers in the same run:
#   1. probing N generated clips in-process (libavformat) vs spawning `ffprobe` per clip;
#   2. transcoding a 1080p clip with Conveyor's web profile vs the `ffmpeg` CLI with the same settings.
# Writes Benchmarks/video/results.md. Not part of `make test`.
# Each side runs RUNS times, alternating, and the best run counts (the machine may be shared).
#   CLIPS=40 SECONDS_1080P=10 RUNS=3 CONFIG=release Benchmarks/video/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
CLIPS=${CLIPS:-40}
SECONDS_1080P=${SECONDS_1080P:-10}
CONFIG=${CONFIG:-release}
PRESET=${PRESET:-veryfast}
RUNS=${RUNS:-3}
min() { awk -v a="$1" -v b="$2" 'BEGIN{print (a == "" || b < a) ? b : a}'; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/conveyor-video-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

swift build -c "$CONFIG" --product VideoBench >&2
BENCH="$(swift build -c "$CONFIG" --show-bin-path)/VideoBench"

now() { date +%s.%N; }
ff() { ffmpeg -nostdin -v error -y "$@"; }

echo "generating $CLIPS clips and a ${SECONDS_1080P}s 1080p source in $WORK" >&2
sizes=(320x240 640x360 1280x720 1920x1080)
clips=()
for i in $(seq 1 "$CLIPS"); do
  size=${sizes[$((i % 4))]}
  ext=$([ $((i % 2)) -eq 0 ] && echo mp4 || echo mkv)
  f="$WORK/clip$i.$ext"
  ff -f lavfi -i "testsrc=s=$size:r=25:d=1" -f lavfi -i "sine=frequency=$((200 + i)):duration=1" \
     -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac "$f"
  clips+=("$f")
done
SRC="$WORK/source1080p.mp4"
ff -f lavfi -i "testsrc2=s=1920x1080:r=30:d=$SECONDS_1080P" -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$SECONDS_1080P" \
   -c:v libx264 -preset ultrafast -crf 16 -pix_fmt yuv420p -c:a aac -b:a 192k "$SRC"

# 1. Probe, 2. transcode with the same profile through the CLI; best of RUNS, alternating.
OURS="$WORK/conveyor.mp4"; THEIRS="$WORK/ffmpeg.mp4"
conveyor_probe=""; ffprobe_probe=""; conveyor_tx=""; ffmpeg_tx=""
for run in $(seq 1 "$RUNS"); do
  echo "run $run/$RUNS" >&2
  t=$("$BENCH" probe "${clips[@]}" | sed -E 's/.*"seconds":([0-9.e-]+).*/\1/')
  conveyor_probe=$(min "$conveyor_probe" "$t")
  start=$(now)
  for f in "${clips[@]}"; do ffprobe -v error -of json -show_format -show_streams "$f" >/dev/null; done
  ffprobe_probe=$(min "$ffprobe_probe" "$(awk -v a="$start" -v b="$(now)" 'BEGIN{print b-a}')")

  t=$("$BENCH" transcode "$SRC" "$OURS" 1080p "$PRESET" | sed -E 's/.*"seconds":([0-9.e-]+).*/\1/')
  conveyor_tx=$(min "$conveyor_tx" "$t")
  start=$(now)
  ff -i "$SRC" -map 0:v:0 -map '0:a:0?' -c:v libx264 -preset "$PRESET" -crf 23 -maxrate 6000000 -bufsize 12000000 \
     -profile:v high -pix_fmt yuv420p -g 60 -c:a aac -b:a 128k -ac 2 -map_metadata -1 -movflags +faststart "$THEIRS"
  ffmpeg_tx=$(min "$ffmpeg_tx" "$(awk -v a="$start" -v b="$(now)" 'BEGIN{print b-a}')")
done
frames() { ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$1"; }
our_frames=$(frames "$OURS"); their_frames=$(frames "$THEIRS")
our_size=$(stat -c %s "$OURS"); their_size=$(stat -c %s "$THEIRS")

table=$(awk -v n="$CLIPS" -v cp="$conveyor_probe" -v fp="$ffprobe_probe" \
  -v ct="$conveyor_tx" -v ft="$ffmpeg_tx" -v cf="$our_frames" -v tf="$their_frames" -v cs="$our_size" -v ts="$their_size" \
  -v preset="$PRESET" -v secs="$SECONDS_1080P" 'BEGIN{
  printf "| Benchmark | Conveyor | Peer | Conveyor vs peer |\n|---|---|---|---|\n";
  printf "| Probe %d clips (ms per clip) | %.2f (in-process) | %.2f (`ffprobe` per clip) | %.1fx faster |\n", n, cp*1000/n, fp*1000/n, fp/cp;
  printf "| Transcode %ds 1080p30, %s, CRF 23 (fps) | %.1f | %.1f (`ffmpeg` CLI) | %.2fx |\n", secs, preset, cf/ct, tf/ft, (cf/ct)/(tf/ft);
  printf "| Transcode output size (bytes) | %d | %d | %+.1f%% |\n", cs, ts, (cs-ts)*100/ts;
}')
{
  echo "# Video benchmark results"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores (load $(cut -d' ' -f1 /proc/loadavg)), best of $RUNS, FFmpeg $(ffmpeg -version | head -1 | awk '{print $3}'), build $CONFIG."
  echo
  echo "$table"
} > Benchmarks/video/results.md
cat Benchmarks/video/results.md
