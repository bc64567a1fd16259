#!/usr/bin/env bash
# The frontend in a real browser against the real stack, without Docker: the
# host-built images of face-detection, face-embedding, scoring, qdrant and the
# frontend run under runc hardened like deploy/compose.yaml (uid 65532,
# read-only root, no capabilities), with Debian's redis-server; Debian's
# chromium, driven by puppeteer-core (tests/e2e/browser/driver.mjs), uploads
# yaoming.jpg through the file input and checks the score, percentile, bars,
# face box position and similar users, then a text file, a 20 MB file and a
# stopped scoring service.
#
#   tests/e2e/browser.sh       (root; E2E_IMAGES=DIR reuses layouts holding those five images)
#
# Screenshots go to BROWSER_SHOTS (default target/browser-e2e/). Prints
# PASS/FAIL per step and `e2e: N passed, M failed` last.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname -- "$0")/lib.sh"
cd "$E2E_ROOT"
require_root
require_tools cargo node npm jq curl umoci runc redis-server redis-cli chromium
export PATH="$E2E_ROOT/target/release:$PATH"
assets=${ASSETS_DIR:-$E2E_ROOT/.cache/assets}
shots=${BROWSER_SHOTS:-$E2E_ROOT/target/browser-e2e}

work=$(mktemp -d /tmp/e2e-browser.XXXXXX)
state=$work/runc
images=${E2E_IMAGES:-$work/images}
REDIS_PID=
cleanup() {
    set +e
    runc_stop_all "$state"
    stop_pid "$REDIS_PID"
    umount_under "$work"
    rm -rf -- "$work"
}
trap cleanup EXIT

step_build() {
    npm_ci "$E2E_ROOT/tests/e2e/browser" || return 1
    [ -z "${E2E_IMAGES:-}" ] || return 0
    cargo build --release -p scoring-service -p face-detection-service -p face-embedding-service \
        -p http-probe -p ocipack-cli || return 1
    scripts/fetch-assets.sh || return 1
    web_build || return 1
    local n
    for n in face-detection face-embedding scoring qdrant frontend; do
        ocipack host "images/$n.toml" -o "$images/$n" >"$work/host-$n.log" 2>&1 || {
            log "ocipack host images/$n.toml: $(tail -3 "$work/host-$n.log")"
            return 1
        }
    done
    echo "  frontend image: $(image_size "$images/frontend") bytes compressed, $(image_digest "$images/frontend")"
}

step_stack() {
    rport=$(free_port) dport=$(free_port) eport=$(free_port) sport=$(free_port) qport=$(free_port) fport=$(free_port)
    stack_start "$state" "$work" "$images" "$rport" "$dport" "$eport" "$sport" "$qport" || return 1
    # Someone to be similar to: players.jpg (Yao Ming among other players).
    curl -fsS --max-time 60 -F "image=@$assets/photos/players.jpg;type=image/jpeg" -F userId=players \
        -o "$work/players.json" "http://127.0.0.1:$sport/api/score" || return 1
    runc_bundle "$images/frontend" "$work/b-frontend" HOSTNAME=127.0.0.1 "PORT=$fport" \
        "SCORING_SERVICE_URL=http://127.0.0.1:$sport" || return 1
    runc_start "$state" e2e-frontend "$work/b-frontend" || return 1
    wait_for_http 150 "http://127.0.0.1:$fport/api/health" || {
        log "frontend on port $fport is not healthy after 30 s: $(tail -5 "$work/b-frontend.log")"
        return 1
    }
    local st code
    st=/proc/$(cat "$work/b-frontend.pid")/status
    if ! { grep -qE "^Uid:\s+$E2E_UID\s" "$st" && grep -qE '^CapEff:\s+0+$' "$st"; }; then
        log "frontend: not uid $E2E_UID without capabilities: $(grep -E '^(Uid|CapEff)' "$st" | tr '\n' ' ')"
        return 1
    fi
    awk '$5 == "/" && $6 ~ /^ro(,|$)/ {found = 1} END {exit !found}' "${st%status}mountinfo" || {
        log "frontend: the root filesystem is not mounted read-only"
        return 1
    }
    # The image's healthcheck, as the engine runs it: no shell involved.
    runc --root "$state" exec e2e-frontend /usr/bin/node /app/healthcheck.js || {
        log "frontend: the image's healthcheck (node /app/healthcheck.js) failed"
        return 1
    }
    code=$(curl -sS -o "$work/ready.json" -w '%{http_code}' "http://127.0.0.1:$fport/api/ready")
    [ "$code" = 200 ] || {
        log "frontend /api/ready answered $code with scoring up: $(cat "$work/ready.json")"
        return 1
    }
    echo "  frontend under runc (uid $E2E_UID, read-only root, no caps) on 127.0.0.1:$fport; healthcheck ok; ready"
}

step_browser() {
    mkdir -p "$shots"
    FRONTEND_URL=http://127.0.0.1:$fport/ PHOTO=$assets/photos/yaoming.jpg OUT_DIR=$shots SIMILAR_USER=players \
        STOP_SCORING="runc --root '$state' kill e2e-scoring KILL && sleep 1" \
        node tests/e2e/browser/driver.mjs || return 1
    local code
    code=$(curl -sS -o "$work/ready.json" -w '%{http_code}' "http://127.0.0.1:$fport/api/ready")
    if ! { [ "$code" = 503 ] && jq -e '.status == "unavailable" and .checks.scoring.ok == false' "$work/ready.json" >/dev/null; }; then
        log "frontend /api/ready answered $code with scoring stopped: $(cat "$work/ready.json")"
        return 1
    fi
    echo "  /api/ready with scoring stopped: 503 $(jq -c .checks.scoring "$work/ready.json")"
    # JSON request logs on stdout.
    grep -q '"message":"request".*"path":"/api/web/score"' "$work/b-frontend.log" || {
        log "no JSON request log line for /api/web/score in the frontend's output: $(tail -3 "$work/b-frontend.log")"
        return 1
    }
}

started=$(date +%s)
run_step "1-build" step_build
run_step "2-stack-and-frontend-under-runc" step_stack
run_step "3-chromium" step_browser
runc_stop_all "$state"
echo "browser: $(($(date +%s) - started)) s"
e2e_summary browser
