#!/usr/bin/env python3
"""validate.py OPENAPI.yaml EXCHANGES.jsonl [ROUTES.c] - check recorded answers against the document.

Each line of EXCHANGES is {"method","path","status","headers":{lower-case
name: value},"body": text}. For each answer:
  - the path must match one of the document's path templates and the
    method (HEAD as GET) one of its operations;
  - the status must be one of the operation's responses (or "default");
  - a JSON body must validate against the response's schema (JSON Schema
    2020-12, as OpenAPI 3.1 uses it; the document's objects forbid members
    they do not list, so an undocumented field fails here);
  - the response's documented headers marked required must be present, and
    so must the document's top-level x-mx-common-headers.
Finally every operation of the document must have been exercised once, and
(with ROUTES.c, actors/api/app_routes.c) every route in the node's route
table must be in the document, exercised or not.
Exit status 0 when all holds, 1 with a list of the failures otherwise.
"""
import json
import re
import sys
from urllib.parse import unquote

import yaml
from jsonschema import Draft202012Validator


def resolve(node, root, seen=()):
    """Inline every local $ref (the document's schemas are not recursive)."""
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/") or ref in seen:
                raise SystemExit(f"unsupported or recursive $ref {ref}")
            target = root
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            rest = {k: v for k, v in node.items() if k != "$ref"}
            merged = resolve(target, root, seen + (ref,))
            if rest:
                return {"allOf": [merged, resolve(rest, root, seen)]}
            return merged
        return {k: resolve(v, root, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, root, seen) for v in node]
    return node


def template_regex(template):
    parts = []
    for seg in template.strip("/").split("/"):
        parts.append("[^/]+" if seg.startswith("{") and seg.endswith("}") else re.escape(seg))
    return re.compile("^/" + "/".join(parts) + "$")


def routes_missing(routes_c, spec):
    """Routes of the node's table ({"GET", "/path", fn, flags}) the document lacks."""
    with open(routes_c, encoding="utf-8") as f:
        src = f.read()
    table = src[src.index("routes[] = {"):]
    table = table[:table.index("};")]
    norm = lambda t: re.sub(r"\{[^}]*\}", "{}", t)
    documented = {(m, norm(t)) for t, item in spec["paths"].items() for m in item}
    out = []
    for method, path in re.findall(r'\{"([A-Z]+)", "(/[^"]*)"', table):
        if path.endswith("/**"):
            # a prefix served by one handler: some documented path must use it
            if not any(m == method.lower() and t.startswith(path[:-2]) for m, t in documented):
                out.append(f"{method} {path}: route prefix with no documented path")
        elif (method.lower(), norm(path)) not in documented:
            out.append(f"{method} {path}: route not in the document")
    return out


def main():
    spec_path, ex_path = sys.argv[1], sys.argv[2]
    with open(spec_path, encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    if not str(spec.get("openapi", "")).startswith("3.1"):
        raise SystemExit("not an OpenAPI 3.1 document")
    common = spec.get("x-mx-common-headers", [])
    # literal templates first, so /expectation/recalculate is not taken for a {param}
    templates = sorted(spec["paths"], key=lambda t: t.count("{"))
    compiled = [(t, template_regex(t)) for t in templates]
    used = set()
    failures = []
    n = 0
    with open(ex_path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            n += 1
            e = json.loads(line)
            method = e["method"].lower()
            path = e["path"].split("?", 1)[0]
            where = f"{e['method']} {e['path']} -> {e['status']}"
            tpl = next((t for t, rx in compiled if rx.match(unquote(path)) or rx.match(path)), None)
            item = spec["paths"][tpl] if tpl else {}
            op = item.get("get" if method == "head" else method)
            if op is not None:
                used.add((tpl, method))
            elif method == "options":
                op = spec["x-mx-options"]  # answered for every path, before any route
                tpl = tpl or "(any path)"
            elif e["status"] in (403, 404, 405):
                op = spec["x-mx-any-route"]  # a path or method no route serves
                tpl = tpl or "(any path)"
            elif tpl is None:
                failures.append(f"{where}: path not in the document")
                continue
            else:
                failures.append(f"{where}: method not documented for {tpl}")
                continue
            responses = op.get("responses", {})
            resp = (responses.get(str(e["status"])) or responses.get("default")
                    or spec["x-mx-any-route"]["responses"].get(str(e["status"])))
            if resp is None:
                failures.append(f"{where}: status not documented for {e['method']} {tpl}")
                continue
            resp = resolve(resp, spec)
            headers = e["headers"]
            for h in common:
                if h.lower() not in headers:
                    failures.append(f"{where}: common header {h} missing")
            for name, h in (resp.get("headers") or {}).items():
                if h.get("required") and name.lower() not in headers:
                    failures.append(f"{where}: header {name} missing")
            content = resp.get("content")
            body = e["body"]
            if not content:
                if body:
                    failures.append(f"{where}: a body where the document has none: {body[:120]}")
                continue
            ctype = headers.get("content-type", "").split(";")[0].strip()
            media = content.get(ctype)
            if media is None:
                failures.append(f"{where}: content type {ctype!r} not in {list(content)}")
                continue
            schema = media.get("schema")
            if schema is None or not ctype.endswith("json"):
                continue
            try:
                doc = json.loads(body)
            except ValueError as err:
                failures.append(f"{where}: body is not JSON: {err}")
                continue
            errors = sorted(Draft202012Validator(schema).iter_errors(doc), key=lambda x: list(x.path))
            for err in errors[:5]:
                loc = "/".join(str(p) for p in err.absolute_path)
                failures.append(f"{where}: at /{loc}: {err.message[:300]}")
    for tpl, item in spec["paths"].items():
        for method in item:
            if method in ("get", "post", "put", "patch", "delete", "options") and (tpl, method) not in used:
                failures.append(f"{method.upper()} {tpl}: documented but never exercised")
    if len(sys.argv) > 3:
        failures += routes_missing(sys.argv[3], spec)
    for msg in failures:
        print("contract:", msg)
    print(f"contract: {n} answers, {len(used)} operations exercised, {len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
