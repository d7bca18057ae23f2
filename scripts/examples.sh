#!/usr/bin/env bash
# Enqueues a few example jobs of every class this build runs, so a newcomer sees them flow:
# built-in jobs (one with a bad payload, which goes to the dead set), a photo, a video and a voice-note upload under the media
# root, a welcome email (an .eml file unless SMTP_URL is set) and a post summary (the built-in summarizer unless
# an LLM key is set).
set -euo pipefail
BIN=$1
MEDIA=${CONVEYOR_MEDIA_ROOT:-.run/media}
enqueue() { echo "examples: enqueue $* -> jid $("$BIN" enqueue "$@")"; }

enqueue noop
enqueue sleep --args '{"ms": 1500}'
enqueue noop --in 3s
enqueue sleep --args '{"ms": "not a number"}'   # a bad payload: goes straight to the dead set with its error
for i in 1 2 3; do enqueue sleep --args "{\"ms\": $((i * 100))}"; done

# Uploads as an API would leave them: a photo with GPS in its EXIF, a short video, and a voice note.
mkdir -p "$MEDIA/uploads/examples"
photo="$MEDIA/uploads/examples/photo.jpg"
clip="$MEDIA/uploads/examples/clip.mp4"
voice="$MEDIA/uploads/examples/voice.mp3"
if command -v ffmpeg >/dev/null; then
  [ -f "$photo" ] || ffmpeg -loglevel error -f lavfi -i testsrc2=s=1600x1200 -frames:v 1 -q:v 3 -y "$photo"
  if command -v exiftool >/dev/null; then
    exiftool -q -overwrite_original -GPSLatitude=48.8584 -GPSLatitudeRef=N -GPSLongitude=2.2945 -GPSLongitudeRef=E \
      -Orientation#=6 "$photo" || true
  fi
  [ -f "$clip" ] || ffmpeg -loglevel error -f lavfi -i testsrc2=s=640x360:r=30 -f lavfi -i sine=f=440 -t 2 \
    -c:v libx264 -pix_fmt yuv420p -c:a aac -shortest -y "$clip"
  enqueue media.ingest --args '{"upload_id": "example-photo", "source": "uploads/examples/photo.jpg"}'
  enqueue media.ingest --args '{"upload_id": "example-video", "source": "uploads/examples/clip.mp4"}'
  [ -f "$voice" ] || ffmpeg -loglevel error -f lavfi -i "sine=f=220:d=4" -f lavfi -i "anoisesrc=d=4:a=0.05" \
    -filter_complex amix=inputs=2 -c:a libmp3lame -b:a 96k -y "$voice"
  enqueue media.ingest --args '{"upload_id": "example-voice", "source": "uploads/examples/voice.mp3"}'
  enqueue audio.waveform --args '{"source": "uploads/examples/voice.mp3", "output": "waveforms/example", "bits": 8,
    "image": {"width": 600, "height": 120, "color": "#3a7bd5"}}'
  enqueue image.thumbnail --args '{"source": "uploads/examples/photo.jpg", "destination": "thumbnails/example",
    "variants": [{"name": "card", "width": 640, "height": 360, "fit": "cover", "format": "webp", "quality": 80}]}'
fi
enqueue media.ingest --args '{"upload_id": "example-missing", "source": "uploads/examples/nothing-here.jpg"}'

enqueue email.send --args '{"template": "welcome", "to": "newcomer@example.net", "to_name": "Sam Newcomer",
  "data": {"name": "Sam", "product": "Conveyor", "login_url": "https://conveyor.example/login"},
  "idempotency_key": "welcome/example"}'
enqueue llm.summarize --args '{"post_id": "example-post", "title": "Protected bike lanes coming to Main Street",
  "body": "The council voted 7-2 last night to add protected bike lanes on Main Street between 1st and 9th. Work starts in March and takes about ten weeks. Street parking moves to the side streets; delivery bays stay.",
  "comments": ["Finally! My commute just got safer.", "What about the shops during construction?"], "max_words": 40}'
