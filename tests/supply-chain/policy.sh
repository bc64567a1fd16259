#!/usr/bin/env bash
# The cosign-compatible signature enforced by the container engines' own
# policy code: trixie's skopeo and podman (tests/supply-chain/trixie-tools.sh;
# Debian 12's have sigstore patched out) with a containers policy.json whose
# `sigstoreSigned` requirement names our public key, and a registries.d entry
# with `use-sigstore-attachments: true` for a loopback docker-registry.
#
#   tests/supply-chain/policy.sh LAYOUT      (root; LAYOUT: an image `ocipack host` built)
#
# Accepted: the signed image (skopeo copy, podman pull). Refused: the same
# image under a policy naming another key; an unsigned image; a manifest
# changed after signing (one annotation added, the old signature attached to
# the new digest). The image and its signature go in with `ocipack push
# --sign`. The same policy files are what docs/operations.md shows.
# Prints one line per case and `policy: N cases, M failed` last.
set -euo pipefail
# shellcheck disable=SC2317 # sk/pm are called through expect.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname -- "$0")/../e2e/lib.sh"
cd "$E2E_ROOT"
{ [ $# = 1 ] && [ -f "$1/oci-layout" ]; } || die "usage: $0 LAYOUT (an image layout ocipack host wrote)"
export PATH="${SUPPLY_BIN_DIR:-$E2E_ROOT/target/release}:$PATH"

if [ -z "${AURUM_POLICY_INSIDE:-}" ]; then
    require_root
    require_tools ocipack jq python3 curl docker-registry unshare
    # Everything under /tmp: the chrooted tools see /tmp at its own path.
    work=$(mktemp -d /tmp/policy-test.XXXXXX)
    mkdir -p "$work/registries.d"
    rc=0
    AURUM_POLICY_INSIDE=$work TRIXIE_REGISTRIES_D=$work/registries.d \
        "$E2E_ROOT/tests/supply-chain/trixie-tools.sh" run "$0" "$(realpath "$1")" || rc=$?
    rm -rf -- "$work"
    exit "$rc"
fi

# Inside trixie-tools.sh's namespace: `skopeo` and `podman` are trixie's.
work=$AURUM_POLICY_INSIDE
[ -n "${AURUM_CONTAINERS_TRIXIE:-}" ] || die "run through tests/supply-chain/trixie-tools.sh"
REGISTRY_PID=
cleanup() {
    set +e
    stop_pid "$REGISTRY_PID"
    podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver vfs \
        system reset -f >/dev/null 2>&1
}
trap cleanup EXIT
started=$(date +%s)
log "policy: $(skopeo --version), $(podman --version)"
src=$work/image
cp -r "$1" "$src"
# Its SBOMs go along as referrers when ocipack host wrote them.
if [ -d "$1.attest" ]; then cp -r "$1.attest" "$src.attest"; fi
digest_of() { ocipack --json inspect "$1" | jq -r '.[0].manifestDigest'; }
d=$(digest_of "$src")
port=$(free_port)
reg=127.0.0.1:$port
start_registry "$work/registry" "$port"
ocipack sign --generate-key "$work/a" >/dev/null 2>&1
ocipack sign --generate-key "$work/b" >/dev/null 2>&1

# The signed image: `ocipack push --sign` signs the manifest for the
# repository it is pushed to and writes the cosign `sha256-<hex>.sig` tag
# (with the SBOM referrers of $1.attest).
ocipack push "$src" "$reg/supply/redis:latest" --insecure --sign "$work/a.key" >/dev/null
# Unsigned: the same image in a repository nobody signed for.
ocipack push "$src" "$reg/supply/unsigned:latest" --insecure --no-attest >/dev/null
# Changed after signing: one annotation added to the manifest (new digest),
# pushed under the signed repository with the old signature attached.
python3 - "$src" "$work/tampered" <<'PY'
import hashlib, json, os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
shutil.copytree(src, dst)
idx = json.load(open(f"{dst}/index.json"))
a, h = idx["manifests"][0]["digest"].split(":")
m = json.load(open(f"{dst}/blobs/{a}/{h}"))
m.setdefault("annotations", {})["org.example.changed"] = "after signing"
b = json.dumps(m, separators=(",", ":"), sort_keys=True).encode()
h = hashlib.sha256(b).hexdigest()
open(f"{dst}/blobs/sha256/{h}", "wb").write(b)
idx["manifests"][0].update(digest=f"sha256:{h}", size=len(b))
json.dump(idx, open(f"{dst}/index.json", "w"))
PY
td=$(digest_of "$work/tampered")
[ "$td" != "$d" ] || die "the changed manifest has the signed digest"
ocipack push "$work/tampered" "$reg/supply/redis:tampered" --insecure --no-attest >/dev/null
skopeo copy -q --preserve-digests --src-tls-verify=false --dest-tls-verify=false \
    "docker://$reg/supply/redis:${d/:/-}.sig" "docker://$reg/supply/redis:${td/:/-}.sig"

# The deployment recipe (docs/operations.md): reject by default, the
# repository only with a sigstore signature by KEY.
printf 'docker:\n  %s:\n    use-sigstore-attachments: true\n' "$reg" >"$work/registries.d/aurum.yaml"
policy() { # KEY.pub -> policy.json path
    local p
    p=$work/policy-$(basename "$1" .pub).json
    jq -n --arg k "$1" --arg r "$reg/supply" '{default: [{type: "reject"}], transports: {
        docker: {($r): [{type: "sigstoreSigned", keyPath: $k, signedIdentity: {type: "matchRepository"}}]}}}' >"$p"
    echo "$p"
}
pa=$(policy "$work/a.pub")
pb=$(policy "$work/b.pub")
sk() { skopeo --policy "$1" --registries.d "$work/registries.d" copy -q --src-tls-verify=false \
    "docker://$2" "dir:$(mktemp -d "$work/pulled.XXXXXX")"; }
