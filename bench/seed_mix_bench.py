"""seed_mix_bench.py - the replaced service's own load test, on one mxnode.

Run by bench/seed_mix.sh. The replaced service measured 235 requests/s,
p99 160 ms, 0 failures on 2 vCPU with Locust: tasks weighted 3:1 between
reading a random character's equipment expectation and toggling a like of a
random character (../shared/DESIGN.md section 10). Here: one node with the
default settings except MX_RATE_LIMIT=0 (every request comes from one
loopback address, so the per-IP limit would measure the limiter), 200 users
signed in, 50 characters whose expectation documents are computed once
before measuring, and wrk with a Lua script choosing 3 reads to 1 toggle at
random (random character, random user).

Two runs in the same script:
  1. paced at the goal rate (50 x 235 = 11,750 requests/s; wrk's delay()
     spaces each connection's requests, so the rate is offered, not
     saturated): p99 and errors at that rate;
  2. unpaced (as fast as the connections go): the most it does.
wrk is closed loop per connection; pacing is as close to the open loop of
the goal as Debian's wrk gets (coordinated omission is possible when a
response takes longer than the pacing interval).
"""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mxstack  # noqa: E402

SEED_RPS = 235.0
GOAL_RPS = 50 * SEED_RPS
DUR = int(os.environ.get("MIX_SECONDS", "15"))
CONNS = int(os.environ.get("MIX_CONNS", "64"))
BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"


def wrk(args, lua):
    out = subprocess.run(["wrk", *args, "--latency", "-s", lua], capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, errs.groups())) if errs else 0)
    return rps, p99, bad, out


def main():
    st = mxstack.Stack(BUILD)
    st.redis()
    st.mariadb()
    st.stub()
    n = st.node("mix", {"MX_RATE_LIMIT": "0"})
    port = n["http"]
    users = st.users(200, [port])
    names = st.targets(50, users)
    for nm in names:  # computed once: the measured reads are the cached path
        code, body = st.get(f"http://127.0.0.1:{port}/api/v4/characters/{mxstack.quote(nm)}/expectation")
        if code != 200:
            raise SystemExit(f"seed_mix: warming {nm}: {code} {body[:200]}")
    lua_path = os.path.join(st.tmp, "mix.lua")
    with open(lua_path, "w") as f:
        f.write("local tokens = {%s}\n" % ",".join(json.dumps(u["token"]) for u in users))
        f.write("local names = {%s}\n" % ",".join(json.dumps(mxstack.quote(x)) for x in names))
        f.write("local pace = tonumber(os.getenv('MIX_DELAY_MS') or '0')\n"
                "math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))\n"
                "request = function()\n"
                "  local nm = names[math.random(#names)]\n"
                "  if math.random(4) == 1 then\n"
                "    local t = tokens[math.random(#tokens)]\n"
                "    return wrk.format('POST', '/api/v2/characters/' .. nm .. '/like',"
                " {['Authorization'] = 'Bearer ' .. t, ['Content-Length'] = '0'}, '')\n"
                "  end\n"
                "  return wrk.format('GET', '/api/v4/characters/' .. nm .. '/expectation',"
                " {['Accept-Encoding'] = 'gzip'})\n"
                "end\n"
                "if pace > 0 then delay = function() return pace end end\n")
    url = f"http://127.0.0.1:{port}"
    load0 = mxstack.loadavg()
    # paced: CONNS connections, each one request per delay ms
    # wrk waits delay ms after each answer: offer a quarter more than the goal
    # so that the achieved rate reaches it
    delay = max(1, int(CONNS * 1000 / (GOAL_RPS * 1.25)))
    os.environ["MIX_DELAY_MS"] = str(delay)
    p_rps, p_p99, p_bad, p_out = wrk(["-t2", f"-c{CONNS}", f"-d{DUR}s", url], lua_path)
    os.environ["MIX_DELAY_MS"] = "0"
    u_rps, u_p99, u_bad, u_out = wrk(["-t2", f"-c{CONNS}", f"-d{DUR}s", url], lua_path)
    print(p_out, u_out, file=sys.stderr)
    rows = [
        {"bench": "seed_mix.paced.offered_rps", "value": round(CONNS * 1000 / delay),
         "connections": CONNS, "delay_ms": delay},
        {"bench": "seed_mix.paced.rps", "value": round(p_rps), "ratio_vs_seed": round(p_rps / SEED_RPS, 1),
         "goal": ">= 50 (11750 requests/s)"},
        {"bench": "seed_mix.paced.p99_ms", "value": round(p_p99, 2), "goal": "<= 160"},
        {"bench": "seed_mix.paced.errors", "value": p_bad, "goal": 0},
        {"bench": "seed_mix.unpaced.rps", "value": round(u_rps), "ratio_vs_seed": round(u_rps / SEED_RPS, 1)},
        {"bench": "seed_mix.unpaced.p99_ms", "value": round(u_p99, 2)},
        {"bench": "seed_mix.unpaced.errors", "value": u_bad},
        {"bench": "seed_mix.load_average", "value": load0, "after": mxstack.loadavg()},
    ]
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
