#!/usr/bin/env bash
# bench/actor_instr_ab.sh [NAME=]BIN_DIR [...] - instructions per delivered
# message of the same-scheduler bench_actor shapes (one-way; ping-pong,
# per message, two per round trip), counted by callgrind: a run of N
# messages minus a run of N/10, so start-up and shutdown cancel. Unlike
# rates these counts do not move with the machine's load (valgrind runs
# the threads one at a time, so the cross-scheduler shapes are left out).
# Prints a markdown table and keeps the raw output in
# bench/results/actor_instr_ab-<UTC timestamp>.txt. Needs valgrind. Not a test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 [NAME=]BIN_DIR [[NAME=]BIN_DIR ...]" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "$0: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
n=1000000
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$root/bench/results/actor_instr_ab-$(date -u +%Y%m%dT%H%M%SZ).txt
instr() { # BIN SHAPE MESSAGES -> instructions
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg" "$1/bench_actor" --only "$2" \
        --messages "$3" --reps 1 >/dev/null 2>"$tmp/err"
    sed -n 's/.*Collected : *\([0-9]*\).*/\1/p' "$tmp/err" | head -1
}
{
    echo "# callgrind instructions per delivered message, $n messages minus $((n / 10)); load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| shape | binary | instructions / message |"
    echo "|---|---|---:|"
    for shape in actor.oneway.same_scheduler actor.pingpong.same_scheduler; do
        msgs=$((n - n / 10))
        case $shape in actor.pingpong.*) msgs=$(((n / 5 - n / 50) * 2)) ;; esac
        for arg in "$@"; do
            name=${arg%%=*} b=${arg#*=}
            big=$(instr "$b" "$shape" "$n")
            small=$(instr "$b" "$shape" $((n / 10)))
            awk -v s="$shape" -v b="$name" -v d="$((big - small))" -v m="$msgs" \
                'BEGIN { printf "| %s | %s | %.0f |\n", s, b, d / m }'
        done
    done
} | tee "$out"
echo "raw output: $out" >&2
