#!/usr/bin/env python3
"""metrics_parity.py - Prometheus and mxctl stats show the same counters.

Both are generated from one registry (runtime/mx_metrics.h); this proves it
on a live node: every registered set (a sample with actor= and instance=
labels) has exactly as many samples in /actuator/prometheus as fields in
the metrics section of `mxctl --json stats`, and their values are equal.

The scrape itself moves the counters of the HTTP acceptor that serves it,
and the stats call those of the admin endpoint, so each round is scrape,
stats, scrape on one kept-alive connection (one acceptor): a set whose
samples are equal in both scrapes was quiescent around the stats call and
must match it exactly. Every set but the serving acceptor and the admin
endpoint must be quiescent and equal in some round (a few rounds absorb a
background tick); those two must still match in count and lie between the
two scrapes counter by counter. Exit 0 or 1 with the differences."""
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mxlive  # noqa: E402

ROUNDS = 20
SELF_MOVED = ("http", "admin")  # moved by the scrape and by the stats call themselves


def by_set(samples):
    sets = collections.defaultdict(list)
    for name, labels, value in samples:
        if "actor" in labels and "instance" in labels:
            sets[(labels["actor"], labels["instance"])].append(value)
    return {k: sorted(v) for k, v in sets.items()}


def stats_sets(st):
    out = {}
    for actor, insts in (st.get("metrics") or {}).items():
        for inst, fields in insts.items():
            out[(actor, inst)] = sorted(float(v) for v in fields.values())
    return out


def main():
    errors = []
    with mxlive.Node() as node:
        matched = set()
        last = None
        for _ in range(ROUNDS):
            p1 = by_set(mxlive.parse_prom(node.prom()))
            st = stats_sets(node.stats())
            p2 = by_set(mxlive.parse_prom(node.prom()))
            if not st:
                errors.append("mxctl stats has no metrics section")
                break
            if set(p1) != set(st) or set(p2) != set(st):
                errors.append(f"sets differ: prometheus {sorted(p1)} stats {sorted(st)}")
                break
            for k in st:
                if len(p1[k]) != len(st[k]):
                    errors.append(f"{k}: {len(p1[k])} samples in Prometheus, "
                                  f"{len(st[k])} fields in stats")
                if p1[k] == p2[k] and p1[k] == st[k]:
                    matched.add(k)
            moving = [k for k in st if p1[k] != p2[k]]
            last = (p1, st, p2, moving)
            http_moving = [k for k in moving if k[0] == "http"]
            others = [k for k in moving if k[0] not in SELF_MOVED]
            if errors or (len(http_moving) <= 1 and not others and
                          set(st) - matched <= set(moving)):
                break
        if not errors:
            p1, st, p2, moving = last
            unmatched = set(st) - matched - set(moving)
            if len([k for k in moving if k[0] == "http"]) > 1 or unmatched:
                errors.append(f"never quiescent and equal: {sorted(unmatched | set(moving))}")
            for k in moving:  # the acceptor serving the scrapes, the admin endpoint
                if k[0] not in SELF_MOVED:
                    errors.append(f"{k} moved between two scrapes of an idle node")
                elif not all(a <= s <= b for a, s, b in zip(p1[k], st[k], p2[k])):
                    errors.append(f"{k}: stats {st[k]} not between the scrapes {p1[k]} {p2[k]}")
            print(f"metrics_parity: {len(st)} sets, {sum(len(v) for v in st.values())} counters; "
                  f"equal: {sorted(matched)}")
            if not any(a == "fetch" for a, _ in st) or not any(a == "http" for a, _ in st):
                errors.append(f"expected the fetch and http sets, got {sorted(st)}")
    for e in errors:
        print("metrics_parity:", e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
