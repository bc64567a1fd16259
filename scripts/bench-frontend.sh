#!/usr/bin/env bash
# Frontend benchmarks (docs/benchmarks.md, "Frontend"):
#  1. Lighthouse (npm `lighthouse`, pinned in .cache/lighthouse) against the
#     standalone server assembled as images/frontend.toml lays it out, run by
#     Debian's chromium (CHROME_PATH): performance, accessibility, best practices.
#  2. Packing the standalone tree (thousands of small files) with ocipack
#     against tar | gzip -6 and tar | pigz -6: files/s and MB/s.
#
#  3. The frontend image's size against the same app on a node:*-slim style
#     base, built here with ocipack from Debian's packages (see slim()).
#
#   scripts/bench-frontend.sh [lighthouse|pack|slim|all]     (default all)
#   LIGHTHOUSE_FLAGS=--preset=desktop scripts/bench-frontend.sh lighthouse
#
# Needs: node, npm, chromium, GNU tar, gzip, pigz, bc, cargo; web/ built
# (tests/e2e/lib.sh web_build runs `npm ci && next build`). Writes under a temp dir.
set -euo pipefail
what=${1:-all}
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$repo/tests/e2e/lib.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-frontend.XXXXXX")
server_pid=
trap 'stop_pid "$server_pid"; rm -rf "$work"' EXIT
web_build >&2
standalone=$repo/web/.next/standalone

lighthouse() {
    local lh=$repo/.cache/lighthouse port cat
    if [ ! -x "$lh/node_modules/.bin/lighthouse" ]; then
        mkdir -p "$lh"
        [ -f "$lh/package.json" ] || echo '{"private": true}' >"$lh/package.json"
        (cd "$lh" && npm install --save-exact --no-audit --no-fund --loglevel=error --cache "$repo/.cache/npm" lighthouse@13.5.0) >&2
    fi
    # The image's layout: the standalone server, .next/static and public/ beside it.
    cp -a "$standalone" "$work/app"
    cp -a "$repo/web/.next/static" "$work/app/.next/static"
    cp -a "$repo/web/public" "$work/app/public"
    port=$(free_port)
    (cd "$work/app" && NODE_ENV=production HOSTNAME=127.0.0.1 PORT=$port SCORING_SERVICE_URL=http://127.0.0.1:9 \
        NEXT_TELEMETRY_DISABLED=1 exec node server.js) >"$work/server.log" 2>&1 &
    server_pid=$!
    wait_for_http 100 "http://127.0.0.1:$port/api/health" || die "the standalone server did not start: $(tail -3 "$work/server.log")"
    # shellcheck disable=SC2086 # LIGHTHOUSE_FLAGS: several flags, split on purpose
    CHROME_PATH=${CHROME_PATH:-/usr/bin/chromium} "$lh/node_modules/.bin/lighthouse" "http://127.0.0.1:$port/" \
        --quiet --output=json --output-path="$work/lh.json" \
        --only-categories=performance,accessibility,best-practices,seo \
        --chrome-flags="--headless=new --no-sandbox --disable-gpu" ${LIGHTHOUSE_FLAGS:-} >&2
    printf '\nLighthouse %s (%s form factor), Chromium %s\n' "$(jq -r .lighthouseVersion "$work/lh.json")" \
        "$(jq -r .configSettings.formFactor "$work/lh.json")" "$(jq -r .environment.hostUserAgent "$work/lh.json" | grep -o 'Chrome/[0-9.]*')"
    for cat in performance accessibility best-practices seo; do
        printf '%-16s %3.0f\n' "$cat" "$(jq -r ".categories[\"$cat\"].score * 100" "$work/lh.json")"
    done
    printf 'FCP %s, LCP %s, TBT %s, CLS %s\n' "$(jq -r '.audits["first-contentful-paint"].displayValue' "$work/lh.json")" \
        "$(jq -r '.audits["largest-contentful-paint"].displayValue' "$work/lh.json")" \
        "$(jq -r '.audits["total-blocking-time"].displayValue' "$work/lh.json")" \
        "$(jq -r '.audits["cumulative-layout-shift"].displayValue' "$work/lh.json")"
    jq -r '[.categories[].auditRefs[].id] as $ids | .audits | to_entries[]
        | select(.value.score != null and .value.score < 0.9 and (.value.scoreDisplayMode == "binary" or .value.scoreDisplayMode == "numeric"))
        | "  below 0.9: \(.key) (\(.value.score))"' "$work/lh.json" | sort -u
    stop_pid "$server_pid"
    server_pid=
}

