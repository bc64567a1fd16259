#!/usr/bin/env bash
# End to end for linux/arm64 (issue 16), on this amd64 machine: the services
# cross-compiled (release, aarch64-unknown-linux-gnu), every host image built
# for linux/amd64 and linux/arm64 and combined into one image index per image
# (`ocipack host --all --platform linux/amd64,linux/arm64`), verified, built a
# second time byte for byte, bad `ocipack index` input refused, the arm64
# images run under runc through qemu-user (binfmt_misc), their answers
# compared with the amd64 images', the SBOMs of the arm64 images checked
# against the sysroot's dpkg database, and the indexes pushed to a real
# registry and read back with skopeo and a Docker engine (`docker pull` and
# `docker run --platform linux/arm64`).
#
#   tests/e2e/arm64.sh      (root; scripts/setup-cross.sh is run first)
#   E2E_TMP=/tmp/me tests/e2e/arm64.sh   (the work directory, dockerd's included, under /tmp/me)
#
# Parity (docs/multi-arch.md): face detection on yaoming.jpg (same face count,
# boxes within 1 px; E2E_ARM64_ALL_PHOTOS=1: every test photo's face count too,
# ~30 s each emulated), the embedding of yaoming's face (cosine > 0.999). Everything listens on 127.0.0.1 and lives in
# one temp dir, removed at exit. Prints PASS/FAIL per step, `e2e: N passed, M failed` last.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname -- "$0")/lib.sh"
cd "$E2E_ROOT"
require_root
"$E2E_ROOT/scripts/setup-cross.sh"
require_tools cargo python3 jq curl skopeo umoci runc docker-registry redis-cli aarch64-linux-gnu-gcc dockerd docker
export PATH="$E2E_ROOT/target/release:$PATH"
export OCIPACK_CACHE_DIR=${OCIPACK_CACHE_DIR:-$E2E_ROOT/.cache/ocipack}
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
assets=${ASSETS_DIR:-$E2E_ROOT/.cache/assets}

mkdir -p "${E2E_TMP:-/tmp}"
work=$(mktemp -d "${E2E_TMP:-/tmp}/e2e-arm64.XXXXXX")
state=$work/runc
images=$work/images
REGISTRY_PID=
REG=
dockerd_pid=
FRONTEND_T0=
cleanup() {
    set +e
    runc_stop_all "$state"
    stop_pid "$dockerd_pid"
    stop_pid "$REGISTRY_PID"
    umount_under "$work"
    rm -rf -- "$work"
}
trap cleanup EXIT

services=(-p scoring-service -p face-detection-service -p face-embedding-service -p http-probe)
multi=(face-detection face-embedding scoring redis nginx frontend)

# Both platforms and the indexes; its messages are kept for step indexes.
host_all() {
    local rc=0
    ocipack host --all --platform linux/amd64,linux/arm64 -o "$images" 2>"$work/host-all.err" || rc=1
    cat "$work/host-all.err" >&2
    return "$rc"
}

step_build() {
    local t0 t1
    # E2E_PREBUILT=1: the release binaries of both platforms are already in
    # target/ (a rerun); only the images are built.
    if [ "${E2E_PREBUILT:-}" = 1 ]; then
        t0=$(date +%s)
        host_all || return 1
        echo "  ocipack host --all for both platforms + index: $(($(date +%s) - t0)) s"
        return 0
    fi
    t0=$(date +%s)
    cargo build --release --locked --target aarch64-unknown-linux-gnu "${services[@]}" || return 1
    t1=$(date +%s)
    echo "  cross build (aarch64, release): $((t1 - t0)) s"
    cargo build --release --locked "${services[@]}" -p ocipack-cli || return 1
    echo "  amd64 build (release, incremental after earlier steps): $(($(date +%s) - t1)) s"
    scripts/fetch-assets.sh --dest "$assets" >/dev/null || return 1
    # The amd64 frontend image packs `next build` output (skipped when e2e-runc built it).
    web_build >/dev/null || return 1
    t0=$(date +%s)
    host_all || return 1
    echo "  ocipack host --all for both platforms + index: $(($(date +%s) - t0)) s"
}

