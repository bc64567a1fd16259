#!/usr/bin/env bash
# Build the images and bring the Aurum Circle stack up, printing what it did.
#
#   scripts/demo.sh          build, verify, push to a local registry, pin, run, score
#   scripts/demo.sh stop     stop the stack, the registry and redis; clean mounts
#
# Run as root on Debian 12 (it runs scripts/setup.sh first). Steps: release binaries
# (cargo), assets (scripts/fetch-assets.sh), every host image (`ocipack host
# --all -o out/images`), `ocipack verify`, a docker-registry on 127.0.0.1:5000
# (or a free port), `ocipack push --all`, `ocipack deploy` into
# .cache/demo/deploy (a copy of deploy/, so the checked-in files stay as they
# are), then the stack: by default Debian's redis-server plus the three
# service images under runc, hardened like deploy/compose.yaml, on the ports
# of deploy/compose.test.yaml (scoring 13002, detection 18001, embedding 18002,
# redis 16381); with DEMO_ENGINE=docker, a private dockerd running the real
# compose files (nginx on 18080 too). Finally it scores
# .cache/assets/photos/yaoming.jpg and leaves the stack running.
# A second run reuses what is built (cargo and ocipack are incremental, the
# registry skips blobs it has) and restarts the stack cleanly.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname -- "$0")/../tests/e2e/lib.sh"
cd "$E2E_ROOT"
export PATH="$E2E_ROOT/target/release:$PATH"

demo=$E2E_ROOT/.cache/demo
state=$demo/runc
images=$E2E_ROOT/out/images
engine=${DEMO_ENGINE:-runc}
export DOCKER_HOST=unix://$demo/d.sock

dc() {
    timeout 300 "$(compose_bin)" --env-file "$demo/deploy/images.env" --env-file "$demo/secrets.env" \
        -p aurum-demo -f "$demo/deploy/compose.yaml" -f "$demo/deploy/compose.test.yaml" --profile proxy "$@"
}

# Stops whatever a previous run left: containers, dockerd, redis, registry.
stop_all() {
    local f
    runc_stop_all "$state"
    if [ -S "$demo/d.sock" ] && [ -f "$demo/secrets.env" ]; then
        dc down --timeout 10 >/dev/null 2>&1 || true
    fi
    for f in dockerd redis registry; do
        if [ -f "$demo/$f.pid" ]; then
            stop_pid "$(cat "$demo/$f.pid")"
            rm -f -- "$demo/$f.pid"
        fi
    done
    [ -d "$demo" ] && umount_under "$demo"
    rm -rf -- "$demo/b-detection" "$demo/b-embedding" "$demo/b-scoring"
}

if [ "${1:-}" = stop ]; then
    require_root
    stop_all
    echo "stopped: containers, registry and redis of the demo (state kept in $demo)"
    exit 0
fi
[ $# = 0 ] || die "unknown argument $1: use scripts/demo.sh, or scripts/demo.sh stop"
require_root
# A fresh machine gets its Debian packages, PyPI tools and toolchain here.
"$E2E_ROOT/scripts/setup.sh"
require_tools cargo python3 jq curl umoci runc docker-registry redis-server redis-cli
mkdir -p "$demo"
stop_all

log "1/7 release build and assets"
build_all "$images"
log "2/7 verify"
for d in "$images"/*/; do
    ocipack verify "$d" >/dev/null || die "ocipack verify $d failed"
done

log "3/7 registry"
reg_port=5000
if (exec 3<>/dev/tcp/127.0.0.1/5000) 2>/dev/null; then
    reg_port=$(free_port)
    log "127.0.0.1:5000 is taken; the registry uses $reg_port"
fi
reg=127.0.0.1:$reg_port
start_registry "$demo/registry" "$reg_port"
echo "$REGISTRY_PID" >"$demo/registry.pid"

log "4/7 push"
ocipack push --all --quiet --insecure "$images" "$reg/aurum-circle"

log "5/7 deploy (pins into $demo/deploy)"
rm -rf -- "$demo/deploy"
cp -r deploy "$demo/deploy"
ocipack deploy --registry "$reg/aurum-circle" --layouts "$images" --deploy-dir "$demo/deploy" >/dev/null
if [ ! -f "$demo/secrets.env" ]; then
    sed "s#^REDIS_PASSWORD=.*#REDIS_PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')#" \
        deploy/.env.example >"$demo/secrets.env"
fi
# compose.yaml interpolates QDRANT_IMAGE even with qdrant disabled by
# compose.test.yaml; host-built images have no qdrant, so a placeholder.
sed -i '/^QDRANT_IMAGE=/d' "$demo/secrets.env"
grep -q '^QDRANT_IMAGE=' "$demo/deploy/images.env" ||
    echo "QDRANT_IMAGE=$reg/aurum-circle/qdrant:disabled-in-compose-test" >>"$demo/secrets.env"

log "6/7 stack ($engine)"
port=13002
if [ "$engine" = docker ]; then
    require_tools dockerd docker
    dockerd --data-root "$demo/docker" --exec-root "$demo/x" --pidfile "$demo/d.pid" -H "$DOCKER_HOST" \
        --iptables=false --ip6tables=false --bridge=none --storage-driver vfs \
        --insecure-registry "$reg" >"$demo/dockerd.log" 2>&1 &
    echo "$!" >"$demo/dockerd.pid"
    wait_for 150 docker info || die "dockerd did not start: $(tail -5 "$demo/dockerd.log")"
    dc up -d --wait --wait-timeout 180 || die "compose up failed; see: DOCKER_HOST=$DOCKER_HOST docker ps -a"
    port=18080
else
    stack_start "$state" "$demo" "$images" 16381 18001 18002 13002 || die "the stack did not come up"
    echo "$REDIS_PID" >"$demo/redis.pid"
fi

log "7/7 score"
printf '\n%-16s %-73s %10s\n' image "manifest digest" "compressed"
for d in "$images"/*/; do
    name=$(basename "$d")
    printf '%-16s %-73s %10s\n' "$name" "$(image_digest "$d")" "$(numfmt --to=iec-i --suffix=B "$(image_size "$d")")"
done
echo
score_photo "http://127.0.0.1:$port" .cache/assets/photos/yaoming.jpg "$demo/score.json" ||
    die "scoring the photo failed"
jq . "$demo/score.json"
cat <<EOF

The stack is running ($engine): scoring at http://127.0.0.1:$port/api/score
  curl -F image=@.cache/assets/photos/yaoming.jpg http://127.0.0.1:$port/api/score
Registry: $reg/aurum-circle; pins: $demo/deploy/images.env
Stop it:  scripts/demo.sh stop
EOF