pack() {
    # OCIPACK=path uses that binary instead of building one.
    local ocipack=${OCIPACK:-${CARGO_TARGET_DIR:-$repo/target}/release/ocipack} files bytes k
    [ -n "${OCIPACK:-}" ] || cargo build --release -q -p ocipack-cli --manifest-path "$repo/Cargo.toml"
    files=$(find "$standalone" -type f | wc -l)
    bytes=$(du -sb "$standalone" | cut -f1)
    printf '{"version": 1, "sourceDateEpoch": 1, "layer": {"kind": "files", "entries": [{"source": "%s", "target": "/app"}]}}\n' \
        "$standalone" >"$work/files.json"
    find "$standalone" -type f -exec cat {} + >/dev/null # warm the page cache for every tool
    now() { date +%s.%N; }
    declare -A secs size
    # Best of three: the machine is shared, the fastest run is the least disturbed.
    measure() { # name, output file, command...
        local name=$1 out=$2 t0 t i
        shift 2
        for i in 1 2 3; do
            rm -rf -- "$out" "$work/ocipack"
            t0=$(now)
            "$@"
            t=$(echo "$(now) - $t0" | bc)
            if [ "$i" = 1 ] || [ "$(echo "$t < ${secs[$name]}" | bc)" = 1 ]; then secs[$name]=$t; fi
        done
        size[$name]=$(stat -c %s "$out")
    }
    tarc() { tar --sort=name --mtime=@1 --owner=0 --group=0 --numeric-owner -cf - -C "$standalone" .; }
    export -f tarc
    export standalone
    measure "tar|gzip -6" "$work/gz.tgz" bash -c "tarc | gzip -6 > $work/gz.tgz"
    measure "tar|pigz -6" "$work/pigz.tgz" bash -c "tarc | pigz -6 > $work/pigz.tgz"
    measure "ocipack layer" "$work/ocipack/blob" "$ocipack" layer "$work/files.json" -o "$work/ocipack" >/dev/null
    printf '\nweb/.next/standalone: %s files, %s bytes; %s, %s cores\n\n' "$files" "$bytes" "$(uname -srm)" "$(nproc)"
    printf '%-14s %8s %12s %10s %8s\n' tool seconds output files/s MB/s
    for k in "tar|gzip -6" "tar|pigz -6" "ocipack layer"; do
        printf '%-14s %8.2f %12s %10.0f %8.1f\n' "$k" "${secs[$k]}" "${size[$k]}" \
            "$(echo "$files / ${secs[$k]}" | bc -l)" "$(echo "$bytes / ${secs[$k]} / 1048576" | bc -l)"
    done
}

# The same app on a node:*-slim style base, built with ocipack from this
# Debian 12 host (Docker Hub is not reachable here): layer 1 is what
# debian:bookworm-slim holds (the installed Priority: required packages and
# their Depends/Pre-Depends closure, without docs, man pages and locales, as
# the slim variant drops them), layer 2 what node:*-slim adds (node, npm,
# corepack), layer 3 the app. Compared with ocipack's frontend image.
slim() {
    local ocipack=${OCIPACK:-${CARGO_TARGET_DIR:-$repo/target}/release/ocipack} part total=0 b
    [ -n "${OCIPACK:-}" ] || cargo build --release -q -p ocipack-cli --manifest-path "$repo/Cargo.toml"
    python3 - "$work" "$standalone" "$repo/web" <<'PY'
import json, os, re, subprocess, sys
work, standalone, web = sys.argv[1:]
rows = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Priority}\t${db:Status-Status}\t${Depends}, ${Pre-Depends}\n"],
                      capture_output=True, text=True, check=True).stdout.splitlines()
installed, deps, required = set(), {}, []
for r in rows:
    name, prio, status, dep = r.split("\t")
    if status != "installed":
        continue
    installed.add(name)
    deps[name] = [[re.split(r"[ (:]", a.strip())[0] for a in d.split("|")] for d in dep.split(",") if d.strip()]
    if prio == "required":
        required.append(name)
seen, todo = set(), list(required)
while todo:
    p = todo.pop()
    if p in seen or p not in installed:
        continue
    seen.add(p)
    for alts in deps.get(p, []):
        todo.extend(a for a in alts[:1] + alts[1:] if a in installed)
files = []
drop = ("/usr/share/doc/", "/usr/share/man/", "/usr/share/info/", "/usr/share/locale/", "/usr/share/lintian/")
for p in sorted(seen):
    for f in subprocess.run(["dpkg", "-L", p], capture_output=True, text=True).stdout.splitlines():
        if f.startswith(drop) or not os.path.lexists(f) or os.path.isdir(f) and not os.path.islink(f):
            continue
        # Merged /usr: /bin/bash is /usr/bin/bash (the /bin link is added below).
        files.append(os.path.join(os.path.realpath(os.path.dirname(f)), os.path.basename(f)))
def plan(name, entries):
    json.dump({"version": 1, "sourceDateEpoch": 1, "layer": {"kind": "files", "entries": entries}},
              open(f"{work}/{name}.json", "w"))
links = [{"target": f"/{d}", "symlink": os.readlink(f"/{d}")} for d in ("bin", "sbin", "lib", "lib64") if os.path.islink(f"/{d}")]
plan("base", links + [{"source": f, "target": f} for f in sorted(set(files))])
node = [{"source": "/usr/bin/node", "target": "/usr/local/bin/node"}]
for d in ("npm", "corepack"):
    if os.path.isdir(f"/usr/lib/node_modules/{d}"):
        node.append({"source": f"/usr/lib/node_modules/{d}", "target": f"/usr/local/lib/node_modules/{d}"})
plan("node", node)
plan("app", [{"source": standalone, "target": "/app"}, {"source": f"{standalone}/../static", "target": "/app/.next/static"},
             {"source": f"{web}/public", "target": "/app/public"}])
print(f"node:slim-style base: {len(seen)} Debian packages, {len(set(files))} files", file=sys.stderr)
PY
    printf '\n%-34s %12s\n' "node:*-slim style, built here" "gzip bytes"
    for part in base node app; do
        "$ocipack" layer "$work/$part.json" -o "$work/slim-$part" >/dev/null
        b=$(stat -c %s "$work/slim-$part/blob")
        total=$((total + b))
        printf '%-34s %12s\n' "$part" "$b"
    done
    printf '%-34s %12s\n' "total" "$total"
}

case $what in
lighthouse) lighthouse ;;
pack) pack ;;
slim) slim ;;
all) lighthouse && pack && slim ;;
*) die "usage: scripts/bench-frontend.sh [lighthouse|pack|slim|all]" ;;
esac
