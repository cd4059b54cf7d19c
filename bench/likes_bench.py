"""likes_bench.py - toggles/s through three mxnode against the Redis ceiling.

Run by bench/likes.sh. Starts the stack (bench/mxstack.py), signs in 200
users, then in the same run:
  1. mx: three wrk processes (one per node, 1 thread, C connections each)
     POST random (user, character) toggles for D seconds;
  2. the ceiling: redis-benchmark runs the same toggle script (EVALSHA, the
     source read from actors/likes/likes_common.c) straight at the same
     Redis with 50 clients;
  3. the like-sync lag histogram of the holder (Prometheus).
Prints JSON lines and the ratio against the goal (>= 0.6x the ceiling,
p99 <= 10 ms, sync lag p99 <= 2 s).
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mxstack  # noqa: E402

DUR = int(os.environ.get("LIKES_SECONDS", "10"))
CONNS = int(os.environ.get("LIKES_CONNS", "32"))
BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"


def lua_source(name):
    src = open(os.path.join(mxstack.ROOT, "actors", "likes", "likes_common.c")).read()
    m = re.search(r"const char " + name + r"\[\] =\s*((?:\"(?:[^\"\\]|\\.)*\"\s*)+);", src)
    parts = re.findall(r"\"((?:[^\"\\]|\\.)*)\"", m.group(1))
    return "".join(parts).encode().decode("unicode_escape")


def wrk_parse(out):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    bad = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, errs.groups())) if errs else 0)
    return rps, float(p99.group(1)) * scale, bad, reqs


def main():
    st = mxstack.Stack(BUILD)
    st.redis()
    st.mariadb()
    st.stub()
    for i in range(3):
        st.node(f"b{i}", {"MX_RATE_LIMIT": "0"})
    ports = [n["http"] for n in st.nodes]
    users = st.users(200, ports)
    names = st.targets(50, users)
    # warm every character (its record and its like relations) before measuring
    for i, nm in enumerate(names):
        st.get(f"http://127.0.0.1:{ports[i % 3]}/api/v2/characters/{mxstack.quote(nm)}/like/status")
        st.get(f"http://127.0.0.1:{ports[i % 3]}/api/v2/characters/{mxstack.quote(nm)}/like",
               {"Authorization": "Bearer " + users[0]["token"]}, "POST", b"")
    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False, dir=st.tmp)
    lua.write("local tokens = {%s}\n" % ",".join(json.dumps(u["token"]) for u in users))
    lua.write("local paths = {%s}\n" % ",".join(
        json.dumps(f"/api/v2/characters/{mxstack.quote(n)}/like") for n in names))
    lua.write("math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))\n"
              "request = function()\n"
              "  local t = tokens[math.random(#tokens)]\n"
              "  local p = paths[math.random(#paths)]\n"
              "  return wrk.format('POST', p, {['Authorization'] = 'Bearer ' .. t,"
              " ['Content-Length'] = '0'}, '')\n"
              "end\n")
    lua.close()
    load0 = mxstack.loadavg()
    ws = [subprocess.Popen(["wrk", "-t1", f"-c{CONNS}", f"-d{DUR}s", "--latency", "-s", lua.name,
                            f"http://127.0.0.1:{p}"], stdout=subprocess.PIPE, text=True)
          for p in ports]
    outs = [w.communicate()[0] for w in ws]
    res = [wrk_parse(o) for o in outs]
    mx_rps = sum(r[0] for r in res)
    mx_p99 = max(r[1] for r in res)
    mx_bad = sum(r[2] for r in res)
    for o in outs:
        print(o, file=sys.stderr)
    # the ceiling: the same script, straight at the same Redis
    sha = st.rcli("SCRIPT", "LOAD", lua_source("mx__lk_toggle_lua"))
    st.rcli("HSET", "mx:mx:{lk0}:n", "ceiling", "0")
    k = ["mx:mx:{lk0}:r:ceiling", "mx:mx:{lk0}:n", "mx:mx:{lk0}:p:ceiling", "mx:mx:{lk0}:d",
         "mx:mx:{lk0}:ign"]
    rb = subprocess.run(["redis-benchmark", "-p", str(st.redis_port), "-c", "50", "-n",
                         str(max(100000, int(mx_rps * 5))), "-r", "100000", "-q",
                         "EVALSHA", sha, "5", *k, "ceiling", "acct__rand_int__", "ceiling",
                         str(int(time.time() * 1000))], capture_output=True, text=True)
    m = re.findall(r"([\d.]+) requests per second", rb.stdout)
    ceiling = float(m[-1]) if m else 0.0
    print(rb.stdout, file=sys.stderr)
    st.rcli("DEL", *k)
    # sync lag: wait for the sync to catch up, then read the holder's histogram
    mxstack.wait(lambda: all(st.rcli("ZCARD", f"mx:mx:{{lk{p}}}:d") == "0" for p in range(16)),
                 60, "like-sync catching up")
    buckets = {}
    for n in st.nodes:
        for line in st.prom(n["http"]).splitlines():
            mm = re.match(r'mx_like_sync_lag_ms_bucket\{node="[^"]+",le="([^"]+)"\} (\d+)', line)
            if mm:
                buckets[mm.group(1)] = buckets.get(mm.group(1), 0) + int(mm.group(2))
    total = buckets.get("+Inf", 0)
    lag_p99 = None
    for le in ["100", "250", "500", "1000", "2000", "5000", "10000", "+Inf"]:
        if total and buckets.get(le, 0) >= 0.99 * total:
            lag_p99 = le
            break
    ratio = mx_rps / ceiling if ceiling else 0
    rows = [
        {"bench": "likes.toggles_per_s", "value": round(mx_rps), "unit": "toggles/s",
         "nodes": 3, "connections": 3 * CONNS, "seconds": DUR},
        {"bench": "likes.redis_ceiling_per_s", "value": round(ceiling), "unit": "scripts/s"},
        {"bench": "likes.ratio_vs_ceiling", "value": round(ratio, 3), "goal": ">= 0.6"},
        {"bench": "likes.p99_ms", "value": round(mx_p99, 2), "goal": "<= 10"},
        {"bench": "likes.errors", "value": mx_bad, "goal": 0},
        {"bench": "likes.sync_lag_p99_ms_le", "value": lag_p99, "batches": total,
         "goal": "<= 2000", "buckets": buckets},
        {"bench": "likes.load_average", "value": load0, "after": mxstack.loadavg()},
    ]
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
