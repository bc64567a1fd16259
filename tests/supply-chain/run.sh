#!/usr/bin/env bash
# Supply chain (issue 15), checked with tools we did not write: every host
# image's SBOMs (written by `ocipack host`) validated by pyspdxtools, the
# CycloneDX 1.6 schema and ntia-conformance-checker, compared with syft;
# SBOMs and provenance byte-identical across two builds; the provenance
# envelope verified by securesystemslib; the cosign-compatible signature
# enforced by skopeo 1.9 and podman 4.3 (`sigstoreSigned` policy,
# `use-sigstore-attachments`) against a loopback docker-registry; bad input.
#
#   tests/supply-chain/run.sh        (root; SUPPLY_IMAGES=DIR reuses `ocipack host --all` output)
#
# The syft comparison table is printed (and written to $SUPPLY_TABLE when set).
# Prints PASS/FAIL per step and `supply-chain: N passed, M failed` last.
set -euo pipefail
# shellcheck disable=SC2317 # sk/pm/policy/expect are called through expect.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname -- "$0")/../e2e/lib.sh"
cd "$E2E_ROOT"
require_root
require_tools cargo python3 jq curl skopeo podman docker-registry
venv=${SUPPLY_VENV:-/opt/aurum-supply}
[ -x "$venv/bin/pyspdxtools" ] || die "$venv has no pyspdxtools: run scripts/setup.sh"
export PATH="${SUPPLY_BIN_DIR:-$E2E_ROOT/target/release}:$PATH"
check() { "$venv/bin/python" "$E2E_ROOT/tests/supply-chain/check.py" "$@"; }

work=$(mktemp -d /tmp/supply-chain.XXXXXX)
images=${SUPPLY_IMAGES:-$work/images}
REGISTRY_PID=
regd=
cleanup() {
    set +e
    stop_pid "$REGISTRY_PID"
    [ -n "$regd" ] && rm -f "$regd"
    [ -d "$work/podman" ] && podman --root "$work/podman/root" --runroot "$work/podman/run" \
        --storage-driver vfs system reset -f >/dev/null 2>&1
    rm -rf -- "$work"
}
trap cleanup EXIT
names() { find "$images" -mindepth 2 -maxdepth 2 -name oci-layout -printf '%h\n' | xargs -rn1 basename | sort; }
digest_of() { ocipack --json inspect "$1" | jq -r '.[0].manifestDigest'; }

step_build() {
    if [ -z "${SUPPLY_IMAGES:-}" ]; then
        build_all "$images" || return 1
    fi
    local n ok=0
    for n in $(names); do
        for f in sbom.spdx.json sbom.cdx.json oci/index.json; do
            [ -s "$images/$n.attest/$f" ] || { log "$n: ocipack host wrote no $n.attest/$f"; ok=1; }
        done
    done
    [ -n "$(names)" ] && return $ok
}

step_validate() {
    local n ok=0
    for n in $(names); do
        "$venv/bin/pyspdxtools" -i "$images/$n.attest/sbom.spdx.json" || { log "$n: pyspdxtools refused the SPDX document"; ok=1; }
        check cyclonedx "$images/$n.attest/sbom.cdx.json" || ok=1
        check ntia "$images/$n.attest/sbom.spdx.json" || ok=1
    done
    return $ok
}

step_syft() {
    local n ok=0 table=$work/syft-table.md
    {
        echo "| image | syft packages | of them in our SBOM | our packages | ours syft missed | files of no package (listed with sha256) | Debian packages syft found that we lack |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
    } >"$table"
    for n in $(names); do
        "$venv/bin/syft" scan "oci-dir:$images/$n" -o syft-json -q >"$work/$n.syft.json" || { ok=1; continue; }
        check syft "$n" "$work/$n.syft.json" "$images/$n.attest/sbom.cdx.json" >>"$table" || ok=1
    done
    cat "$table"
    [ -n "${SUPPLY_TABLE:-}" ] && cp "$table" "$SUPPLY_TABLE"
    return $ok
}

# Built twice (redis and face-detection: Debian libraries, our crates, a
# model): the same image, SBOM and provenance bytes.
step_determinism() {
    local n ok=0
    for n in redis face-detection; do
        [ -d "$images/$n" ] || continue
        ocipack host "images/$n.toml" -o "$work/again/$n" >/dev/null 2>&1 || { log "$n: second build failed"; return 1; }
        for f in sbom.spdx.json sbom.cdx.json; do
            cmp "$images/$n.attest/$f" "$work/again/$n.attest/$f" || { log "$n: $f differs between two builds"; ok=1; }
        done
        # the SBOM artifact manifests (the layout may hold signatures too)
        sboms() { jq -c '[.manifests[] | select(.artifactType == "application/spdx+json" or .artifactType == "application/vnd.cyclonedx+json")]' "$1/oci/index.json"; }
        [ "$(sboms "$images/$n.attest")" = "$(sboms "$work/again/$n.attest")" ] || { log "$n: SBOM artifact manifests differ"; ok=1; }
        # back to back: the provenance names the git commit at attest time
        ocipack attest "$images/$n" --key "$work/keys/a.key" 2>/dev/null &&
            ocipack attest "$work/again/$n" --key "$work/keys/a.key" 2>/dev/null || ok=1
        cmp "$images/$n.attest/provenance.dsse.json" "$work/again/$n.attest/provenance.dsse.json" ||
            { log "$n: provenance differs between two builds"; ok=1; }
    done
    return $ok
}

