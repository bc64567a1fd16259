#!/usr/bin/env python3
"""Bytes that change between two builds differing only in the application.

Compares `ocipack layers` (the application alone on top) with the
popularity-only strategy of nixpkgs' buildLayeredImage (the N-1 most popular
paths get a layer each, everything else, the application included, shares
the last one), on tests/data/graphs/debian-services.json plus a 13 MiB app.

usage: scripts/bench-layers.py [OCIPACK]   (default target/release/ocipack)
"""
import json, os, subprocess, sys, tempfile

repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ocipack = sys.argv[1] if len(sys.argv) > 1 else os.path.join(repo, "target/release/ocipack")
base = json.load(open(os.path.join(repo, "tests/data/graphs/debian-services.json")))
referenced = {r for n in base for r in n["references"] if r != n["path"]}
roots = [n["path"] for n in base if n["path"] not in referenced]


def graph(app, size):
    return base + [{"path": app, "narSize": size, "references": roots}]


def ours(g, mx):
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(g, f)
        f.flush()
        out = subprocess.run([ocipack, "layers", "--json", "--max", str(mx), f.name], check=True, capture_output=True, text=True).stdout
    return [(tuple(l["paths"]), l["narSize"]) for l in json.loads(out)["layers"]]


def popularity_only(g, mx):
    parents = {n["path"]: [] for n in g}
    for n in g:
        for r in n["references"]:
            if r != n["path"]:
                parents[r].append(n["path"])

    def ancestors(p):
        seen, stack = set(), [p]
        while stack:
            for q in parents[stack.pop()]:
                if q not in seen:
                    seen.add(q)
                    stack.append(q)
        return len(seen)

    size = {n["path"]: n["narSize"] for n in g}
    order = sorted(size, key=lambda p: (-ancestors(p), p))
    groups = [(p,) for p in order[: mx - 1]] + [tuple(sorted(order[mx - 1:]))]
    return [(grp, sum(size[p] for p in grp)) for grp in groups]


a = graph("/nix/store/0000000000000000000000000000000a-app-1.0", 12 << 20)
b = graph("/nix/store/0000000000000000000000000000000b-app-1.1", 13 << 20)
total = sum(n["narSize"] for n in b)
print(f"closure: {len(b)} paths, {total / 1e6:.1f} MB; the app is 13.6 MB")
print(f"{'max layers':>10} {'ocipack layers':>16} {'popularity-only':>16}")
for mx in (5, 20, 100):
    row = []
    for strategy in (ours, popularity_only):
        la, lb = strategy(a, mx), strategy(b, mx)
        changed = sum(sz for grp, sz in lb if (grp, sz) not in la)
        row.append(f"{changed / 1e6:13.1f} MB")
    print(f"{mx:>10} {row[0]:>16} {row[1]:>16}")
