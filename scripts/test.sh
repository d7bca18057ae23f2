#!/usr/bin/env bash
# Builds Conveyor, starts the private Redis and PostgreSQL, runs the whole suite against them, stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh start >/dev/null
trap 'scripts/services.sh stop' EXIT
source .run/env
export REDIS_URL DATABASE_URL
swift build --build-tests
CONVEYOR_BIN="$(swift build --show-bin-path)/conveyor"
export CONVEYOR_BIN
swift test --skip-build "$@"