step_provenance() {
    local d
    d=$(digest_of "$images/redis")
    ocipack attest "$images/redis" --key "$work/keys/a.key" || return 1
    check dsse "$images/redis.attest/provenance.dsse.json" "$work/keys/a.pub" "$d" || return 1
    if check dsse "$images/redis.attest/provenance.dsse.json" "$work/keys/b.pub" "$d" 2>/dev/null; then
        log "securesystemslib accepted the provenance with another key"
        return 1
    fi
}

# skopeo and podman with a sigstoreSigned policy naming key a.
step_signatures() {
    local port reg d td pol polb out rc=0
    port=$(free_port)
    reg=127.0.0.1:$port
    start_registry "$work/registry" "$port"
    d=$(digest_of "$images/redis")
    ocipack push "$images/redis" "$reg/supply/redis:latest" --insecure >/dev/null || return 1
    ocipack push "$images/redis" "$reg/supply/unsigned:latest" --insecure >/dev/null || return 1
    ocipack sign "$images/redis" --identity "$reg/supply/redis" --key "$work/keys/a.key" || return 1
    # ocipack push cannot push artifacts yet: skopeo copies the .sig tag as is.
    skopeo copy -q --preserve-digests --dest-tls-verify=false \
        "oci:$images/redis.attest/oci:${d/:/-}.sig" "docker://$reg/supply/redis:${d/:/-}.sig" || return 1
    # Tampered: another manifest under the signed repository, with the old
    # signature copied to its .sig tag (the payload names the old digest).
    ocipack push "$images/nginx" "$reg/supply/redis:tampered" --insecure >/dev/null || return 1
    td=$(digest_of "$images/nginx")
    skopeo copy -q --preserve-digests --dest-tls-verify=false \
        "oci:$images/redis.attest/oci:${d/:/-}.sig" "docker://$reg/supply/redis:${td/:/-}.sig" || return 1
    mkdir -p "$work/registries.d"
    printf 'docker:\n  %s:\n    use-sigstore-attachments: true\n' "$reg" >"$work/registries.d/supply.yaml"
    policy() { # KEY -> policy.json path
        jq -n --arg k "$1" --arg r "$reg/supply" '{default: [{type: "reject"}], transports: {
            docker: {($r): [{type: "sigstoreSigned", keyPath: $k, signedIdentity: {type: "matchRepository"}}]},
            dir: {"": [{type: "insecureAcceptAnything"}]}}}' >"$work/policy-$(basename "$1").json"
        echo "$work/policy-$(basename "$1").json"
    }
    pol=$(policy "$work/keys/a.pub")
    polb=$(policy "$work/keys/b.pub")
    sk() { skopeo --policy "$1" --registries.d "$work/registries.d" copy -q --src-tls-verify=false "docker://$2" "dir:$work/pulled-$RANDOM"; }
    expect() { # ok|refused WHAT COMMAND...
        local want=$1 what=$2
        shift 2
        if out=$("$@" 2>&1); then
            [ "$want" = ok ] && log "ok: $what" && return 0
            log "ACCEPTED but should be refused: $what"
            rc=1
        elif [ "$want" = ok ] && grep -q "Debian-local change: sigstore disabled" <<<"$out"; then
            # Debian 12's skopeo 1.9 / podman 4.3 are built with sigstore
            # verification patched out: they found the signature (an
            # unsigned image fails earlier, "no signature exists") but
            # refuse every sigstoreSigned requirement. Counted, not hidden.
            log "LIMITATION: $what: found the signature, but this Debian build refuses all sigstoreSigned policies ($(tail -1 <<<"$out" | cut -c1-120))"
            debian_sigstore_disabled=1
            return 0
        else
            [ "$want" = refused ] && log "refused as it should: $what: $(tail -1 <<<"$out" | cut -c1-160)" && return 0
            log "REFUSED but should be accepted: $what: $out"
            rc=1
        fi
    }
    debian_sigstore_disabled=0
    # The signature as the registry serves it, checked with `cryptography`.
    check registry-sig "$reg" supply/redis latest "$work/keys/a.pub" || { log "registry signature does not verify"; rc=1; }
    if check registry-sig "$reg" supply/redis latest "$work/keys/b.pub" 2>/dev/null; then log "verified with key b"; rc=1; fi
    if check registry-sig "$reg" supply/redis tampered "$work/keys/a.pub" 2>/dev/null; then log "tampered accepted"; rc=1; fi
    expect ok "skopeo, signed image, key a" sk "$pol" "$reg/supply/redis:latest"
    expect refused "skopeo, signed image, other key" sk "$polb" "$reg/supply/redis:latest"
    expect refused "skopeo, unsigned image" sk "$pol" "$reg/supply/unsigned:latest"
    expect refused "skopeo, manifest changed after signing" sk "$pol" "$reg/supply/redis:tampered"
    # podman reads registries.d only from /etc/containers/registries.d.
    regd=/etc/containers/registries.d/aurum-supply-test-$port.yaml
    mkdir -p /etc/containers/registries.d
    cp "$work/registries.d/supply.yaml" "$regd"
    pm() { podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver vfs \
        pull -q --tls-verify=false --signature-policy "$1" "$2"; }
    expect ok "podman, signed image, key a" pm "$pol" "$reg/supply/redis:latest"
    expect refused "podman, signed image, other key" pm "$polb" "$reg/supply/redis:latest"
    expect refused "podman, unsigned image" pm "$pol" "$reg/supply/unsigned:latest"
    expect refused "podman, manifest changed after signing" pm "$pol" "$reg/supply/redis:tampered"
    rm -f "$regd"
    [ "$debian_sigstore_disabled" = 1 ] && log "skopeo/podman: unsigned and tampered images refused; signed images cannot be ACCEPTED by Debian's builds (sigstore patched out)"
    return $rc
}