# Each image is an index of both platforms, verified; the model layers are
# one blob shared by both children.
step_indexes() {
    local n rc=0 plats shared
    printf '  %-15s %-73s %10s %10s\n' image "index digest" amd64 arm64
    for n in "${multi[@]}"; do
        ocipack verify "$images/$n" >/dev/null 2>"$work/verify.err" || {
            log "$n: ocipack verify: $(cat "$work/verify.err")"
            rc=1
        }
        plats=$(ocipack --json inspect "$images/$n" | jq -r '[.[].platform] | join(",")')
        [ "$plats" = linux/amd64,linux/arm64 ] || {
            log "$n: platforms are $plats, want linux/amd64,linux/arm64"
            rc=1
        }
        printf '  %-15s %-73s %10s %10s\n' "$n" \
            "$(jq -r '.manifests[0].digest' "$images/$n/index.json")" \
            "$(image_size "$images-linux-amd64/$n")" "$(image_size "$images-linux-arm64/$n")"
    done
    # Qdrant stays amd64-only (no aarch64 server can be built here), named
    # with the reason.
    plats=$(ocipack --json inspect "$images/qdrant" | jq -r '[.[].platform] | join(",")')
    if [ "$plats" != linux/amd64 ] || ! grep -q '^skipping qdrant: /usr/local/bin/qdrant not in the linux/arm64 sysroot .*no Debian package provides it' "$work/host-all.err"; then
        log "qdrant: platforms $plats; --all said: $(grep qdrant "$work/host-all.err")"
        rc=1
    fi
    for n in face-detection face-embedding; do
        shared=$(ocipack --json inspect "$images/$n" |
            jq -r '[.[] | .layers[] | select(.holds | test("^model ")) | .digest] | group_by(.) | map(length) | join(",")')
        [ "$shared" = 2 ] || {
            log "$n: model layer digests per platform: $shared (want one digest in both)"
            rc=1
        }
    done
    return "$rc"
}

# The arm64 images again, without the layer cache: byte-identical layouts.
step_reproducible() {
    local n rc=0
    ocipack host --all --platform linux/arm64 --no-cache -o "$work/again" >/dev/null || return 1
    for n in "${multi[@]}"; do
        diff -r "$images-linux-arm64/$n" "$work/again/$n" >/dev/null || {
            log "$n: the second arm64 build differs"
            rc=1
        }
    done
    return "$rc"
}

# ocipack index refuses bad input with a clear message and writes nothing.
step_bad_index() {
    local rc=0 out=$work/bad-index msg
    if msg=$(ocipack index "$images-linux-arm64/redis" "$work/again/redis" -o "$out" 2>&1); then
        log "two arm64 images of one tag were accepted"
        rc=1
    fi
    grep -q "two images for linux/arm64" <<<"$msg" || {
        log "same-platform message: $msg"
        rc=1
    }
    if msg=$(ocipack index "$images-linux-arm64/redis" "$work/no-such-layout" -o "$out" 2>&1); then
        log "a missing layout was accepted"
        rc=1
    fi
    grep -q "no-such-layout" <<<"$msg" || {
        log "missing-layout message: $msg"
        rc=1
    }
    if [ -e "$out" ] || [ -n "$(find "$work" -maxdepth 1 -name '.bad-index.*')" ]; then
        log "bad input left $out or a staging directory behind"
        rc=1
    fi
    return "$rc"
}

# runc_run PLATFORM NAME PORT ENV...: the image's per-platform layout under runc.
runc_run() {
    local plat=$1 name=$2 port=$3
    shift 3
    runc_bundle "$images-linux-$plat/$name" "$work/b-$plat-$name" HOSTNAME=127.0.0.1 "PORT=$port" "$@" || return 1
    runc_start "$state" "multiarch-$plat-$name" "$work/b-$plat-$name"
}

# The process really is an emulated aarch64 one.
emulated() {
    local pid
    pid=$(cat "$work/b-arm64-$1.pid")
    case $(readlink "/proc/$pid/exe") in
    *qemu-aarch64*) return 0 ;;
    *) log "$1: /proc/$pid/exe is $(readlink "/proc/$pid/exe"), not qemu-aarch64" && return 1 ;;
    esac
}

