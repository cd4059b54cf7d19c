#!/usr/bin/env python3
"""check_metrics.py - deploy/prometheus.yml, deploy/alerts.yml and the
Grafana dashboard checked against a live node, so a renamed metric breaks
the build.

1. promtool check config deploy/prometheus.yml and check rules
   deploy/alerts.yml (Debian's prometheus package);
2. one real mxnode (test/node/mxlive.py) is scraped at the metrics_path
   prometheus.yml names, and promtool check metrics reads the text: a parse
   error fails, and so does every lint problem but two: a missing HELP on a
   family still written by hand (the registry's all have one), and the
   _ms unit suffix mx uses throughout (docs/metrics.md);
3. every selector in an alert expression or a dashboard query names a
   metric the live node serves, and every label value it matches with =
   (or with =~ "a|b") appears on that metric, so renaming
   mx_cache_total{event="l1_hit"} fails here too.
Exit 0 or 1 with the reasons."""
import json
import os
import re
import subprocess
import sys

import yaml

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.join(here, "..", "..")
sys.path.insert(0, os.path.join(root, "test", "node"))
import mxlive  # noqa: E402

DEPLOY = os.path.join(root, "deploy")
SELECTOR_RE = re.compile(r"\b(mx_[a-z0-9_]+)(\{([^}]*)\})?")
MATCHER_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
NO_HELP = "no help text"
MS_UNIT = "metric names should not contain abbreviated units"
errors = []


def promtool(*args, stdin=None):
    r = subprocess.run(["promtool", *args], input=stdin, capture_output=True, text=True,
                       timeout=60)
    return r.returncode, r.stdout + r.stderr


def exprs():
    """(where, PromQL) of every alert and dashboard query."""
    with open(os.path.join(DEPLOY, "alerts.yml"), encoding="utf-8") as f:
        for g in yaml.safe_load(f)["groups"]:
            for r in g["rules"]:
                yield f"alerts.yml {r.get('alert') or r.get('record')}", r["expr"]
    with open(os.path.join(DEPLOY, "grafana", "mx-cluster.json"), encoding="utf-8") as f:
        dash = json.load(f)
    for p in dash["panels"]:
        for t in p.get("targets", []):
            yield f"mx-cluster.json panel {p['title']!r}", t["expr"]
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            yield f"mx-cluster.json variable {v['name']}", q.get("query", "")


def main():
    rc, out = promtool("check", "config", os.path.join(DEPLOY, "prometheus.yml"))
    if rc != 0:
        errors.append(f"promtool check config:\n{out}")
    rc, out = promtool("check", "rules", os.path.join(DEPLOY, "alerts.yml"))
    if rc != 0:
        errors.append(f"promtool check rules:\n{out}")
    with open(os.path.join(DEPLOY, "prometheus.yml"), encoding="utf-8") as f:
        paths = {j.get("metrics_path", "/metrics") for j in yaml.safe_load(f)["scrape_configs"]}

    with mxlive.Node() as node:
        texts = {}
        for p in paths:
            status, body = node.get(p)
            if status != 200:
                errors.append(f"prometheus.yml scrapes {p}: the node answers {status}")
            texts[p] = body
    text = texts.get("/actuator/prometheus") or next(iter(texts.values()))
    samples = mxlive.parse_prom(text)
    names = {}
    registry = set()
    for name, labels, _ in samples:
        names.setdefault(name, []).append(labels)
        if "actor" in labels:
            registry.add(re.sub(r"_(bucket|sum|count)$", "", name))

    rc, out = promtool("check", "metrics", stdin=text)
    if rc not in (0, 3):  # 3: lint problems only, judged below
        errors.append(f"promtool check metrics cannot parse the live text:\n{out}")
    for line in out.splitlines():
        fam, _, problem = line.partition(" ")
        if not problem:
            continue
        if problem == MS_UNIT or (problem == NO_HELP and fam not in registry):
            continue
        errors.append(f"promtool check metrics: {line}")

    used = 0
    for where, expr in exprs():
        for m in SELECTOR_RE.finditer(expr):
            name, matchers = m.group(1), m.group(3) or ""
            used += 1
            if name not in names:
                errors.append(f"{where}: {name} is not in the live node's metrics")
                continue
            for label, op, value in MATCHER_RE.findall(matchers):
                if "$" in value or op in ("!=", "!~"):
                    continue
                wanted = value.split("|") if op == "=~" else [value]
                have = {lb.get(label) for lb in names[name]}
                for w in wanted:
                    if not re.fullmatch(r"[A-Za-z0-9_+.\-]*", w):
                        continue  # a real regular expression: not checked
                    if w not in have:
                        errors.append(f"{where}: no {name}{{{label}=\"{w}\"}} on the live node "
                                      f"(it has {sorted(h for h in have if h)})")
    if used == 0:
        errors.append("no mx_ metric found in alerts.yml or the dashboard")
    for e in errors:
        print("check_metrics:", e, file=sys.stderr)
    if not errors:
        print(f"check_metrics: {used} selectors in alerts.yml and mx-cluster.json all match the "
              f"{len(names)} metrics of a live node; promtool config/rules/metrics pass")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
