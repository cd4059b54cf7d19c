"""likes_bench.py - toggles/s through three mxnode against the Redis ceiling.

Run by bench/likes.sh. Starts the stack (bench/mxstack.py), signs in 200
users, then in the same run:
  1. the ceiling: redis-benchmark runs the same toggle script (EVALSHA, the
     source read from actors/likes/likes_common.c) straight at the same
     Redis with 50 clients;
  2. mx: three wrk processes (one per node, 1 thread, C connections each)
     POST random (user, character) toggles for D seconds, as fast as they go;
  3. the same paced at 0.6 x the ceiling (wrk's delay()): the p99 at the
     goal's rate;
  4. the like-sync lag histogram (Prometheus, summed over the nodes).
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
    lua.write("local pace = tonumber(os.getenv('LIKES_DELAY_MS') or '0')\n"
              "if pace > 0 then delay = function() return pace end end\n")
    lua.write("math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))\n"
              "request = function()\n"
              "  local t = tokens[math.random(#tokens)]\n"
              "  local p = paths[math.random(#paths)]\n"
              "  return wrk.format('POST', p, {['Authorization'] = 'Bearer ' .. t,"
              " ['Content-Length'] = '0'}, '')\n"
              "end\n")
    lua.close()
    load0 = mxstack.loadavg()
    # the ceiling: the same script, straight at the same Redis
    sha = st.rcli("SCRIPT", "LOAD", lua_source("mx__lk_toggle_lua"))
    st.rcli("HSET", "mx:mx:{lk0}:n", "ceiling", "0")
    k = ["mx:mx:{lk0}:r:ceiling", "mx:mx:{lk0}:n", "mx:mx:{lk0}:p:ceiling", "mx:mx:{lk0}:d",
         "mx:mx:{lk0}:ign", "mx:mx:{lk0}:t"]
    rb = subprocess.run(["redis-benchmark", "-p", str(st.redis_port), "-c", "50", "-n", "200000",
                         "-r", "100000", "-q", "EVALSHA", sha, str(len(k)), *k, "ceiling",
                         "acct__rand_int__", "ceiling", str(int(time.time() * 1000))],
                        capture_output=True, text=True)
    m = re.findall(r"([\d.]+) requests per second", rb.stdout)
    ceiling = float(m[-1]) if m else 0.0
    if not ceiling:
        raise SystemExit("likes bench: the ceiling run failed: " + (rb.stdout + rb.stderr)[-400:])
    st.rcli("DEL", *k)

    def run_wrk(delay_ms):
        env = dict(os.environ, LIKES_DELAY_MS=str(delay_ms))
        ws = [subprocess.Popen(["wrk", "-t1", f"-c{CONNS}", f"-d{DUR}s", "--latency", "-s",
                                lua.name, f"http://127.0.0.1:{p}"], stdout=subprocess.PIPE,
                               text=True, env=env) for p in ports]
        outs = [w.communicate()[0] for w in ws]
        for o in outs:
            print(o, file=sys.stderr)
        res = [wrk_parse(o) for o in outs]
        return sum(r[0] for r in res), max(r[1] for r in res), sum(r[2] for r in res)

    def lag_buckets():
        b = {}
        for n in st.nodes:
            for line in st.prom(n["http"]).splitlines():
                mm = re.match(r'mx_like_sync_lag_ms_bucket\{node="[^"]+",le="([^"]+)"\} (\d+)', line)
                if mm:
                    b[mm.group(1)] = b.get(mm.group(1), 0) + int(mm.group(2))
        return b

    def caught_up():
        mxstack.wait(lambda: all(st.rcli("ZCARD", f"mx:mx:{{lk{p}}}:d") == "0" for p in range(16)),
                     60, "like-sync catching up")

    # as fast as 3 x CONNS connections go
    mx_rps, mx_p99, mx_bad = run_wrk(0)
    caught_up()
    before_paced = lag_buckets()
    # paced at 0.6 x the ceiling: the latency at the goal's rate
    target = 0.6 * ceiling
    delay = max(1, round(3 * CONNS * 1000 / target)) if target else 0
    pc_rps, pc_p99, pc_bad = run_wrk(delay) if delay else (0, 0, 0)
    caught_up()
    after = lag_buckets()

    def p99(b):
        total = b.get("+Inf", 0)
        for le in ["100", "250", "500", "1000", "2000", "5000", "10000", "+Inf"]:
            if total and b.get(le, 0) >= 0.99 * total:
                return le, total
        return None, total

    paced = {k: after.get(k, 0) - before_paced.get(k, 0) for k in after}
    lag_all, total = p99(after)
    lag_paced, total_paced = p99(paced)
    ratio = mx_rps / ceiling if ceiling else 0
    rows = [
        {"bench": "likes.toggles_per_s", "value": round(mx_rps), "unit": "toggles/s",
         "nodes": 3, "connections": 3 * CONNS, "seconds": DUR},
        {"bench": "likes.redis_ceiling_per_s", "value": round(ceiling), "unit": "scripts/s"},
        {"bench": "likes.ratio_vs_ceiling", "value": round(ratio, 3), "goal": ">= 0.6"},
        {"bench": "likes.unpaced_p99_ms", "value": round(mx_p99, 2)},
        {"bench": "likes.paced_offered_per_s", "value": round(3 * CONNS * 1000 / delay) if delay else 0,
         "achieved": round(pc_rps), "note": "0.6 x the ceiling"},
        {"bench": "likes.paced_p99_ms", "value": round(pc_p99, 2), "goal": "<= 10"},
        {"bench": "likes.errors", "value": mx_bad + pc_bad, "goal": 0},
        {"bench": "likes.sync_lag_p99_ms_le", "value": lag_paced, "batches": total_paced,
         "goal": "<= 2000", "note": "batches committed during the paced run",
         "buckets": paced},
        {"bench": "likes.sync_lag_p99_ms_le.all", "value": lag_all, "batches": total,
         "note": "both runs; the unpaced one saturates the 2 cores", "buckets": after},
        {"bench": "likes.load_average", "value": load0, "after": mxstack.loadavg()},
    ]
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
