#!/usr/bin/env bash
# bench/actor_ab.sh - compare bench_actor builds under the same noise.
#
#   bench/actor_ab.sh [-n MESSAGES] [-r ROUNDS] BIN_A BIN_B [BIN...]
#
# For each shape, runs every binary once per round, interleaved (A B C A B C
# ...), so a burst of load on a shared machine hits all of them alike; prints
# each binary's median over the rounds and its ratio to the first binary.
# Build older commits' bench_actor to see what each change measured
# (docs/runtime.md quotes such a run).
set -euo pipefail
n=2000000
rounds=5
while getopts "n:r:" o; do
    case $o in
    n) n=$OPTARG ;;
    r) rounds=$OPTARG ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || { echo "usage: $0 [-n MESSAGES] [-r ROUNDS] BIN_A BIN_B [BIN...]" >&2; exit 2; }
for b in "$@"; do [ -x "$b" ] || { echo "$0: $b is not executable" >&2; exit 2; }; done

shapes="actor.oneway.same_scheduler actor.oneway.cross_scheduler actor.pingpong.same_scheduler actor.pingpong.cross_scheduler actor.fanin.100"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)  messages=$n rounds=$rounds"
for shape in $shapes; do
    declare -A vals=()
    for ((r = 0; r < rounds; r++)); do
        for b in "$@"; do
            v=$("$b" --reps 1 --messages "$n" --only "$shape" |
                sed -n 's/.*"value": \([0-9.e+]*\).*/\1/p' | head -1)
            vals[$b]+="$v "
        done
    done
    base=""
    for b in "$@"; do
        med=$(echo "${vals[$b]}" | tr ' ' '\n' | grep -v '^$' | sort -g |
              awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}')
        [ -n "$base" ] || base=$med
        awk -v s="$shape" -v b="$(basename "$b")" -v m="$med" -v z="$base" -v all="${vals[$b]}" \
            'BEGIN { printf "%-32s %-14s median %12.0f  x%.2f  (%s)\n", s, b, m, m / z, all }'
    done
    unset vals
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
