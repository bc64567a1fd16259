#!/usr/bin/env bash
# Build the images and bring the Aurum Circle stack up, printing what it did.
#
#   scripts/demo.sh          build, verify, push to a local registry, pin, run, score
#   scripts/demo.sh stop     stop the stack, the registry and redis; clean mounts
#
# Run as root on Debian 12 (it runs scripts/setup.sh first). Steps: release binaries
# (cargo), assets (scripts/fetch-assets.sh), every host image (`ocipack host
# --all -o out/images`), `ocipack verify`, a docker-registry on 127.0.0.1:5000
# (or a free port), `ocipack push --all --sign` (a key made once in
# .cache/demo/keys; signature, SBOMs and provenance attached; `ocipack verify
# --remote` checks the scoring image from the registry), `ocipack deploy` into
# .cache/demo/deploy (a copy of deploy/, so the checked-in files stay as they
# are), secrets and a self-signed TLS pair (deploy/make-secrets.sh into
# .cache/demo/secrets), then the stack: by default Debian's redis-server plus
# the three service images, Qdrant and nginx under runc, hardened like
# deploy/compose.yaml, on loopback ports (scoring 13002, detection 18001,
# embedding 18002, redis 16381, qdrant 16333, the web frontend 13000, nginx
# 18080 and HTTPS 18443);
# with DEMO_ENGINE=docker, a private dockerd running the real compose files
# (compose.yaml + compose.ops.yaml: nginx on 127.0.0.1:18080/18443, Redis and
# Qdrant on 16381/16333). Finally it scores .cache/assets/photos/yaoming.jpg
# over HTTPS, answers a similarity query, and leaves the stack running.
# A second run reuses what is built (cargo is incremental, ocipack takes
# unchanged layers from its layer cache in .cache/ocipack, the registry skips
# blobs it has) and restarts the stack cleanly.
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
    timeout 300 "$(compose_bin)" --env-file "$demo/deploy/images.env" --env-file "$demo/settings.env" \
        -p aurum-demo -f "$demo/deploy/compose.yaml" -f "$demo/deploy/compose.ops.yaml" "$@"
}

