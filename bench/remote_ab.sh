#!/bin/sh
# remote_ab.sh BASE_BIN NEW_BIN [pairs] [messages] - bench_remote (plaintext)
# from two builds, interleaved base/new so drifting machine load hits both
# alike; prints each run's one-way rate and RTT p50 and the medians' ratio
# new/base. Used to check that a refactor kept the transport within noise.
# Raw output goes to bench/results/remote_ab-<UTC timestamp>.txt. Not a test.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
base=$1 new=$2 pairs=${3:-5} n=${4:-300000}
out=$root/bench/results/remote_ab-$(date -u +%Y%m%dT%H%M%SZ).txt
{
    echo "# bench_remote $n x $pairs pairs, base=$base new=$new, $(nproc) cores"
    echo "# load before: $(cat /proc/loadavg)"
    i=0
    while [ $i -lt "$pairs" ]; do
        for which in base new; do
            eval bin=\$$which
            "$bin/bench_remote" "$n" 2>/dev/null | grep -E '"remote\.(oneway|rtt\.p50)"' |
                sed "s/^/$which /"
        done
        i=$((i + 1))
    done
    echo "# load after: $(cat /proc/loadavg)"
} | tee "$out" | python3 -c '
import sys, json, statistics
v = {}
for line in sys.stdin:
    print(line, end="")
    if line.startswith("#"): continue
    which, js = line.split(" ", 1)
    d = json.loads(js)
    v.setdefault((which, d["bench"]), []).append(d["value"])
for b in ("remote.oneway", "remote.rtt.p50"):
    mb, mn = statistics.median(v[("base", b)]), statistics.median(v[("new", b)])
    print(json.dumps({"bench": b + ".median_ratio_new_vs_base", "value": round(mn / mb, 3),
                      "base": mb, "new": mn}))
'
echo "raw output: $out" >&2
