#!/bin/sh
# singleflight.sh - cluster single-flight under a cold stampede (issue 5):
# two mxnode processes, redis-server, mariadbd and mxstub with upstream
# latency (default 200 ms) on run-time loopback ports; 1,000 concurrent
# requests for one character whose ocid is known but whose equipment and
# document are cold, half on each node. Prints JSON lines
# {"bench", "value", "unit"}: upstream calls (goal: exactly 1, the
# item-equipment call), p50/p99/max latency (goal: p99 within 50 ms of the
# upstream latency), then the same stampede warm (what 1,000 connections
# cost on their own). Usage: bench/singleflight.sh [build dir] [latency ms]
# [requests] [gzip|plain]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
latency=${2:-200}
n=${3:-1000}
gz=${4:-gzip} # clients accept gzip, as browsers and API clients do; "plain" to refuse it
cmake --build "$build" --target bench_singleflight >/dev/null
export MX_BIN_DIR="$build/bin"
export MX_SHARED_DIR="${MX_SHARED_DIR:-$here/../shared}"
exec "$build/bin/bench_singleflight" "$latency" "$n" $gz