declare -A PORT
step_run_arm64() {
    local n rc=0 t0
    "$E2E_ROOT/deploy/make-secrets.sh" "$work/secrets" >/dev/null || return 1
    REDISCLI_AUTH=$(cat "$work/secrets/redis-password")
    export REDISCLI_AUTH
    # The frontend (the official arm64 node, scripts/setup-cross.sh): its
    # emulated start (~20 s) overlaps this step and the parity step; it is
    # asked after them (step frontend-arm64).
    PORT[arm64-frontend]=$(free_port)
    FRONTEND_T0=$(date +%s)
    runc_run arm64 frontend "${PORT[arm64-frontend]}" || rc=1
    # All three start before the first is asked: their emulated starts
    # (model loading under qemu) overlap.
    t0=$(date +%s)
    for n in face-detection face-embedding scoring; do
        PORT[arm64-$n]=$(free_port)
        # Emulated inference takes ~30 s a photo: more than the default 30 s
        # request timeout.
        if ! runc_run arm64 "$n" "${PORT[arm64-$n]}" REQUEST_TIMEOUT_MS=300000; then
            rc=1
            PORT[arm64-$n]=
        fi
    done
    for n in face-detection face-embedding scoring; do
        [ -n "${PORT[arm64-$n]}" ] || continue
        if wait_for_http 600 "http://127.0.0.1:${PORT[arm64-$n]}/api/health" && emulated "$n"; then
            echo "  $n (arm64, emulated): /api/health after $(($(date +%s) - t0)) s"
        else
            log "$n (arm64) did not answer: $(tail -5 "$work/b-arm64-$n.log")"
            rc=1
        fi
    done
    # Redis, with the password compose mounts. Under qemu-user, Redis's arm64
    # start-up check of the kernel (the ARM64-COW-BUG test of kernels before
    # 6.x on arm64) sees this x86 host's kernel and exits; the warning is an
    # artefact of emulation, so this run ignores it (a real arm64 node runs
    # its own kernel).
    local port
    port=$(free_port)
    runc_bundle "$images-linux-arm64/redis" "$work/b-arm64-redis" || return 1
    jq --arg p "$port" --arg s "$work/secrets" '.process.args += ["--port", $p, "--bind", "127.0.0.1", "--ignore-warnings", "ARM64-COW-BUG"]
        | .mounts += [{destination: "/run/secrets", type: "bind", source: $s, options: ["rbind", "ro"]},
                      {destination: "/data", type: "tmpfs", source: "tmpfs",
                       options: ["nosuid", "nodev", "uid=65532", "gid=65532", "mode=0700"]}]' \
        "$work/b-arm64-redis/config.json" >"$work/c.json" && mv "$work/c.json" "$work/b-arm64-redis/config.json"
    if runc_start "$state" multiarch-arm64-redis "$work/b-arm64-redis" && wait_for 300 redis_ready "$port" &&
        [ "$(redis-cli -e -p "$port" set multiarch ok)" = OK ] && [ "$(redis-cli -e -p "$port" get multiarch)" = ok ] &&
        emulated redis; then
        echo "  redis (arm64, emulated): PING, SET, GET answered"
    else
        log "redis (arm64) did not answer: $(tail -5 "$work/b-arm64-redis.log")"
        rc=1
    fi
    # NGINX, listening on loopback as in host-images.sh.
    port=$(free_port)
    runc_bundle "$images-linux-arm64/nginx" "$work/b-arm64-nginx" || return 1
    printf 'listen 127.0.0.1:%s;\n' "$port" >"$work/listen.conf"
    printf 'listen 127.0.0.1:%s ssl;\nssl_certificate /run/secrets/tls.crt;\nssl_certificate_key /run/secrets/tls.key;\n' \
        "$(free_port)" >"$work/tls.conf"
    jq --arg f "$work/listen.conf" --arg t "$work/tls.conf" --arg s "$work/secrets" '.mounts += [
            {destination: "/run/secrets", type: "bind", source: $s, options: ["rbind", "ro"]},
            {destination: "/etc/nginx/listen.conf", type: "bind", source: $f, options: ["rbind", "ro"]},
            {destination: "/etc/nginx/tls.conf", type: "bind", source: $t, options: ["rbind", "ro"]}]' \
        "$work/b-arm64-nginx/config.json" >"$work/c.json" && mv "$work/c.json" "$work/b-arm64-nginx/config.json"
    if runc_start "$state" multiarch-arm64-nginx "$work/b-arm64-nginx" &&
        wait_for_http 300 "http://127.0.0.1:$port/healthz" && emulated nginx; then
        echo "  nginx (arm64, emulated): /healthz answered"
    else
        log "nginx (arm64) did not answer: $(tail -5 "$work/b-arm64-nginx.log")"
        rc=1
    fi
    return "$rc"
}

