#!/usr/bin/env bash
# bench/actor_vs_erlang.sh - bench_actor against the same shapes in
# Erlang/OTP (Debian erlang-base), run one after the other in this script,
# and the ratios mx/Erlang. Prints JSON lines.
#   bench/actor_vs_erlang.sh [MESSAGES] [REPS]     (default 5000000 3)
# Exits non-zero when Erlang is missing or a shape has no figure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-5000000}
reps=${2:-3}
bin=$root/build/bin/bench_actor
[ -x "$bin" ] || { echo "build first: cmake --build build (missing $bin)" >&2; exit 1; }
command -v erlc >/dev/null || { echo "erlang-base is not installed: apt-get install erlang-base" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
erlc -o "$tmp" "$root/bench/actor_bench.erl"

echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$bin" --messages "$n" --reps "$reps" | tee "$tmp/mx.jsonl"
# two schedulers, as the mx runs use at most two
erl -noshell +S 2:2 -pa "$tmp" -run actor_bench main "$n" "$reps" | tee "$tmp/erl.jsonl"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

value() { # FILE NAME -> value
    awk -v name="$2" -F'"value": ' 'index($0, "\"bench\": \"" name "\"") { split($2, a, ","); print a[1] }' "$1"
}
missing=0
for shape in actor.oneway.same_scheduler actor.oneway.cross_scheduler actor.pingpong.same_scheduler actor.fanin.100; do
    mx=$(value "$tmp/mx.jsonl" "$shape")
    er=$(value "$tmp/erl.jsonl" "erlang.$shape")
    if [ -n "$mx" ] && [ -n "$er" ]; then
        awk -v s="$shape" -v m="$mx" -v e="$er" \
            'BEGIN { printf "{\"bench\": \"%s.ratio_mx_over_erlang\", \"value\": %.3f, \"unit\": \"x\"}\n", s, m / e }'
    else
        echo "actor_vs_erlang: no figure for $shape (mx: '${mx}', erlang: '${er}')" >&2
        missing=1
    fi
done
exit "$missing"
