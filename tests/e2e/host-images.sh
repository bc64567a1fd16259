#!/usr/bin/env bash
# End to end, without Docker: the host-built images (`ocipack host --all`) are
# built, validated by four independent OCI tools, pushed to a real registry
# with basic auth, pulled back, pushed again through a registry crash, and run
# under runc hardened like deploy/compose.yaml, alone and as the whole stack
# scoring a real face photo twice (the second answer from the Redis cache) and
# answering a similarity query from the qdrant image.
#
#   tests/e2e/host-images.sh             (root; E2E_IMAGES=DIR reuses built layouts)
#
# Needs: cargo, python3, jq, curl, skopeo, umoci, oci-image-tool, runc,
# docker-registry, htpasswd (apache2-utils), redis-server, redis-cli.
# Everything it starts listens on 127.0.0.1 and lives in one temp dir, removed
# at exit. Prints PASS/FAIL per step and `e2e: N passed, M failed` last.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname -- "$0")/lib.sh"
cd "$E2E_ROOT"
require_root
require_tools cargo python3 jq curl skopeo umoci oci-image-tool runc docker-registry htpasswd \
    redis-server redis-cli
export PATH="$E2E_ROOT/target/release:$PATH"

work=$(mktemp -d /tmp/e2e-host.XXXXXX)
state=$work/runc
images=${E2E_IMAGES:-$work/images}
REGISTRY_PID=
REDIS_PID=
reg_user=e2e
reg_password=pw-$RANDOM-$RANDOM
cleanup() {
    set +e
    runc_stop_all "$state"
    stop_pid "$REDIS_PID"
    stop_pid "$REGISTRY_PID"
    umount_under "$work"
    rm -rf -- "$work"
}
trap cleanup EXIT

# The registry's port stays fixed so a restart (step 4) keeps its address.
reg_port=$(free_port)
reg=127.0.0.1:$reg_port

# Layout directories built by step 1 (qdrant from the server setup.sh installs).
names() { find "$images" -mindepth 2 -maxdepth 2 -name oci-layout -printf '%h\n' | xargs -rn1 basename | sort; }

# The ONNX Runtime and model layers, identified by their history comment.
ml_extra_bytes() {
    ocipack --json inspect "$1" |
        jq '[.[0].layers[] | select(.holds | test("onnxruntime|^model "; "i")) | .size] | add // 0'
}

step_build() {
    if [ -z "${E2E_IMAGES:-}" ]; then
        build_all "$images" || return 1
    fi
    local name size digest extra limit mb=$((1000 * 1000)) ok=0
    printf '%-16s %-73s %12s %12s\n' image "manifest digest" bytes limit
    for name in $(names); do
        digest=$(image_digest "$images/$name")
        size=$(image_size "$images/$name")
        limit=$((25 * mb))
        case $name in
        face-detection | face-embedding)
            extra=$(ml_extra_bytes "$images/$name")
            [ "$extra" -gt 0 ] || {
                log "$name: no onnxruntime/model layer found in ocipack inspect"
                ok=1
            }
            limit=$((limit + extra))
            ;;
        qdrant)
            # The server itself is a 92 MB static-ish Rust binary (about
            # 30 MB compressed): its own budget.
            limit=$((45 * mb))
            ;;
        frontend)
            # node itself is 99 MB (35 MB compressed); the Next.js
            # standalone tree adds about 7 MB (docs/benchmarks.md).
            limit=$((60 * mb))
            ;;
        esac
        printf '%-16s %-73s %12s %12s\n' "$name" "$digest" "$size" "$limit"
        if [ "$size" -ge "$limit" ]; then
            log "$name: $size bytes is over its budget of $limit bytes"
            ok=1
        fi
    done
    [ "$(names | wc -l)" -ge 6 ] || {
        log "expected at least 6 layouts in $images, found: $(names | tr '\n' ' ')"
        return 1
    }
    return "$ok"
}

