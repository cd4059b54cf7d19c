#!/bin/sh
# seed_mix.sh - the replaced service's own load test (3 expectation reads per
# like toggle, random characters and users) on one mxnode with the default
# settings (rate limits off: one client address), paced at 50x its 235
# requests/s and unpaced, in one run. Goal (issue 10): >= 11,750 requests/s
# with p99 <= 160 ms and no error answers. Raw output:
# bench/results/seed_mix-<time>.txt.
# Usage: bench/seed_mix.sh [build-dir]    (MIX_SECONDS, MIX_CONNS)
set -eu
cd "$(dirname "$0")/.."
out=bench/results/seed_mix-$(date -u +%Y%m%dT%H%M%SZ).txt
{ echo "# $(date -u) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"; python3 bench/seed_mix_bench.py "${1:-build}" 2>&1; } | tee "$out"
