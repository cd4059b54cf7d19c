#!/usr/bin/env bash
# bench/http_vs_nginx.sh [SECONDS] - the L1-hit path of the HTTP API against
# nginx serving the same bytes as a static file, both on loopback, measured
# with wrk in this one script. Prints JSON lines {"bench","value","unit"}:
#   http.l1_hit.mx / .nginx (requests/s, one mxnode scheduler, one nginx
#   worker, wrk -t1 -c100 keep-alive), their p99 latencies, the ratio,
#   http.l1_hit.mx.2sched (two schedulers) and http.l1_hit.mx.c10k.p99
#   (10,000 open keep-alive connections); the same with Accept-Encoding:
#   gzip (http.l1_hit.gzip.*), where both serve the stored gzip bytes.
# nginx runs twice per round for the plain document: with its built-in
# defaults (sendfile off: read + writev from 32 KB buffers) and with
# Debian's packaged settings (sendfile on; tcp_nopush on:
# http.l1_hit.nginx.sendfile); the ratio is taken against the faster one.
# Every server's answer is checked before the runs (status 200, the same
# bytes as mx) and every wrk run's non-2xx count is reported
# (http.l1_hit.non2xx, must be 0): nginx's worker runs as nobody, and a
# root-only temp dir once made it answer 403 (153 bytes) at ~88k/s, which
# was compared with mx's 111 KB answers.
# mx and nginx run alternately MX_BENCH_ROUNDS times (default 3); the
# figures are medians. Rate limits are off for the run (MX_RATE_LIMIT=0): one client address
# would otherwise be held to 100 requests. Needs build/bin (scripts/test or
# cmake), nginx-light and wrk (apt-get install nginx-light wrk).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${MX_SHARED_DIR:-$(cd "$root/.." && pwd)/shared}
bin=${MX_BIN_DIR:-$root/build/bin}
secs=${1:-10}
for c in wrk nginx; do
    command -v $c >/dev/null || [ -x /usr/sbin/$c ] || { echo "$c not found: apt-get install nginx-light wrk" >&2; exit 2; }
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
tmp=$(mktemp -d)
chmod 755 "$tmp" # nginx's worker (nobody) must read the files below
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid" 2>/dev/null)" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$bin/mxstub" --listen 127.0.0.1:0 --character "에반=$shared/fixtures/nexon/evan_equip.json" >"$tmp/stub.out" 2>/dev/null &
pids+=($!)
for _ in $(seq 50); do grep -q listening "$tmp/stub.out" 2>/dev/null && break; sleep 0.1; done
stub=$(awk '/listening/ {print $2; exit}' "$tmp/stub.out")

path='/api/v4/characters/%EC%97%90%EB%B0%98/expectation'

start_node() { # start_node SCHEDULERS -> sets node_pid, node_port
    MX_SCHEDULERS=$1 MX_HTTP_ADDR=127.0.0.1:0 MX_NNG_ADDR=tcp://127.0.0.1:0 MX_ADMIN_ADDR=tcp://127.0.0.1:0 \
    MX_RATE_LIMIT=0 MX_REDIS_URL=redis://127.0.0.1:1/0 MX_LOG_LEVEL=error MX_HTTP_MAX_CONNS=20000 \
    MX_JWT_SECRET=bench-secret-bench-secret-bench-secret-01 MX_NEXON_API_KEY=k \
    MX_NEXON_BASE_URL="http://$stub" MX_CUBE_TABLE="$shared/data/cube_probability_black.csv" \
        "$bin/mxnode" >"$tmp/node.out" 2>"$tmp/node.err" &
    node_pid=$!
    pids+=($node_pid)
    for _ in $(seq 100); do grep -q ready "$tmp/node.out" 2>/dev/null && break; sleep 0.1; done
    node_port=$(sed -n 's/.* http [0-9.]*:\([0-9]*\),.*/\1/p' "$tmp/node.out")
    # warm the L1 entry (the first answer computes it)
    curl -s -o /dev/null "http://127.0.0.1:$node_port$path"
    curl -s -o "$tmp/doc.json" "http://127.0.0.1:$node_port$path"
    curl -s -H 'Accept-Encoding: gzip' -o "$tmp/doc.json.gz" "http://127.0.0.1:$node_port$path"
}
stop_node() { kill "$node_pid"; wait "$node_pid" 2>/dev/null || true; }

# run_wrk URL THREADS CONNS [HEADER] -> "rps p99_ms"; non-2xx answers are
# added to $tmp/non2xx and reported on stderr
run_wrk() {
    local h=()
    [ -n "${4:-}" ] && h=(-H "$4")
    wrk -t"$2" -c"$3" -d"${secs}s" --latency "${h[@]}" "$1" >"$tmp/wrk.out" 2>&1 || true
    local rps p99 bad
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.out")
    p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$tmp/wrk.out")
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$tmp/wrk.out")
    if [ -n "$bad" ]; then
        echo "http_vs_nginx: $1 answered $bad non-2xx responses" >&2
        echo "$bad" >>"$tmp/non2xx"
    fi
    echo "${rps:-0} ${p99:-0}"
}