# Stops whatever a previous run left: containers, dockerd, redis, registry.
stop_all() {
    local f
    runc_stop_all "$state"
    if [ -S "$demo/d.sock" ] && [ -f "$demo/settings.env" ]; then
        dc down --timeout 10 >/dev/null 2>&1 || true
    fi
    for f in dockerd redis registry; do
        if [ -f "$demo/$f.pid" ]; then
            stop_pid "$(cat "$demo/$f.pid")"
            rm -f -- "$demo/$f.pid"
        fi
    done
    [ -d "$demo" ] && umount_under "$demo"
    rm -rf -- "$demo/b-detection" "$demo/b-embedding" "$demo/b-scoring" "$demo/b-qdrant" "$demo/b-nginx" "$demo/b-frontend"
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
    [ -f "$d/oci-layout" ] || continue # not NAME.attest/ (docs/supply-chain.md: OUT.attest)
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

log "4/7 push, signed (key $demo/keys/release.key, made on the first run)"
[ -f "$demo/keys/release.key" ] || ocipack sign --generate-key "$demo/keys/release" >/dev/null ||
    die "ocipack sign --generate-key failed"
# Each image with its cosign signature, SBOMs and SLSA provenance as OCI 1.1
# referrers (docs/supply-chain.md); then one is checked from the registry.
ocipack push --all --quiet --insecure --sign "$demo/keys/release.key" "$images" "$reg/aurum-circle"
ocipack verify --remote "$reg/aurum-circle/scoring:latest" --key "$demo/keys/release.pub" --insecure >/dev/null ||
    die "ocipack verify --remote of the pushed scoring image failed"

log "5/7 deploy (pins into $demo/deploy)"
rm -rf -- "$demo/deploy"
cp -r deploy "$demo/deploy"
ocipack deploy --registry "$reg/aurum-circle" --layouts "$images" --deploy-dir "$demo/deploy" >/dev/null
deploy/make-secrets.sh "$demo/secrets" >/dev/null
cat >"$demo/settings.env" <<EOF
SECRETS_DIR=$demo/secrets
NGINX_PUBLISH_ADDR=127.0.0.1
NGINX_HTTP_PORT=18080
NGINX_HTTPS_PORT=18443
REDIS_OPS_PORT=16381
QDRANT_OPS_PORT=16333
EOF
# curl trusts the demo's self-signed certificate.
export CURL_CA_BUNDLE=$demo/secrets/tls.crt

log "6/7 stack ($engine)"
edge=https://127.0.0.1:18443
if [ "$engine" = docker ]; then
    require_tools dockerd docker
    start_dockerd "$demo" "$reg" || die "dockerd did not start"
    echo "$dockerd_pid" >"$demo/dockerd.pid"
    dc up -d --wait --wait-timeout 240 || die "compose up failed; see: DOCKER_HOST=$DOCKER_HOST docker ps -a"
else
    stack_start "$state" "$demo" "$images" 16381 18001 18002 13002 16333 || die "the stack did not come up"
    echo "$REDIS_PID" >"$demo/redis.pid"
    # The web frontend on 13000, behind nginx's `/`.
    runc_bundle "$images/frontend" "$demo/b-frontend" HOSTNAME=127.0.0.1 PORT=13000 \
        SCORING_SERVICE_URL=http://127.0.0.1:13002 || die "frontend bundle"
    runc_start "$state" e2e-frontend "$demo/b-frontend" || die "the frontend did not start"
    wait_for_http 150 http://127.0.0.1:13000/api/health || die "the frontend is not answering: $(tail -5 "$demo/b-frontend.log")"
    nginx_bundle "$images/nginx" "$demo/b-nginx" 18080 18443 127.0.0.1:13002 "$demo/secrets" 127.0.0.1:13000 ||
        die "nginx bundle"
    runc_start "$state" e2e-nginx "$demo/b-nginx" || die "nginx did not start"
    wait_for_http 100 "$edge/healthz" || die "nginx is not answering on $edge: $(tail -5 "$demo/b-nginx.log")"
fi

log "7/7 score"
printf '\n%-16s %-73s %10s\n' image "manifest digest" "compressed"
for d in "$images"/*/; do
    [ -f "$d/oci-layout" ] || continue # not NAME.attest/ (docs/supply-chain.md: OUT.attest)
    name=$(basename "$d")
    printf '%-16s %-73s %10s\n' "$name" "$(image_digest "$d")" "$(numfmt --to=iec-i --suffix=B "$(image_size "$d")")"
done
echo
score_photo "$edge" .cache/assets/photos/yaoming.jpg "$demo/score.json" ||
    die "scoring the photo failed"
jq . "$demo/score.json"
check_similar "$edge" "$demo/similar.json" || die "the similarity query failed"
echo "GET /api/similar/yaoming (yaoming.jpg scored as yaoming, the same photo with a JPEG comment added as again, gdp.jpg and players.jpg as gdp and players):"
jq . "$demo/similar.json"
cat <<EOF

The stack is running ($engine) behind nginx with TLS (self-signed: $demo/secrets/tls.crt):
  curl --cacert $demo/secrets/tls.crt -F image=@.cache/assets/photos/yaoming.jpg $edge/api/score
  curl --cacert $demo/secrets/tls.crt $edge/api/similar/yaoming
Open the web page: $edge/   (self-signed certificate; directly: http://127.0.0.1:13000/ under runc)
Registry: $reg/aurum-circle; pins: $demo/deploy/images.env
Signed with $demo/keys/release.key; check any image:
  ocipack verify --remote $reg/aurum-circle/redis:latest --key $demo/keys/release.pub --insecure
Stop it:  scripts/demo.sh stop
EOF
