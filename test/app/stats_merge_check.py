#!/usr/bin/env python3
"""stats_merge_check.py - checks `mxctl --cluster URL --json stats` for
app_stats_test.c against each member's own `mxctl --node ADDR --json stats`.

usage: stats_merge_check.py MXCTL REDIS_URL HTTP_REQUESTS NAME=ADMIN... [--dead NAME]

- every counter of "merged" equals the sum of the members' own answers in
  the same output, and every gauge lists each answering member's own value;
- counters that do not move on an idle node (HTTP, cache, fetcher, dead
  letters, actors spawned) equal the sum of the members' separate
  `mxctl --node` answers, and sections.http.requests equals HTTP_REQUESTS,
  the number of requests the test made;
- with --dead NAME: mxctl exits 1, NAME is listed in "missing" with an
  error, and "answered" counts the others;
- the table (no --json) says how many answered, names the missing member,
  shows the request total and uptime_ms once per member.
Prints what differs and exits 1 on any failure.
"""
import json
import subprocess
import sys

STABLE = ("sections.http.requests", "sections.http.responses_2xx",
          "sections.http.responses_4xx", "sections.http.conns_accepted",
          "sections.cache.", "sections.fetcher.", "deadletters.", "spawned")


def flatten(obj, prefix, out):
    if isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, prefix + "." + k if prefix else k, out)
    elif isinstance(obj, bool):
        out[prefix] = int(obj)
    elif isinstance(obj, (int, float)):
        out[prefix] = obj
    return out


def run(args):
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def main():
    mxctl, url, want_http = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rest = sys.argv[4:]
    dead = None
    if "--dead" in rest:
        i = rest.index("--dead")
        dead = rest[i + 1]
        rest = rest[:i] + rest[i + 2:]
    members = dict(a.split("=", 1) for a in rest)
    bad = []

    own = {}
    for name, admin in members.items():
        if name == dead:
            continue
        rc, out, err = run([mxctl, "--node", admin, "--json", "stats"])
        if rc != 0:
            bad.append("mxctl --node %s stats: exit %d: %s" % (admin, rc, err))
            continue
        own[name] = flatten(json.loads(out), "", {})
        own[name].pop("ok", None)

    rc, out, err = run([mxctl, "--cluster", url, "--json", "stats"])
    if rc != (1 if dead else 0):
        bad.append("mxctl --cluster stats: exit %d (want %d): %s" % (rc, 1 if dead else 0, err))
    doc = json.loads(out)
    merged = doc["merged"]
    answers = {n["member"]: flatten(n["answer"], "", {}) for n in doc["nodes"]
               if n.get("answer") is not None}
    for a in answers.values():
        a.pop("ok", None)

    if merged["members"] != len(members):
        bad.append("members %d, want %d" % (merged["members"], len(members)))
    if merged["answered"] != len(members) - (1 if dead else 0):
        bad.append("answered %d" % merged["answered"])
    missing = [m["member"] for m in merged["missing"]]
    if missing != ([dead] if dead else []):
        bad.append("missing %s, want %s" % (missing, [dead] if dead else []))
    if dead and not all(m.get("error") for m in merged["missing"]):
        bad.append("a missing member without an error: %s" % merged["missing"])
    if merged["paths_dropped"] != 0:
        bad.append("paths_dropped %d" % merged["paths_dropped"])
    if set(answers) != set(own):
        bad.append("answers from %s, want %s" % (sorted(answers), sorted(own)))

    counters, gauges = merged["counters"], merged["gauges"]
    if len(counters) < 100 or len(gauges) < 10:
        bad.append("only %d counters and %d gauges merged" % (len(counters), len(gauges)))
    if set(counters) & set(gauges):
        bad.append("paths both counter and gauge: %s" % sorted(set(counters) & set(gauges)))
    # the same output: sums and per-member values
    every = set()
    for a in answers.values():
        every |= set(a)
    if every != set(counters) | set(gauges):
        bad.append("paths not merged: %s; merged but not answered: %s" % (
            sorted(every - set(counters) - set(gauges))[:10],
            sorted(set(counters) | set(gauges) - every)[:10]))
    for path, v in counters.items():
        s = sum(a.get(path, 0) for a in answers.values())
        if abs(s - v) > 1e-6 * max(1, abs(s)):
            bad.append("counter %s: merged %s, members' sum %s" % (path, v, s))
    for path, per in gauges.items():
        want = {n: a[path] for n, a in answers.items() if path in a}
        if per != want:
            bad.append("gauge %s: %s, members say %s" % (path, per, want))
    for g in ("uptime_ms", "schedulers", "sections.http.conns_open"):
        if set(gauges.get(g, {})) != set(own):
            bad.append("gauge %s not kept per member: %s" % (g, gauges.get(g)))
    # separate calls: counters an idle node does not move
    checked = 0
    for path, v in counters.items():
        if not path.startswith(STABLE):
            continue
        s = sum(o.get(path, 0) for o in own.values())
        checked += 1
        if s != v:
            bad.append("counter %s: merged %s, sum of mxctl --node answers %s" % (path, v, s))
    if checked < 20:
        bad.append("only %d stable counters compared" % checked)
    if counters.get("sections.http.requests") != want_http:
        bad.append("sections.http.requests %s, the test made %d" % (
            counters.get("sections.http.requests"), want_http))

    # the table for people says the same
    rc, out, err = run([mxctl, "--cluster", url, "stats"])
    head = "== cluster: %d of %d members answered" % (len(own), len(members))
    if head not in out:
        bad.append("table without %r:\n%s" % (head, out))
    if dead and not any(l.startswith("missing  %s " % dead) for l in out.splitlines()):
        bad.append("table does not name %s missing" % dead)
    if ["sections.http.requests", str(want_http)] not in [l.split() for l in out.splitlines()]:
        bad.append("table without the sum of sections.http.requests")
    if not any(l.split()[0] == "uptime_ms" and len(l.split()) == 1 + len(own)
               for l in out.splitlines() if l.strip()):
        bad.append("table without uptime_ms per member")

    for b in bad:
        print("stats_merge_check: " + b)
    print("stats_merge_check: %d counters, %d gauges, %d stable compared, %s" % (
        len(counters), len(gauges), checked, "FAIL" if bad else "ok"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
