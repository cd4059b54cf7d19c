#!/bin/sh
# outbox.sh - outbox relay throughput and commit -> delivery lag (issue 11):
# one mxnode relaying to mxstub's webhook sink, with mariadbd and
# redis-server, on run-time loopback ports. Prints events/s with a sink
# that answers at once (goal >= 5,000/s on this machine) and with one that
# answers after 50 ms, then the p50/p99/max lag from commit to DONE at a
# steady rate below capacity (goal p99 <= 1 s). The raw output, with the
# load average before and after, goes to bench/results/outbox-<UTC time>.txt.
# Usage: bench/outbox.sh [build dir] [events] [steady rate/s] [seconds]
#        [concurrency]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
n=${2:-20000}
rate=${3:-2000}
secs=${4:-10}
conc=${5:-256}
cmake --build "$build" --target bench_outbox mxnode mxstub mxctl >/dev/null
export MX_BIN_DIR="$build/bin"
export MX_SHARED_DIR="${MX_SHARED_DIR:-$here/../shared}"
mkdir -p "$here/bench/results"
out="$here/bench/results/outbox-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
  echo "# bench/outbox.sh $n $rate $secs $conc  ($(nproc) cores)"
  echo "# before: $(uptime)"
  "$build/bin/bench_outbox" "$n" "$rate" "$secs" "$conc" 2>&1 | grep -v '^{"time"'
  echo "# after: $(uptime)"
} | tee "$out"