# The arm64 frontend started in run-arm64: its health route and the
# server-rendered home page.
step_frontend_arm64() {
    local f=http://127.0.0.1:${PORT[arm64-frontend]}
    if wait_for_http 300 "$f/api/health" && curl -fsS --max-time 120 "$f/" | grep -q '<html' && emulated frontend; then
        echo "  frontend (arm64, emulated): /api/health and / answered, $(($(date +%s) - FRONTEND_T0)) s after its start"
    else
        log "frontend (arm64) did not answer: $(tail -5 "$work/b-arm64-frontend.log")"
        return 1
    fi
}

# The arm64 SBOMs (OUT.attest/, written by ocipack host): every file the
# image takes from the sysroot belongs to a Debian arm64 package of the
# sysroot's dpkg database (scripts/setup-cross.sh records it; `dpkg -x`
# alone leaves none), so none is an unclaimed file. /usr/bin/node is the one
# sysroot file no Debian package owns (the official build from the npm
# registry, docs/multi-arch.md).
step_sbom_arm64() {
    local n rc=0 sysroot=$E2E_ROOT/.cache/sysroot-arm64 cdx bad debs
    for n in "${multi[@]}"; do
        cdx=$images-linux-arm64/$n.attest/sbom.cdx.json
        [ -f "$cdx" ] || {
            log "$n: no $cdx"
            rc=1
            continue
        }
        bad=$(jq -r --arg s "$sysroot/" --slurpfile plan "$images-linux-arm64/$n.plan.json" '
            ([$plan[0].layers[] | .entries[]? | select((.source // "") | startswith($s)) | .target]) as $fromSysroot
            | [.components[] | select(.type == "file") | .name
               | select(. as $f | $fromSysroot | index($f)) | select(. != "/usr/bin/node")] | join(" ")' "$cdx")
        debs=$(jq -r '[.components[] | .purl // "" | select(startswith("pkg:deb/"))] | length' "$cdx")
        if [ -n "$bad" ]; then
            log "$n: sysroot files not claimed by a Debian package: $bad"
            rc=1
        fi
        if [ "$debs" -lt 1 ] || jq -e '[.components[] | .purl // "" | select(startswith("pkg:deb/") and (test("[?&]arch=(arm64|all)$") | not))] | length > 0' "$cdx" >/dev/null; then
            log "$n: Debian packages $(jq -c '[.components[] | .purl // "" | select(startswith("pkg:deb/"))]' "$cdx") (want arch=arm64, at least libc6)"
            rc=1
        fi
        echo "  $n: $debs Debian arm64 packages, $(jq '[.components[] | select(.type == "file")] | length' "$cdx") files without a package"
    done
    return "$rc"
}

detect() { # PORT PHOTO
    curl -fsS --max-time 300 -H 'content-type: image/jpeg' --data-binary "@$2" \
        "http://127.0.0.1:$1/api/v1/detect"
}

# The same photos through the amd64 and the arm64 images.
step_parity() {
    local n rc=0 photo a b t0 ta tb
    for n in face-detection face-embedding; do
        PORT[amd64-$n]=$(free_port)
        if ! { runc_run amd64 "$n" "${PORT[amd64-$n]}" && wait_for_http 300 "http://127.0.0.1:${PORT[amd64-$n]}/api/health"; }; then
            log "$n (amd64) did not answer: $(tail -5 "$work/b-amd64-$n.log")"
            return 1
        fi
    done
    # CI budget: one emulated detection costs ~30 s, so by default only
    # yaoming.jpg (boxes within 1 px); E2E_ARM64_ALL_PHOTOS=1 adds the face
    # counts of the other photos.
    local photos=("$assets/photos/yaoming.jpg")
    [ "${E2E_ARM64_ALL_PHOTOS:-}" = 1 ] && photos=("$assets"/photos/*.jpg)
    for photo in "${photos[@]}"; do
        t0=$(date +%s%N)
        detect "${PORT[amd64-face-detection]}" "$photo" >"$work/det-amd64.json" || rc=1
        ta=$((($(date +%s%N) - t0) / 1000000))
        t0=$(date +%s%N)
        detect "${PORT[arm64-face-detection]}" "$photo" >"$work/det-arm64.json" || rc=1
        tb=$((($(date +%s%N) - t0) / 1000000))
        a=$(jq .face_count "$work/det-amd64.json")
        b=$(jq .face_count "$work/det-arm64.json")
        echo "  $(basename "$photo"): faces amd64 $a, arm64 $b; request $ta ms native, $tb ms emulated (arm64 inference_ms $(jq .inference_ms "$work/det-arm64.json"))"
        if [ "$a" != "$b" ] || ! [ "$a" -gt 0 ] 2>/dev/null; then
            log "$(basename "$photo"): face counts differ ($a vs $b)"
            rc=1
        fi
        if [ "$(basename "$photo")" = yaoming.jpg ]; then
            python3 - "$work/det-amd64.json" "$work/det-arm64.json" <<'PY' || rc=1
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
worst = max(abs(x - y) for fa, fb in zip(a["faces"], b["faces"]) for x, y in zip(fa["box"], fb["box"]))
print(f"  yaoming.jpg: largest box difference {worst:.4f} px")
sys.exit(0 if worst <= 1.0 else 1)
PY
            cp "$work/det-amd64.json" "$work/yaoming.json"
        fi
    done
    # The embedding of yaoming's face, aligned by the detected landmarks.
    local lm
    lm=$(jq -c '.faces[0].landmarks' "$work/yaoming.json")
    for p in amd64 arm64; do
        curl -fsS --max-time 300 -F "image=@$assets/photos/yaoming.jpg;type=image/jpeg" -F "landmarks=$lm" \
            "http://127.0.0.1:${PORT[$p-face-embedding]}/api/v1/embed" >"$work/emb-$p.json" || rc=1
    done
    python3 - "$work/emb-amd64.json" "$work/emb-arm64.json" <<'PY' || rc=1
import json, math, sys
a, b = (json.load(open(p))["embedding"] for p in sys.argv[1:3])
cos = sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
print(f"  embedding cosine amd64/arm64: {cos:.6f}")
sys.exit(0 if cos > 0.999 else 1)
PY
    return "$rc"
}

# The indexes in a registry (`ocipack push --all`): both platforms listed, the
# arm64 child pulled by platform, and the digest `ocipack deploy` pins
# resolving to both platforms.
step_registry() {
    local port reg n rc=0 arch digest pinned
    port=$(free_port)
    reg=127.0.0.1:$port
    REG=$reg
    start_registry "$work/registry" "$port"
    # ocipack push sends each index's children first, shared blobs once, and
    # keeps every byte (skopeo would gzip the uncompressed model layers on the
    # way, changing the digests).
    ocipack push --all "$images" "$reg/multiarch" --insecure >/dev/null || return 1
    for n in face-detection redis; do
        skopeo inspect --raw --tls-verify=false "docker://$reg/multiarch/$n:latest" >"$work/raw.json" || return 1
        [ "$(jq -r '[.manifests[].platform | "\(.os)/\(.architecture)"] | join(",")' "$work/raw.json")" = linux/amd64,linux/arm64 ] || {
            log "$n: the registry's index lists $(jq -c '[.manifests[].platform]' "$work/raw.json")"
            rc=1
        }
        rm -rf "$work/pulled"
        skopeo copy --quiet --preserve-digests --src-tls-verify=false --override-arch arm64 --override-os linux \
            "docker://$reg/multiarch/$n:latest" "oci:$work/pulled:arm64" || return 1
        arch=$(ocipack --json inspect "$work/pulled" | jq -r '.[0].config.architecture')
        digest=$(ocipack --json inspect "$work/pulled" | jq -r '.[0].manifestDigest')
        if [ "$arch" != arm64 ] || [ "$digest" != "$(jq -r '.manifests[] | select(.platform.architecture == "arm64") | .digest' "$work/raw.json")" ]; then
            log "$n: --override-arch arm64 pulled $arch $digest"
            rc=1
        fi
    done
    # ocipack deploy pins the index digest (a copy of deploy/ is updated).
    cp -r "$E2E_ROOT/deploy" "$work/deploy"
    ocipack deploy --registry "$reg/multiarch" --layouts "$images" --deploy-dir "$work/deploy" >/dev/null 2>&1 || {
        log "ocipack deploy failed"
        return 1
    }
    for n in face-detection redis; do
        pinned=$(grep "^$(echo "$n" | tr a-z- A-Z_)_IMAGE=" "$work/deploy/images.env" | cut -d= -f2)
        [ "${pinned#*@}" = "$(jq -r '.manifests[0].digest' "$images/$n/index.json")" ] || {
            log "$n: deploy pinned $pinned, not the index"
            rc=1
        }
        for arch in amd64 arm64; do
            skopeo inspect --tls-verify=false --override-arch "$arch" --override-os linux "docker://$pinned" |
                jq -e --arg a "$arch" '.Architecture == $a' >/dev/null || {
                log "$n: $pinned does not resolve to a $arch image"
                rc=1
            }
        done
        echo "  $n: $pinned resolves to linux/amd64 and linux/arm64"
    done
    return "$rc"
}

t_all=$(date +%s)
# A Docker engine (Debian's docker.io, private: own data-root, exec-root and
# socket under the work directory, stopped at the end) pulls the arm64 child
# of the registry's index by platform and runs it under qemu (binfmt_misc F
# flag: the handler works inside the container).
step_docker() {
    local n=redis arm64 want_id rc=0 out id arch repodigest
    [ -n "$REG" ] || return 1
    export DOCKER_HOST=unix://$work/d.sock
    start_dockerd "$work" "$REG" || return 1
    docker pull -q --platform linux/arm64 "$REG/multiarch/$n:latest" >/dev/null || return 1
    # The engine's image ID is the config digest: the arm64 child's.
    arm64=$(ocipack --json inspect "$images/$n" | jq -c '.[] | select(.platform == "linux/arm64")')
    want_id=$(jq -r .configDigest <<<"$arm64")
    read -r id arch repodigest < <(docker image inspect -f '{{.Id}} {{.Architecture}} {{index .RepoDigests 0}}' "$REG/multiarch/$n:latest")
    if [ "$arch" != arm64 ] || [ "$id" != "$want_id" ]; then
        log "$n: docker pull --platform linux/arm64 got $arch $id, want arm64 $want_id"
        rc=1
    fi
    # The repository digest is the index's (what `ocipack deploy` pins).
    [ "${repodigest#*@}" = "$(jq -r '.manifests[0].digest' "$images/$n/index.json")" ] || {
        log "$n: RepoDigests $repodigest, not the index digest"
        rc=1
    }
    echo "  docker pull --platform linux/arm64 $n: $arch, image ID $id (the arm64 child's config), repo digest ${repodigest#*@}"
    # Run it: Redis (aarch64, emulated) prints its version.
    if out=$(docker run --rm --platform linux/arm64 --network none "$REG/multiarch/$n:latest" --version 2>&1) &&
        grep -q '^Redis server v=' <<<"$out"; then
        echo "  docker run --platform linux/arm64 $n --version: $out"
    else
        log "$n: docker run --platform linux/arm64 failed: $out"
        rc=1
    fi
    stop_pid "$dockerd_pid"
    dockerd_pid=
    umount_under "$work/docker"
    umount_under "$work/x"
    return "$rc"
}

run_step cross-build step_build
run_step indexes step_indexes
run_step reproducible-arm64 step_reproducible
run_step index-bad-input step_bad_index
run_step sbom-arm64 step_sbom_arm64
run_step run-arm64 step_run_arm64
run_step parity step_parity
run_step frontend-arm64 step_frontend_arm64
run_step registry step_registry
run_step docker-arm64 step_docker
echo "e2e-arm64: $(($(date +%s) - t_all)) s"
e2e_summary arm64.sh
