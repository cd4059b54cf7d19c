#!/usr/bin/env bash
# bench/actor_perfstat.sh - kernel-side cost of each bench_actor shape:
# `perf stat` of one repetition per shape and binary, as syscalls and
# context switches per message (these counts barely depend on machine load,
# unlike rates). Prints a markdown table.
#
#   bench/actor_perfstat.sh [-n MESSAGES] BIN [BIN...]
set -euo pipefail
n=2000000
while getopts "n:" o; do
    case $o in
    n) n=$OPTARG ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "usage: $0 [-n MESSAGES] BIN [BIN...]" >&2; exit 2; }
command -v perf >/dev/null || { echo "$0: perf is not installed (apt-get install linux-perf)" >&2; exit 1; }
events=task-clock,context-switches,syscalls:sys_enter_write,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); messages per shape: $n (ping-pong: n/5 round trips)"
echo
echo "| shape | binary | rate | CPU ms | ctx switches / 1k msgs | eventfd writes / 1k msgs | epoll_waits / 1k msgs | futex / 1k msgs |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for shape in actor.oneway.same_scheduler actor.oneway.cross_scheduler actor.pingpong.same_scheduler actor.pingpong.cross_scheduler actor.fanin.100; do
    msgs=$n
    case $shape in actor.pingpong.*) msgs=$((n / 5 * 2)) ;; esac
    for b in "$@"; do
        out=$(perf stat -x, -e "$events" -o "$tmp" "$b" --reps 1 --messages "$n" --only "$shape")
        rate=$(echo "$out" | sed -n 's/.*"value": \([0-9.e+]*\).*/\1/p' | head -1)
        awk -F, -v s="$shape" -v b="$(basename "$b")" -v r="$rate" -v m="$msgs" '
            /task-clock/ { cpu = $1 }
            /context-switches/ { cs = $1 }
            /sys_enter_write/ { w = $1 }
            /sys_enter_epoll_wait/ { e = $1 }
            /sys_enter_futex/ { f = $1 }
            END { printf "| %s | %s | %.3gM | %.0f | %.2f | %.2f | %.2f | %.2f |\n", s, b, r / 1e6, cpu, cs * 1000 / m, w * 1000 / m, e * 1000 / m, f * 1000 / m }' "$tmp"
    done
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
