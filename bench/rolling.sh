#!/bin/sh
# rolling.sh - a rolling restart through haproxy under a paced load, as an
# operator rolls a cluster (docs/shutdown.md): redis-server, mxstub, three
# mxnode and haproxy (TCP mode, readiness health check every 200 ms, fall 2,
# rise 2) on loopback. wrk keeps 16 keep-alive connections, each pacing its
# requests (a Lua delay), for a baseline of BASE seconds, then during the
# roll: each node in turn gets SIGTERM, is waited for and started again,
# and the next one goes once haproxy sends it traffic again.
# Prints JSON lines:
#   {"bench": "rolling.failed", "value": N}                      goal 0
#   {"bench": "rolling.p99_before_ms" / "rolling.p99_during_ms"} goal during <= 2x before
#   {"bench": "rolling.drain_ms", "node": "r1", "value": MS, "exit": CODE}
#                                               goal <= MX_DRAIN_GRACE_MS + 1000
#   {"bench": "rolling.requests", "value": N}
# Usage: bench/rolling.sh [build-dir]   (default: build). About 25 s.
set -eu
BUILD=${1:-build}
BIN=$(cd "$BUILD/bin" && pwd)
SHARED=$(cd "$(dirname "$0")/../../shared" 2>/dev/null && pwd || echo ../shared)
BASE=${BASE:-10}
GRACE=${GRACE:-1500}
DELAY_MS=${DELAY_MS:-20}
TMP=$(mktemp -d)
PIDS=""
cleanup() {
    for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
    [ -n "${RPID:-}" ] && kill -9 "$RPID" 2>/dev/null || true
    [ -n "${SPID:-}" ] && kill -9 "$SPID" 2>/dev/null || true
    [ -n "${HPID:-}" ] && kill -9 "$HPID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

now_ms() { date +%s%3N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" \
    --logfile "$TMP/redis.log" &
RPID=$!
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

"$BIN/mxstub" --listen 127.0.0.1:0 > "$TMP/stub.out" 2>"$TMP/stub.err" &
SPID=$!
for _ in $(seq 50); do grep -q "127.0.0.1:" "$TMP/stub.out" && break; sleep 0.1; done
STUB=$(grep -o '127.0.0.1:[0-9]*' "$TMP/stub.out" | head -1)

# the HTTP ports are fixed per node, so haproxy finds a restarted node
P1=$(free_port); P2=$(free_port); P3=$(free_port)

# start NAME PORT
start() {
    out="$TMP/$1.out"
    : > "$out"
    MX_NODE_NAME=$1 MX_HTTP_ADDR=127.0.0.1:$2 MX_NNG_ADDR=tcp://127.0.0.1:0 \
    MX_ADMIN_ADDR=tcp://127.0.0.1:0 MX_JWT_SECRET=rolling-bench-secret-0123456789abcdef \
    MX_CUBE_TABLE="$SHARED/data/cube_probability_black.csv" \
    MX_REDIS_URL="redis://127.0.0.1:$RPORT/0" MX_CLUSTER=roll MX_RATE_LIMIT=0 \
    MX_NEXON_BASE_URL="http://$STUB" MX_NEXON_API_KEY=bench MX_SCHEDULERS=1 \
    MX_DRAIN_GRACE_MS=$GRACE MX_LOG_LEVEL=info MX_LOG_FORMAT=json \
        "$BIN/mxnode" > "$out" 2> "$TMP/$1.err" &
    eval "PID_$1=$!"
    PIDS="$PIDS $!"
    for _ in $(seq 150); do grep -q "ready" "$out" && break; sleep 0.1; done
}
start r1 "$P1"; start r2 "$P2"; start r3 "$P3"

LB=$(free_port)
STATS=$(free_port)
cat > "$TMP/haproxy.cfg" <<CFG
global
  maxconn 4000
defaults
  mode tcp
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  retries 3
  option redispatch
frontend api
  bind 127.0.0.1:$LB
  default_backend mx
backend mx
  balance roundrobin
  option httpchk GET /actuator/health/readiness
  http-check expect status 200
  default-server inter 200ms fall 2 rise 2
  server r1 127.0.0.1:$P1 check
  server r2 127.0.0.1:$P2 check
  server r3 127.0.0.1:$P3 check
listen stats
  mode http
  bind 127.0.0.1:$STATS
  stats enable
  stats uri /stats
CFG
haproxy -db -f "$TMP/haproxy.cfg" > "$TMP/haproxy.log" 2>&1 &
HPID=$!

# up NAME: haproxy sends it traffic (its check is UP)
up() { curl -s "http://127.0.0.1:$STATS/stats;csv" | awk -F, -v n="$1" '$1=="mx" && $2==n {print $18}' | grep -q '^UP'; }
for n in r1 r2 r3; do for _ in $(seq 100); do up $n && break; sleep 0.1; done; done

cat > "$TMP/load.lua" <<LUA
local paths = {"/api/v1/characters/roll1", "/api/v1/characters/roll2", "/actuator/health",
               "/api/v1/characters/roll3", "/api/v4/characters/roll1/expectation"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
delay = function() return $DELAY_MS end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d non2xx=%d connect=%d read=%d write=%d timeout=%d p99_us=%d p50_us=%d\n",
    summary.requests, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(99), latency:percentile(50)))
end
LUA

# baseline
wrk -t2 -c16 -d"${BASE}s" --timeout 10s -s "$TMP/load.lua" "http://127.0.0.1:$LB" > "$TMP/base.txt" 2>&1

# during the roll: wrk runs long enough to cover it; the roll ends it
wrk -t2 -c16 -d120s --timeout 10s -s "$TMP/load.lua" "http://127.0.0.1:$LB" > "$TMP/roll.txt" 2>&1 &
WPID=$!
sleep 2
for n in r1 r2 r3; do
    eval "pid=\$PID_$n"
    eval "port=\$P${n#r}"
    t0=$(now_ms)
    kill -TERM "$pid"
    code=0
    wait "$pid" || code=$?
    t1=$(now_ms)
    echo "{\"bench\": \"rolling.drain_ms\", \"node\": \"$n\", \"value\": $((t1 - t0)), \"exit\": $code}"
    start "$n" "$port"
    for _ in $(seq 100); do up $n && break; sleep 0.1; done
done
sleep 2
kill -INT "$WPID" 2>/dev/null || true
wait "$WPID" 2>/dev/null || true

field() { sed -n "s/.*RESULT.* $2=\([0-9]*\).*/\1/p" "$1"; }
for f in base roll; do
    [ -n "$(field "$TMP/$f.txt" requests)" ] || { echo "wrk gave no result ($f):" >&2; cat "$TMP/$f.txt" >&2; exit 1; }
done
failed=0
for k in non2xx connect read write timeout; do failed=$((failed + $(field "$TMP/roll.txt" $k))); done
echo "{\"bench\": \"rolling.failed\", \"value\": $failed, \"non2xx\": $(field "$TMP/roll.txt" non2xx), \"connect\": $(field "$TMP/roll.txt" connect), \"read\": $(field "$TMP/roll.txt" read), \"write\": $(field "$TMP/roll.txt" write), \"timeout\": $(field "$TMP/roll.txt" timeout)}"
echo "{\"bench\": \"rolling.requests\", \"value\": $(field "$TMP/roll.txt" requests), \"baseline\": $(field "$TMP/base.txt" requests)}"
echo "{\"bench\": \"rolling.p99_before_ms\", \"value\": $(awk "BEGIN{printf \"%.2f\", $(field "$TMP/base.txt" p99_us)/1000}")}"
echo "{\"bench\": \"rolling.p99_during_ms\", \"value\": $(awk "BEGIN{printf \"%.2f\", $(field "$TMP/roll.txt" p99_us)/1000}")}"
echo "{\"bench\": \"rolling.load\", \"uptime\": \"$(uptime | sed 's/.*load average: //')\"}"
