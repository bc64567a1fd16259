#!/usr/bin/env bash
# Layer cache benchmark (issue 14, docs/cache.md): `ocipack host --all`
#   1. with --no-cache (the baseline: every layer packed),
#   2. cold, with an empty cache,
#   3. again with nothing changed            (goal: at most 1/10 of cold),
#   4. after an edit to one service binary   (goal: at most that image's
#      application layer packed cold, plus 1 s),
# asserting that the cached outputs are byte-identical to --no-cache builds
# of the same inputs. Prints one table; figures go to docs/benchmarks.md.
#
#   cargo build --release -p ocipack-cli -p scoring-service -p face-detection-service \
#       -p face-embedding-service -p http-probe && scripts/fetch-assets.sh
#   scripts/bench-cache.sh            # or: BENCH_SERVICE=face-detection-service scripts/bench-cache.sh
#
# The binaries are copied into a private directory first, so a concurrent
# cargo build cannot change the inputs between runs. Needs jq.
set -euo pipefail
root=$(cd -- "$(dirname -- "$0")/.." && pwd)
cd "$root"
ocipack=${OCIPACK:-$root/target/release/ocipack}
service=${BENCH_SERVICE:-scoring-service}
src_bins=${BIN_DIR:-$root/target/release}
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-cache.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

[ -x "$ocipack" ] || { echo "bench-cache: $ocipack missing: cargo build --release -p ocipack-cli" >&2; exit 1; }
command -v jq >/dev/null || { echo "bench-cache: jq missing: apt-get install jq" >&2; exit 1; }
mkdir -p "$work/bin"
for b in scoring-service face-detection-service face-embedding-service http-probe; do
    [ -x "$src_bins/$b" ] || { echo "bench-cache: $src_bins/$b missing: cargo build --release -p $b" >&2; exit 1; }
    cp -- "$src_bins/$b" "$work/bin/$b"
done
export OCIPACK_CACHE_DIR=$work/cache

# secs CMD...: runs CMD quietly, prints its wall time in seconds.
secs() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >"$work/out.json" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l | xargs printf '%.2f'
}
host() { "$ocipack" host --all --json --bin-dir "$work/bin" "$@"; }
hits() { jq -r '"\(.cache.hits) hits, \(.cache.misses) misses"' "$work/out.json"; }
# same A B: the image layouts and plans under A and B hold the same bytes
# (NAME.attest/, the SBOMs of issue 15, are not the packer's output).
same() {
    diff -r --exclude='*.attest' "$1" "$2" >/dev/null ||
        { echo "bench-cache: $1 and $2 differ" >&2; diff -r --exclude='*.attest' "$1" "$2" | head >&2; exit 1; }
}

t_plan=$(secs host --plan-only)
t_nocache=$(secs host --no-cache -o "$work/nocache")
# The user's loop: the same output directory, built again and again.
t_cold=$(secs host -o "$work/images"); h_cold=$(hits)
same "$work/nocache" "$work/images"
t_warm=$(secs host -o "$work/images"); h_warm=$(hits)
same "$work/nocache" "$work/images"

# The edit: a service binary gains 4 KiB at its end (still a valid ELF).
head -c 4096 /dev/urandom >>"$work/bin/$service"
t_edit=$(secs host -o "$work/images"); h_edit=$(hits)
host --no-cache -o "$work/nocache2" >/dev/null 2>&1
same "$work/nocache2" "$work/images"

# That service's application layer alone, packed cold: the layers of its
# plan that hold the binary, as a plan of their own without the base layer.
image=$(jq -r --arg b "$service" '.images[] | select(.report.layers | length > 0) | .plan' "$work/out.json" |
    while read -r p; do
        jq -e --arg b "$service" '[.layers[] | select(.kind == "files") | .entries[] | select((.source // "") | endswith("/" + $b))] | length > 0' "$p" >/dev/null && echo "$p"
    done | head -1)
[ -n "$image" ] || { echo "bench-cache: no plan packs $service" >&2; exit 1; }
jq --arg b "$service" '.generateBase = false | .layers = [.layers[] | select(.kind == "files" and ([.entries[] | select((.source // "") | endswith("/" + $b))] | length > 0))]' \
    "$image" >"$work/app-layer.plan.json"
t_layer=$(secs "$ocipack" build --no-cache --json "$work/app-layer.plan.json" -o "$work/app-layer")

# The packer alone, without host's planning and SBOMs: `ocipack build` of
# the same plans, --no-cache against cached with nothing changed.
build_all() {
    local p n
    for p in "$work"/images/*.plan.json; do
        n=$(basename "$p" .plan.json)
        "$ocipack" build --json "$p" -o "$work/$1/$n" "${@:2}" >/dev/null || exit 1
    done
}
t_b_nocache=$(secs build_all b-nocache --no-cache)
build_all b-cached
t_b_warm=$(secs build_all b-cached)
same "$work/b-nocache" "$work/b-cached"

ratio=$(echo "$t_warm / $t_cold" | bc -l | xargs printf '%.3f')
budget=$(echo "$t_layer + 1" | bc -l | xargs printf '%.2f')
echo "ocipack host --all ($(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1))"
printf '%-44s %8s  %s\n' "run" "seconds" "cache"
printf '%-44s %8s  %s\n' "--no-cache (baseline)" "$t_nocache" "-"
printf '%-44s %8s  %s\n' "cold (empty cache)" "$t_cold" "$h_cold"
printf '%-44s %8s  %s\n' "rerun, nothing changed" "$t_warm" "$h_warm"
printf '%-44s %8s  %s\n' "rerun after editing $service" "$t_edit" "$h_edit"
printf '%-44s %8s  %s\n' "$service app layer alone, cold" "$t_layer" "-"
printf '%-44s %8s  %s\n' "host --all --plan-only (not cached)" "$t_plan" "-"
printf '%-44s %8s  %s\n' "ocipack build of those plans, --no-cache" "$t_b_nocache" "-"
printf '%-44s %8s  %s\n' "ocipack build of those plans, rerun cached" "$t_b_warm" "all hits"
echo "build only: rerun/no-cache = $(echo "$t_b_warm / $t_b_nocache" | bc -l | xargs printf '%.3f')"
echo "rerun/cold = $ratio (goal <= 0.1); edit $t_edit s vs budget $budget s (layer + 1 s)"
echo "outputs byte-identical to --no-cache builds: yes"
fail=0
[ "$(echo "$ratio <= 0.1" | bc -l)" = 1 ] || { echo "bench-cache: rerun goal missed" >&2; fail=1; }
[ "$(echo "$t_edit <= $budget" | bc -l)" = 1 ] || { echo "bench-cache: edit goal missed" >&2; fail=1; }
exit $fail
