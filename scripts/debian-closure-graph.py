#!/usr/bin/env python3
"""Writes a realistic closure reference graph from this machine's dpkg database.

Each installed Debian package in the dependency closure of the given roots
becomes a fake store path (/nix/store/<hash>-<name>-<version>) whose narSize is
its Installed-Size and whose references are its Depends/Pre-Depends that are
installed. The result has the shape of Nix's exportReferencesGraph output and
is used to measure `ocipack layers` on a graph with a real shape.

usage: debian-closure-graph.py ROOT_PACKAGE... > graph.json
"""
import hashlib
import json
import re
import subprocess
import sys


def installed():
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${Installed-Size}\t${Pre-Depends}, ${Depends}\t${Provides}\n"],
        check=True, capture_output=True, text=True).stdout
    pkgs, provides = {}, {}
    for line in out.splitlines():
        name, ver, size, deps, prov = line.split("\t")
        alts = [[re.split(r"[ :(]", a.strip())[0] for a in d.split("|")] for d in deps.split(",") if d.strip()]
        pkgs[name] = (ver, int(size or 0) * 1024, alts)
        for p in prov.split(","):
            if p.strip():
                provides.setdefault(re.split(r"[ (]", p.strip())[0], name)
    return pkgs, provides


def main(roots):
    pkgs, provides = installed()

    def resolve(alts):
        for a in alts:
            if a in pkgs:
                return a
            if a in provides:
                return provides[a]
        return None

    seen, todo = set(), [r for r in roots if r in pkgs]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo.extend(d for d in (resolve(a) for a in pkgs[p][2]) if d)

    def path(p):
        h = hashlib.sha256(f"{p}-{pkgs[p][0]}".encode()).hexdigest()[:32]
        return f"/nix/store/{h}-{p}-{pkgs[p][0]}"

    graph = []
    for p in sorted(seen):
        refs = sorted({path(d) for d in (resolve(a) for a in pkgs[p][2]) if d in seen} | {path(p)})
        graph.append({"path": path(p), "narSize": pkgs[p][1], "references": refs})
    json.dump(graph, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main(sys.argv[1:])
