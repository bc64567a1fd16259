#!/usr/bin/env bash
# Supply chain (issue 15), checked with tools we did not write: every host
# image's SBOMs (written by `ocipack host`) validated by pyspdxtools, the
# CycloneDX 1.6 schema and ntia-conformance-checker, compared with syft;
# SBOMs and provenance byte-identical across two builds; the provenance
# envelope verified by securesystemslib; the cosign-compatible signature
# enforced by trixie's skopeo 1.18 and podman 5.4 (`sigstoreSigned` policy,
# `use-sigstore-attachments`) against a loopback docker-registry
# (tests/supply-chain/policy.sh); bad input.
#
#   tests/supply-chain/run.sh        (root; SUPPLY_IMAGES=DIR reuses `ocipack host --all` output)
#
# The syft comparison table is printed (and written to $SUPPLY_TABLE when set).
# Prints PASS/FAIL per step and `supply-chain: N passed, M failed` last.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname -- "$0")/../e2e/lib.sh"
cd "$E2E_ROOT"
require_root
require_tools cargo python3 jq curl docker-registry mmdebstrap
venv=${SUPPLY_VENV:-/opt/aurum-supply}
[ -x "$venv/bin/pyspdxtools" ] || die "$venv has no pyspdxtools: run scripts/setup.sh"
export PATH="${SUPPLY_BIN_DIR:-$E2E_ROOT/target/release}:$PATH"
check() { "$venv/bin/python" "$E2E_ROOT/tests/supply-chain/check.py" "$@"; }

work=$(mktemp -d /tmp/supply-chain.XXXXXX)
images=${SUPPLY_IMAGES:-$work/images}
cleanup() {
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

# skopeo and podman enforce the signature: a sigstoreSigned policy naming
# our key, use-sigstore-attachments, a loopback registry (policy.sh, with
# trixie's skopeo and podman: Debian 12's have sigstore patched out).
step_signatures() {
    "$E2E_ROOT/tests/supply-chain/policy.sh" "$images/redis"
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