# Bad input: clear message, documented exit code, nothing half written.
step_bad_input() {
    local ok=0 out l=$work/bad/redis
    mkdir -p "$work/bad"
    cp -r "$images/redis" "$images/redis.attest" "$work/bad/"
    expect_exit() { # CODE PATTERN COMMAND...
        local code=$1 pat=$2 got=0
        shift 2
        out=$("$@" 2>&1) || got=$?
        if [ "$got" != "$code" ] || ! grep -q -- "$pat" <<<"$out"; then
            log "expected exit $code and /$pat/ from: $*; got exit $got: $out"
            ok=1
        fi
    }
    # a public key (or garbage) given as the private key
    expect_exit 1 "is not an unencrypted PKCS#8 PEM" ocipack sign "$l" --identity x/y --key "$work/keys/a.pub"
    grep -qF -- "$(sed -n 2p "$work/keys/a.pub")" <<<"$out" && { log "the error quotes key material"; ok=1; }
    expect_exit 1 "OCIPACK_NO_SUCH_KEY" ocipack sign "$l" --identity x/y --key-env OCIPACK_NO_SUCH_KEY
    # a subject that does not exist
    expect_exit 1 "no image tagged" ocipack sign "$l" --identity x/y --key "$work/keys/a.key" --tag no-such-tag
    # a truncated signature
    ocipack sign "$l" --identity x/y --key "$work/keys/a.key" 2>/dev/null
    ocipack attest "$l" --key "$work/keys/a.key" 2>/dev/null
    expect_exit 0 "verified" ocipack attest "$l" --verify --public-key "$work/keys/a.pub" --identity x/y
    python3 - "$l.attest/oci" <<'PY'
import hashlib, json, os, sys
root = sys.argv[1]
idx = json.load(open(f"{root}/index.json"))
e = next(m for m in idx["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"].endswith(".sig"))
blob = lambda d: f"{root}/blobs/sha256/{d.split(':')[1]}"
m = json.load(open(blob(e["digest"])))
a = m["layers"][0]["annotations"]
a["dev.cosignproject.cosign/signature"] = a["dev.cosignproject.cosign/signature"][:40]
b = json.dumps(m, separators=(",", ":"), sort_keys=True).encode()
d = "sha256:" + hashlib.sha256(b).hexdigest()
open(blob(d), "wb").write(b)
e["digest"], e["size"] = d, len(b)
json.dump(idx, open(f"{root}/index.json", "w"))
PY
    expect_exit 3 "FAIL signature" ocipack attest "$l" --verify --public-key "$work/keys/a.pub"
    expect_exit 3 "FAIL signature" ocipack attest "$l" --verify --public-key "$work/keys/b.pub"
    # a layout that is not one
    expect_exit 1 "oci-layout" ocipack sbom "$work/bad"
    return $ok
}

mkdir -p "$work/keys"
ocipack_keys() {
    ocipack sign --generate-key "$work/keys/a" && ocipack sign --generate-key "$work/keys/b" &&
        [ "$(stat -c %a "$work/keys/a.key")" = 600 ]
}
started=$(date +%s)
run_step build step_build
run_step keys ocipack_keys
run_step validate step_validate
run_step syft step_syft
run_step determinism step_determinism
run_step provenance step_provenance
run_step signatures step_signatures
run_step bad-input step_bad_input
log "supply-chain: $(($(date +%s) - started)) s"
printf 'supply-chain: %d passed, %d failed\n' "$E2E_PASSED" "$E2E_FAILED"
[ "$E2E_FAILED" = 0 ]