# check_same URL FILE [HEADER]: the server answers 200 with FILE's bytes
check_same() {
    local h=() code
    [ -n "${3:-}" ] && h=(-H "$3")
    code=$(curl -s "${h[@]}" -o "$tmp/check.out" -w '%{http_code}' "$1")
    if [ "$code" != 200 ] || ! cmp -s "$tmp/check.out" "$2"; then
        echo "http_vs_nginx: $1 answered $code, not the $(stat -c %s "$2") bytes of $(basename "$2")" >&2
        exit 1
    fi
}
line() { printf '{"bench": "%s", "value": %s, "unit": "%s"}\n' "$1" "$2" "$3"; }

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# nginx: one worker, no access log, the same bytes as a static file
nport=$(free_port)
gport=$(free_port)
sport=$(free_port)
mkdir -p "$tmp/www"
chmod 755 "$tmp/www"
start_node 1
cp "$tmp/doc.json" "$tmp/www/doc.json"
cp "$tmp/doc.json.gz" "$tmp/www/doc.json.gz"
chmod 644 "$tmp/www/doc.json" "$tmp/www/doc.json.gz"
[ -s "$tmp/doc.json" ] && [ -s "$tmp/doc.json.gz" ] || { echo "http_vs_nginx: mxnode gave no document" >&2; exit 1; }
cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err;
events { worker_connections 20000; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$nport;
        root $tmp/www;
        location / { default_type application/json; rewrite ^ /doc.json break; }
    }
    server {
        listen 127.0.0.1:$gport;
        root $tmp/www;
        location / { default_type application/json; add_header Content-Encoding gzip;
                     add_header Vary Accept-Encoding; rewrite ^ /doc.json.gz break; }
    }
    server {
        listen 127.0.0.1:$sport;
        root $tmp/www;
        sendfile on;
        tcp_nopush on;
        location / { default_type application/json; rewrite ^ /doc.json break; }
    }
}
CONF
"$nginx_bin" -c "$tmp/nginx.conf" -p "$tmp" -g 'daemon off;' 2>>"$tmp/nginx.err" &
pids+=($!)
sleep 0.5
check_same "http://127.0.0.1:$node_port$path" "$tmp/doc.json"
check_same "http://127.0.0.1:$node_port$path" "$tmp/doc.json.gz" 'Accept-Encoding: gzip'
check_same "http://127.0.0.1:$nport$path" "$tmp/doc.json"
check_same "http://127.0.0.1:$sport$path" "$tmp/doc.json"
check_same "http://127.0.0.1:$gport$path" "$tmp/doc.json.gz" 'Accept-Encoding: gzip'

# alternate the two servers ROUNDS times so load changes hit both alike
rounds=${MX_BENCH_ROUNDS:-3}
: >"$tmp/r.mx"; : >"$tmp/r.ng"; : >"$tmp/r.ngs"; : >"$tmp/r.mxg"; : >"$tmp/r.ngg"; : >"$tmp/non2xx"
for _ in $(seq "$rounds"); do
    run_wrk "http://127.0.0.1:$node_port$path" 1 100 >>"$tmp/r.mx"
    run_wrk "http://127.0.0.1:$nport$path" 1 100 >>"$tmp/r.ng"
    run_wrk "http://127.0.0.1:$sport$path" 1 100 >>"$tmp/r.ngs"
    run_wrk "http://127.0.0.1:$node_port$path" 1 100 'Accept-Encoding: gzip' >>"$tmp/r.mxg"
    run_wrk "http://127.0.0.1:$gport$path" 1 100 'Accept-Encoding: gzip' >>"$tmp/r.ngg"
done
stop_node
col() { awk -v c="$2" '{print $c}' "$tmp/r.$1" | median; }
mx_rps=$(col mx 1); mx_p99=$(col mx 2); ng_rps=$(col ng 1); ng_p99=$(col ng 2)
ngs_rps=$(col ngs 1); ngs_p99=$(col ngs 2)
ng_best=$(awk -v a="$ng_rps" -v b="$ngs_rps" 'BEGIN {print (a > b ? a : b)}')
mxg_rps=$(col mxg 1); mxg_p99=$(col mxg 2); ngg_rps=$(col ngg 1); ngg_p99=$(col ngg 2)

start_node 2
read -r mx2_rps mx2_p99 < <(run_wrk "http://127.0.0.1:$node_port$path" 1 100)
read -r c10k_rps c10k_p99 < <(run_wrk "http://127.0.0.1:$node_port$path" 2 10000)
stop_node

line http.l1_hit.mx "$mx_rps" requests/s
line http.l1_hit.nginx "$ng_rps" requests/s
line http.l1_hit.mx.p99 "$mx_p99" ms
line http.l1_hit.nginx.p99 "$ng_p99" ms
line http.l1_hit.nginx.sendfile "$ngs_rps" requests/s
line http.l1_hit.nginx.sendfile.p99 "$ngs_p99" ms
line http.l1_hit.ratio_mx_over_nginx "$(awk -v a="$mx_rps" -v b="$ng_best" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}')" ratio
line http.l1_hit.gzip.mx "$mxg_rps" requests/s
line http.l1_hit.gzip.nginx "$ngg_rps" requests/s
line http.l1_hit.gzip.mx.p99 "$mxg_p99" ms
line http.l1_hit.gzip.nginx.p99 "$ngg_p99" ms
line http.l1_hit.gzip.ratio_mx_over_nginx "$(awk -v a="$mxg_rps" -v b="$ngg_rps" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}')" ratio
line http.l1_hit.bytes.plain "$(stat -c %s "$tmp/doc.json")" bytes
line http.l1_hit.bytes.gzip "$(stat -c %s "$tmp/doc.json.gz")" bytes
line http.l1_hit.mx.2sched "$mx2_rps" requests/s
line http.l1_hit.mx.c10k.rps "$c10k_rps" requests/s
line http.l1_hit.mx.c10k.p99 "$c10k_p99" ms
line http.l1_hit.non2xx "$(awk '{n += $1} END {print n + 0}' "$tmp/non2xx")" responses
