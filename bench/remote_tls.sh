#!/bin/sh
# remote_tls.sh [messages] - bench_remote with the transport in plaintext and
# with mutual TLS in one run (a throwaway CA from scripts/gen-certs), plus
# raw nng as the anchor. Prints load average before and after and keeps the
# raw output in bench/results/remote_tls-<UTC timestamp>.txt. Issue 12's
# targets: remote.tls.oneway.ratio_vs_plain >= 0.5 and
# remote.tls.rtt.p50.ratio_vs_plain <= 1.5. Not a test.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MX_BIN_DIR:-$root/build/bin}
n=${1:-1000000}
certs=$(mktemp -d)
trap 'rm -rf "$certs"' EXIT
"$root/scripts/gen-certs" "$certs" a b >/dev/null
out=$root/bench/results/remote_tls-$(date -u +%Y%m%dT%H%M%SZ).txt
{
    echo "# bench_remote $n, plaintext and mutual TLS (nng tls+tcp, OpenSSL engine), $(uname -m), $(nproc) cores"
    echo "# load before: $(cat /proc/loadavg)"
    BENCH_TLS_DIR=$certs "$bin/bench_remote" "$n"
    echo "# load after: $(cat /proc/loadavg)"
} | tee "$out"
echo "raw output: $out" >&2
