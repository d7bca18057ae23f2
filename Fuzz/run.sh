#!/usr/bin/env bash
# Builds the envelope fuzz target (libFuzzer, `swiftc -sanitize=fuzzer`) from the few ConveyorCore sources it
# exercises, then fuzzes for a bounded time from the seed corpus. Exits non-zero on a crash (the input is kept
# as crash-* in the work folder it names). Usage: Fuzz/run.sh [SECONDS]   (default 45; FUZZ_SECONDS too)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-${FUZZ_SECONDS:-45}}
core=Sources/ConveyorCore
sources=(
  Fuzz/EnvelopeFuzz.swift
  "$core"/JSON/JSONValue.swift "$core"/JSON/JSONValue+Parsing.swift "$core"/JSON/JSONValue+Serialization.swift
  "$core"/Queue/Job.swift "$core"/Queue/DeliveryReceipt.swift "$core"/Queue/JobTransitions.swift "$core"/Queue/RetryPolicy.swift
  "$core"/Handlers/JobFailure.swift "$core"/Handlers/ErrorClass.swift "$core"/Handlers/StoredErrorMessage.swift "$core"/Numbers/Saturating.swift
  "$core"/Queue/JobResultRecord.swift "$core"/Queue/JobResultCopy.swift "$core"/Handlers/JobObserver.swift
)
out=.build/fuzz
mkdir -p "$out"
binary="$out/envelope-fuzz"
# Rebuilt only when a source changed: a cheap step in `make test`.
if [ ! -x "$binary" ] || [ -n "$(find "${sources[@]}" -newer "$binary" | head -1)" ]; then
  swiftc -sanitize=fuzzer -parse-as-library -O -package-name conveyor -module-name EnvelopeFuzz "${sources[@]}" -o "$binary"
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/conveyor-fuzz.XXXXXX")
mkdir -p "$work/corpus" "$work/seeds"
cp Fuzz/corpus/envelope/* "$work/seeds/"
status=0
# -max_len: envelopes of up to 64 KiB; -timeout: one input may not take 10 s; -rss_limit_mb: nor 2 GB.
# Swift's own backtracer would catch the trap first and exit before libFuzzer saves the input.
SWIFT_BACKTRACE=enable=no "$binary" "$work/corpus" "$work/seeds" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$work/" -print_final_stats=1 >"$work/fuzz.log" 2>&1 || status=$?
tail -n 12 "$work/fuzz.log"
if [ "$status" -ne 0 ] || ls "$work"/crash-* "$work"/timeout-* "$work"/oom-* >/dev/null 2>&1; then
  echo "envelope fuzzer FAILED (status $status); inputs and log in $work"
  exit 1
fi
rm -rf "$work"
echo "envelope fuzzer: no crash in ${seconds}s"
