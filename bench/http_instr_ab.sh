#!/usr/bin/env bash
# bench/http_instr_ab.sh BIN_DIR ANCHOR_BIN_DIR [N] - instructions per L1-hit
# request (GET /api/v4/characters/{ign}/expectation, gzip, one kept-alive
# connection, one scheduler) of the mxnode in BIN_DIR against the one in
# ANCHOR_BIN_DIR (e.g. a build of the commit before a change), counted by
# callgrind: a run with N requests (default 4000) minus a run with none, so
# start-up and shutdown cancel. Instruction counts do not move with the
# machine's load the way requests/s do (wrk figures on a shared 2-core box
# varied 5k-18k/s for one binary). Prints JSON lines and the ratio. Needs
# valgrind, python3 and both builds' mxnode, and BIN_DIR's mxstub.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${MX_SHARED_DIR:-$(cd "$root/.." && pwd)/shared}
bin=${1:?BIN_DIR}
anchor=${2:?ANCHOR_BIN_DIR}
n=${3:-4000}
command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install valgrind" >&2; exit 2; }
echo "# load before: $(cat /proc/loadavg)"
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
"$bin/mxstub" --listen 127.0.0.1:0 --character "에반=$shared/fixtures/nexon/evan_equip.json" >"$tmp/stub.out" 2>/dev/null &
pids+=($!)
for _ in $(seq 50); do grep -q listening "$tmp/stub.out" 2>/dev/null && break; sleep 0.1; done
stub=$(awk '/listening/ {print $2; exit}' "$tmp/stub.out")

instructions() { # instructions BIN REQUESTS -> total Ir of one node run
    MX_SCHEDULERS=1 MX_HTTP_ADDR=127.0.0.1:0 MX_NNG_ADDR=tcp://127.0.0.1:0 MX_ADMIN_ADDR=tcp://127.0.0.1:0 \
    MX_RATE_LIMIT=0 MX_REDIS_URL=redis://127.0.0.1:1/0 MX_LOG_LEVEL=error MX_REGISTRY=0 \
    MX_JWT_SECRET=bench-secret-bench-secret-bench-secret-01 MX_NEXON_API_KEY=k \
    MX_NEXON_BASE_URL="http://$stub" MX_CUBE_TABLE="$shared/data/cube_probability_black.csv" \
        valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$1/mxnode" \
        >"$tmp/node.out" 2>"$tmp/node.err" &
    local np=$!
    pids+=($np)
    for _ in $(seq 600); do grep -q ready "$tmp/node.out" 2>/dev/null && break; sleep 0.1; done
    local port
    port=$(sed -n 's/.* http [0-9.]*:\([0-9]*\),.*/\1/p' "$tmp/node.out")
    python3 - "$port" "$2" <<'PY'
import http.client, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
path = "/api/v4/characters/%EC%97%90%EB%B0%98/expectation"
for _ in range(2 + n):  # the first computes the document, the second is an L1 hit
    c.request("GET", path, headers={"Accept-Encoding": "gzip"})
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"status {r.status}")
PY
    kill -INT "$np"
    wait "$np" 2>/dev/null || true
    awk '/^summary:|^totals:/ {print $2; exit}' "$tmp/cg.out"
}
per_req() { # per_req BIN -> instructions per request
    local zero full
    zero=$(instructions "$1" 0)
    full=$(instructions "$1" "$n")
    echo $(((full - zero) / n))
}
mx=$(per_req "$bin")
base=$(per_req "$anchor")
echo "{\"bench\": \"http.l1_hit.gzip.instructions_per_request\", \"value\": $mx, \"unit\": \"instructions\"}"
echo "{\"bench\": \"http.l1_hit.gzip.instructions_per_request.anchor\", \"value\": $base, \"unit\": \"instructions\"}"
echo "{\"bench\": \"http.l1_hit.gzip.instructions_ratio_over_anchor\", \"value\": $(python3 -c "print(round($mx / $base, 4))"), \"unit\": \"ratio\"}"
echo "# load after: $(cat /proc/loadavg)"