pm() { podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver vfs \
    --events-backend file --cgroup-manager cgroupfs \
    pull -q --tls-verify=false --signature-policy "$1" "$2"; }
cases=0 failed=0
expect() { # ok|refused PATTERN WHAT COMMAND...: PATTERN must be in a refusal
    local want=$1 pat=$2 what=$3 out
    shift 3
    cases=$((cases + 1))
    if out=$("$@" 2>&1); then
        if [ "$want" = ok ]; then log "ok, accepted: $what"; return; fi
        log "FAIL: ACCEPTED but should be refused: $what"
    elif [ "$want" = refused ] && grep -qiE -- "$pat" <<<"$out"; then
        log "ok, refused: $what: $(tail -1 <<<"$out" | cut -c1-150)"
        return
    else
        log "FAIL: $what: wanted $want /$pat/, got: $(tail -3 <<<"$out")"
    fi
    failed=$((failed + 1))
}
for tool in sk pm; do
    expect ok "" "$tool: signed image, policy with its key" $tool "$pa" "$reg/supply/redis:latest"
    expect refused "signature|verif" "$tool: signed image, policy with another key" $tool "$pb" "$reg/supply/redis:latest"
    expect refused "signature" "$tool: unsigned image" $tool "$pa" "$reg/supply/unsigned:latest"
    expect refused "digest|signature" "$tool: manifest changed after signing" $tool "$pa" "$reg/supply/redis:tampered"
done
# The accepted image is the signed one.
got=$(podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver vfs \
    --events-backend file --cgroup-manager cgroupfs images --digests --format '{{.Digest}}' | sort -u | xargs)
[ "$got" = "$d" ] || { log "FAIL: podman holds '$got', expected only $d"; failed=$((failed + 1)); }
log "policy: $cases cases, $failed failed, $(($(date +%s) - started)) s"
[ "$failed" = 0 ]
