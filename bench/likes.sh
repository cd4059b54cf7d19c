#!/bin/sh
# likes.sh - toggles/s through three mxnode (wrk, tokens in a Lua script)
# against the same toggle script driven straight at the same Redis by
# redis-benchmark (the ceiling), in one run; p99 and the like-sync lag.
# Goals (issue 10): >= 0.6x the ceiling, p99 <= 10 ms, sync lag p99 <= 2 s.
# Needs wrk, redis-server/redis-benchmark, mariadb (scripts/lib.sh
# MX_BENCH_PKGS). Raw output: bench/results/likes-<time>.txt.
# Usage: bench/likes.sh [build-dir]    (LIKES_SECONDS, LIKES_CONNS)
set -eu
cd "$(dirname "$0")/.."
out=bench/results/likes-$(date -u +%Y%m%dT%H%M%SZ).txt
{ echo "# $(date -u) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"; python3 bench/likes_bench.py "${1:-build}" 2>&1; } | tee "$out"
