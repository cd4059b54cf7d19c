#!/bin/sh
# redis_failover.sh - how long a node is without Redis when the master dies
# (issue 14). On loopback: a redis-server master, its replica, three
# redis-sentinel (down-after-milliseconds 1000, the setting the tests use),
# mxstub and one mxnode with MX_REDIS_URL=redis-sentinel://... . A client
# logs in every 10 ms (a login writes its session to Redis, so a 200 went
# through the master). Each round SIGKILLs the master and measures, from a
# kept connection to a sentinel and the client's answers:
#   kill -> the sentinels' switch, switch -> the first 200 through the new
#   master, kill -> first 200, and the requests not answered 200 in between.
# The old master is restarted and becomes the new one's replica before the
# next round, so rounds alternate between the two. Median of ROUNDS (5).
# The anchor is the issue's goal: the first success <= 3000 ms after the
# switch; the ratio printed is measured / 3000.
# Usage: bench/redis_failover.sh [build-dir]   (default: build)
# Output: JSON lines on stdout; raw per-round lines on stderr.
set -eu
BUILD=${1:-build}
BIN=$(cd "$BUILD/bin" && pwd)
SHARED=$(cd "$(dirname "$0")/../../shared" 2>/dev/null && pwd || echo ../shared)
ROUNDS=${ROUNDS:-5}
TMP=$(mktemp -d)
PIDS=""
cleanup() {
    for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ping() { for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }

echo "load before: $(cat /proc/loadavg)" >&2

# redis NAME PORT [extra args]: start (or restart) a redis-server
redis() {
    name=$1 port=$2
    shift 2
    mkdir -p "$TMP/$name"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP/$name" \
        --logfile "$TMP/$name/redis.log" "$@" &
    eval "PID_$name=$!"
    PIDS="$PIDS $!"
    wait_ping "$port"
}
PA=$(free_port)
PB=$(free_port)
redis a "$PA"
redis b "$PB" --replicaof 127.0.0.1 "$PA"
SURL=""
for i in 1 2 3; do
    sp=$(free_port)
    mkdir -p "$TMP/s$i"
    cat > "$TMP/s$i/sentinel.conf" <<EOF
port $sp
bind 127.0.0.1
dir $TMP/s$i
logfile $TMP/s$i/sentinel.log
sentinel monitor mxb 127.0.0.1 $PA 2
sentinel down-after-milliseconds mxb 1000
sentinel failover-timeout mxb 3000
EOF
    redis-sentinel "$TMP/s$i/sentinel.conf" &
    PIDS="$PIDS $!"
    wait_ping "$sp"
    [ "$i" = 1 ] && S1=$sp
    SURL="$SURL${SURL:+,}127.0.0.1:$sp"
done
REDIS="redis-sentinel://$SURL/mxb/0"

"$BIN/mxstub" --listen 127.0.0.1:0 --unknown 404 > "$TMP/stub.out" 2> "$TMP/stub.err" &
PIDS="$PIDS $!"
for _ in $(seq 100); do grep -q listening "$TMP/stub.out" && break; sleep 0.05; done
STUB=$(sed -n 's/.*listening \([0-9.:]*\).*/\1/p' "$TMP/stub.out" | head -1)

MX_NODE_NAME=b1 MX_HTTP_ADDR=127.0.0.1:0 MX_NNG_ADDR=tcp://127.0.0.1:0 \
MX_ADMIN_ADDR=tcp://127.0.0.1:0 MX_JWT_SECRET=redis-failover-bench-secret-0123456789 \
MX_CUBE_TABLE="$SHARED/data/cube_probability_black.csv" MX_REDIS_URL="$REDIS" \
MX_NEXON_BASE_URL="http://$STUB" MX_RATE_LIMIT=0 MX_LOG_LEVEL=warn \
    "$BIN/mxnode" > "$TMP/node.out" 2> "$TMP/node.err" &
PIDS="$PIDS $!"
for _ in $(seq 150); do grep -q " ready: " "$TMP/node.out" && break; sleep 0.1; done
HTTP=$(sed -n 's/.* ready: .*http [0-9.]*:\([0-9]*\),.*/\1/p' "$TMP/node.out" | head -1)
[ -n "$HTTP" ] || { echo "mxnode did not start" >&2; cat "$TMP/node.err" >&2; exit 1; }

# one round per line: kill_to_switch switch_to_ok kill_to_ok failed
round() { # $1: the master's port, $2: the replica's port, $3: the master's pid
    python3 - "$HTTP" "$S1" "$1" "$2" "$3" "http://$STUB" <<'PY'
import http.client, json, os, signal, socket, sys, threading, time
http_port, s_port, old, new, pid, stub = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
now = lambda: time.monotonic() * 1000
# a user mxstub knows
import urllib.request
req = urllib.request.Request(stub + "/maplestory/v1/character/list", headers={"x-nxopen-api-key": "bench-user"})
ign = json.load(urllib.request.urlopen(req))["account_list"][0]["character_list"][0]["character_name"]
body = json.dumps({"apiKey": "bench-user", "userIgn": ign})
# the sentinel, one kept connection, RESP by hand
sk = socket.create_connection(("127.0.0.1", s_port))
def master_port():
    sk.sendall(b"SENTINEL get-master-addr-by-name mxb\r\n")
    data = b""
    while data.count(b"\r\n") < 5:
        data += sk.recv(4096)
    return data.split(b"\r\n")[4].decode()
switched = [None]
def watch():
    while switched[0] is None:
        if master_port() == new:
            switched[0] = now()
        time.sleep(0.01)
conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
def login():
    global conn
    try:
        conn.request("POST", "/auth/login", body, {"Content-Type": "application/json"})
        r = conn.getresponse(); r.read()
        return r.status
    except Exception:
        conn.close(); conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
        return 0
for _ in range(500):  # the node is on the master before the round starts
    if login() == 200: break
    time.sleep(0.02)
t = threading.Thread(target=watch); t.start()
os.kill(pid, signal.SIGKILL)
killed = now(); failed = 0; ok_at = None
while now() - killed < 30000:
    t0 = now(); st = login()
    if st == 200 and switched[0] is not None and t0 > killed:
        ok_at = now(); break
    if st != 200: failed += 1
    time.sleep(0.01)
if switched[0] is None: switched[0] = now()
t.join()
if ok_at is None: sys.exit("no success within 30 s")
print(int(switched[0] - killed), int(ok_at - switched[0]), int(ok_at - killed), failed)
PY
}

MPORT=$PA RPORT=$PB MNAME=a RNAME=b
: > "$TMP/rounds"
for i in $(seq "$ROUNDS"); do
    eval "mpid=\$PID_$MNAME"
    line=$(round "$MPORT" "$RPORT" "$mpid")
    echo "round $i: master :$MPORT killed; kill->switch switch->first-200 kill->first-200 failed: $line" >&2
    echo "$line" >> "$TMP/rounds"
    wait "$mpid" 2>/dev/null || true
    # the old master comes back; the sentinels make it the new one's replica
    redis "$MNAME" "$MPORT"
    for _ in $(seq 200); do
        redis-cli -p "$RPORT" role 2>/dev/null | grep -qx "$MPORT" && break
        sleep 0.05
    done
    for _ in $(seq 200); do
        [ "$(redis-cli -p "$MPORT" info replication | tr -d '\r' | sed -n 's/^master_link_status://p')" = up ] && break
        sleep 0.05
    done
    t=$MPORT; MPORT=$RPORT; RPORT=$t
    t=$MNAME; MNAME=$RNAME; RNAME=$t
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
col() { awk -v c="$1" '{print $c}' "$TMP/rounds" | median; }
ks=$(col 1) so=$(col 2) ko=$(col 3) fl=$(col 4)
echo "{\"bench\": \"redis_failover.kill_to_switch.median\", \"value\": $ks, \"unit\": \"ms\"}"
echo "{\"bench\": \"redis_failover.switch_to_first_ok.median\", \"value\": $so, \"unit\": \"ms\", \"goal\": 3000, \"ratio_to_goal\": $(awk -v v="$so" 'BEGIN{printf "%.3f", v/3000}')}"
echo "{\"bench\": \"redis_failover.kill_to_first_ok.median\", \"value\": $ko, \"unit\": \"ms\"}"
echo "{\"bench\": \"redis_failover.failed_requests.median\", \"value\": $fl, \"unit\": \"requests\"}"
echo "load after: $(cat /proc/loadavg)" >&2
