#!/usr/bin/env bash
# Enqueues a few example jobs of every class this build runs, so a newcomer sees them flow.
set -euo pipefail
BIN=$1
enqueue() { echo "examples: enqueue $* -> jid $("$BIN" enqueue "$@")"; }
enqueue noop
enqueue sleep --args '{"ms": 1500}'
enqueue noop --in 3s
enqueue sleep --args '{"ms": "not a number"}'   # a bad payload: goes straight to the dead set with its error
for i in 1 2 3 4 5; do enqueue sleep --args "{\"ms\": $((i * 100))}"; done