# Files must be root-owned except the app user's home, /tmp and the
# directories the definition declares writable.
check_rootfs() {
    local name=$1 rootfs=$2 home allowed bad shell
    for shell in bin/sh bin/bash usr/bin/sh usr/bin/bash bin/busybox usr/bin/busybox; do
        if [ -e "$rootfs/$shell" ] || [ -L "$rootfs/$shell" ]; then
            log "$name: the image has a shell: /$shell"
            return 1
        fi
    done
    home=$(awk -F: -v u="$E2E_UID" '$3 == u {print $6}' "$rootfs/etc/passwd")
    allowed=$(python3 - "$E2E_ROOT/images/$name.toml" <<'PY'
import sys, tomllib
d = tomllib.load(open(sys.argv[1], "rb"))
print("\n".join(d.get("directories", {}).get("paths", [])))
PY
)
    bad=$(cd "$rootfs" && find . ! -uid 0 -o ! -gid 0 | sed 's#^\.##' | while read -r p; do
        ok=
        for a in $home /tmp $allowed; do
            case $p in "$a" | "$a"/*) ok=1 ;; esac
        done
        [ -n "$ok" ] || printf '%s ' "$p"
    done)
    [ -z "$bad" ] || {
        log "$name: not root-owned: $bad"
        return 1
    }
}

step_validate() {
    local name dir rc=0
    for name in $(names); do
        dir=$images/$name
        ocipack verify "$dir" >"$work/verify.log" 2>&1 || {
            log "$name: ocipack verify: $(tail -3 "$work/verify.log")"
            rc=1
        }
        skopeo inspect "oci:$dir:latest" >/dev/null || {
            log "$name: skopeo inspect failed"
            rc=1
        }
        oci-image-tool validate --type image --ref name=latest "$dir" >"$work/oit.log" 2>&1 || {
            log "$name: oci-image-tool validate: $(tail -3 "$work/oit.log")"
            rc=1
        }
        rm -rf -- "$work/unpack"
        umoci unpack --image "$dir:latest" "$work/unpack" >/dev/null || {
            log "$name: umoci unpack failed"
            rc=1
            continue
        }
        check_rootfs "$name" "$work/unpack/rootfs" || rc=1
        echo "  $name: ocipack verify, skopeo, oci-image-tool, umoci unpack: ok; no shell; ownership ok"
    done
    rm -rf -- "$work/unpack"
    return "$rc"
}

start_reg() { start_registry "$work/registry" "$reg_port" "$reg_user" "$reg_password"; }

step_push_pull() {
    local name want got remote rc=0 out
    start_reg
    mkdir -p "$work/pulled"
    OCIPACK_REGISTRY_USER=$reg_user OCIPACK_REGISTRY_PASSWORD=$reg_password \
        ocipack push --all --quiet --insecure "$images" "$reg/aurum-circle" || return 1
    for name in $(names); do
        want=$(image_digest "$images/$name")
        remote=docker://$reg/aurum-circle/$name:latest
        got=$(skopeo inspect --tls-verify=false --creds "$reg_user:$reg_password" "$remote" | jq -r .Digest)
        # --preserve-digests: skopeo would otherwise gzip the uncompressed
        # model layers on the way into an oci: layout (a new digest).
        skopeo copy -q --preserve-digests --src-tls-verify=false --src-creds "$reg_user:$reg_password" \
            "$remote" "oci:$work/pulled/$name:latest" || {
            rc=1
            continue
        }
        out=$(skopeo inspect "oci:$work/pulled/$name:latest" | jq -r .Digest)
        if [ "$want" = "$got" ] && [ "$want" = "$out" ]; then
            echo "  $name: pushed and pulled back as $want"
        else
            log "$name: layout $want, registry $got, pulled copy $out"
            rc=1
        fi
    done
    rm -rf -- "$work/pulled"
    # A wrong password: exit code 4 and a message that says so.
    local code=0
    OCIPACK_REGISTRY_USER=$reg_user OCIPACK_REGISTRY_PASSWORD=wrong \
        ocipack push --quiet --insecure "$images/scoring" "$reg/aurum-circle/scoring:bad" \
        >"$work/badpw.log" 2>&1 || code=$?
    if [ "$code" = 4 ] && grep -qiE 'auth|credential|password|401' "$work/badpw.log"; then
        echo "  wrong password: exit 4, \"$(head -1 "$work/badpw.log")\""
    else
        log "wrong password gave exit $code: $(cat "$work/badpw.log")"
        rc=1
    fi
    return "$rc"
}

# Kill the registry while a large blob is being uploaded, restart it on the
# same storage and port, push again: the push completes with the same digest.
step_fault() {
    local dir=$images/face-embedding repo=aurum-circle/fault-embedding push_pid code=0 i hit='' want got
    export OCIPACK_REGISTRY_USER=$reg_user OCIPACK_REGISTRY_PASSWORD=$reg_password
    # 1 MiB chunks: many PATCHes, so the upload is observable in the storage.
    ocipack push --quiet --insecure --chunk-mib 1 --tries 1 "$dir" "$reg/$repo:latest" \
        >"$work/fault1.log" 2>&1 &
    push_pid=$!
    for ((i = 0; i < 1000; i++)); do
        # An upload in progress with more than 4 MiB received: only the
        # onnxruntime and model blobs are that big, and they take many PATCHes.
        if find "$work/registry/data" -path "*/$repo/_uploads/*" -name data -size +4096k 2>/dev/null | grep -q .; then
            hit=1
            break
        fi
        kill -0 "$push_pid" 2>/dev/null || break
        sleep 0.01
    done
    kill -9 "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
    REGISTRY_PID=
    wait "$push_pid" || code=$?
    [ -n "$hit" ] || {
        log "the push finished before an upload was seen in progress; the fault was not injected"
        return 1
    }
    [ "$code" != 0 ] || {
        log "the push succeeded although the registry was killed mid-upload"
        return 1
    }
    echo "  registry killed mid-upload; the push failed with exit $code: $(tail -1 "$work/fault1.log")"
    start_reg
    ocipack push --quiet --insecure "$dir" "$reg/$repo:latest" >"$work/fault2.log" 2>&1 || {
        log "the push after the restart failed: $(tail -3 "$work/fault2.log")"
        return 1
    }
    want=$(image_digest "$dir")
    got=$(skopeo inspect --tls-verify=false --creds "$reg_user:$reg_password" "docker://$reg/$repo:latest" | jq -r .Digest)
    [ "$want" = "$got" ] || {
        log "after the restart: registry has $got, layout $want"
        return 1
    }
    echo "  restarted on the same storage; the second push completed: $got"
}

# Each image alone, hardened, until it answers on its own loopback port.
step_run_each() {
    local name port rc=0
    # The secrets compose mounts under /run/secrets (redis.conf, TLS pair,
    # nginx's token include), made the way operators make them.
    "$E2E_ROOT/deploy/make-secrets.sh" "$work/secrets" >/dev/null || return 1
    REDISCLI_AUTH=$(cat "$work/secrets/redis-password")
    export REDISCLI_AUTH
    local secrets_mount
    secrets_mount=$(jq -n --arg s "$work/secrets" '{destination: "/run/secrets", type: "bind", source: $s, options: ["rbind", "ro"]}')
    for name in $(names); do
        port=$(free_port)
        case $name in
        redis)
            runc_bundle "$images/$name" "$work/b-$name" || return 1
            # The image's /data is a volume in compose: a tmpfs here.
            jq --arg p "$port" --argjson sec "$secrets_mount" '.process.args += ["--port", $p, "--bind", "127.0.0.1"]
                | .mounts += [$sec, {destination: "/data", type: "tmpfs", source: "tmpfs",
                               options: ["nosuid", "nodev", "uid=65532", "gid=65532", "mode=0700"]}]' \
                "$work/b-$name/config.json" >"$work/c.json" && mv "$work/c.json" "$work/b-$name/config.json"
            ;;
        nginx)
            runc_bundle "$images/$name" "$work/b-$name" || return 1
            # Host networking here: loopback listeners instead of the image's
            # listen.conf and tls.conf (its upstream.conf is kept: scoring is
            # only resolved per request).
            printf 'listen 127.0.0.1:%s;\n' "$port" >"$work/listen.conf"
            printf 'listen 127.0.0.1:%s ssl;\nssl_certificate /run/secrets/tls.crt;\nssl_certificate_key /run/secrets/tls.key;\n' \
                "$(free_port)" >"$work/tls.conf"
            jq --arg f "$work/listen.conf" --arg t "$work/tls.conf" --argjson sec "$secrets_mount" '.mounts += [$sec,
                    {destination: "/etc/nginx/listen.conf", type: "bind", source: $f, options: ["rbind", "ro"]},
                    {destination: "/etc/nginx/tls.conf", type: "bind", source: $t, options: ["rbind", "ro"]}]' \
                "$work/b-$name/config.json" >"$work/c.json" && mv "$work/c.json" "$work/b-$name/config.json"
            ;;
        qdrant)
            qdrant_bundle "$images/$name" "$work/b-$name" "$port" "$(free_port)" || return 1
            ;;
        *) runc_bundle "$images/$name" "$work/b-$name" HOSTNAME=127.0.0.1 "PORT=$port" || return 1 ;;
        esac
        runc_start "$state" "one-$name" "$work/b-$name" || {
            rc=1
            continue
        }
        case $name in
        redis) wait_for 100 redis_ready "$port" ;;
        nginx) wait_for_http 100 "http://127.0.0.1:$port/healthz" ;;
        qdrant) wait_for_http 150 "http://127.0.0.1:$port/readyz" && qdrant_key_required "$port" ;;
        *) wait_for_http 150 "http://127.0.0.1:$port/api/health" ;;
        esac || {
            log "$name did not answer on 127.0.0.1:$port: $(tail -5 "$work/b-$name.log")"
            rc=1
        }
        # The kernel's view of the process, not just the config we wrote.
        local st
        st=/proc/$(cat "$work/b-$name.pid")/status
        if ! grep -qE "^Uid:\s+$E2E_UID\s" "$st" || ! grep -qE '^CapEff:\s+0+$' "$st" ||
            ! grep -qE '^NoNewPrivs:\s+1$' "$st"; then
            log "$name: not uid $E2E_UID / no capabilities / no_new_privs: $(grep -E '^(Uid|CapEff|NoNewPrivs)' "$st" | tr '\n' ' ')"
            rc=1
        fi
        awk '$5 == "/" && $6 ~ /^ro(,|$)/ {found = 1} END {exit !found}' "${st%status}mountinfo" || {
            log "$name: the root filesystem is not mounted read-only"
            rc=1
        }
        [ "$rc" != 0 ] || echo "  $name: up under runc (uid $E2E_UID, read-only root, no caps) on 127.0.0.1:$port"
        runc --root "$state" kill "one-$name" KILL 2>/dev/null || true
        wait_for 25 sh -c "[ \"\$(runc --root '$state' state 'one-$name' | jq -r .status)\" = stopped ]" || true
        runc --root "$state" delete --force "one-$name" || rc=1
        rm -rf -- "$work/b-$name"
    done
    return "$rc"
}

step_stack() {
    local rport dport eport sport qport
    rport=$(free_port) dport=$(free_port) eport=$(free_port) sport=$(free_port) qport=$(free_port)
    stack_start "$state" "$work" "$images" "$rport" "$dport" "$eport" "$sport" "$qport" || return 1
    score_photo "http://127.0.0.1:$sport" .cache/assets/photos/yaoming.jpg "$work/score1.json" || return 1
    check_score "$work/score1.json" false || return 1
    score_photo "http://127.0.0.1:$sport" .cache/assets/photos/yaoming.jpg "$work/score2.json" || return 1
    check_score "$work/score2.json" true || return 1
    echo "  first:  $(jq -c '{score, percentile, cached, faces_detected}' "$work/score1.json")"
    echo "  second: $(jq -c '{score, percentile, cached, faces_detected}' "$work/score2.json")"
    check_similar "http://127.0.0.1:$sport" "$work/similar.json" || return 1
    echo "  qdrant (API key required): GET /api/similar/yaoming -> $(jq -c '.similar' "$work/similar.json")"
}

step_teardown() {
    local pids rc=0
    runc_stop_all "$state"
    stop_pid "$REDIS_PID"
    stop_pid "$REGISTRY_PID"
    REDIS_PID='' REGISTRY_PID=''
    [ -z "$(runc --root "$state" list -q 2>/dev/null)" ] || {
        log "runc containers left: $(runc --root "$state" list -q)"
        rc=1
    }
    # Everything started here carries the temp dir or a container binary path
    # in its command line.
    pids=$(pgrep -f "$work|/app/bin/(scoring|face-detection|face-embedding)-service" || true)
    [ -z "$pids" ] || {
        log "processes left: $(ps -o pid=,args= -p "$(echo "$pids" | paste -sd,)")"
        rc=1
    }
    [ "$(mounts_under "$work")" = 0 ] || {
        log "mounts left under $work: $(awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/mounts)"
        rc=1
    }
    return "$rc"
}

started=$(date +%s)
run_step "1-build-and-size" step_build
run_step "2-validate" step_validate
run_step "3-push-pull-auth" step_push_pull
run_step "4-registry-crash-mid-push" step_fault
run_step "5-runc-each-image" step_run_each
run_step "6-runc-stack-score-and-cache" step_stack
run_step "7-teardown-nothing-left" step_teardown
echo "host-images: $(($(date +%s) - started)) s"
e2e_summary host-images
