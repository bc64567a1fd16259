#!/usr/bin/env bash
# nix/sbom.nix, offline, over the fixture image app-v1 that tests/nix/run.sh
# built (run.sh calls this with its work directory; under Nix 2.8 and 2.26).
#
#   tests/nix/sbom.sh WORK      (WORK: run.sh's work directory with tools/)
#
# Checks: every store path of the image's closure is a pkg:nix component
# with the name and version its store path name gives; the references are
# dependencies; nixpkgs meta (licence, home page) where the builder passed
# it; a package outside the closure refused by name; the same bytes from a
# rebuild (`nix-build --check`) and from a second, salted derivation;
# pyspdxtools, the CycloneDX 1.6 schema and ntia-conformance-checker accept
# the documents (the validators of tests/supply-chain, venv /opt/aurum-supply).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${1:?usage: $0 WORK (tests/nix/run.sh work directory)}
venv=${SUPPLY_VENV:-/opt/aurum-supply}
# free_port, start_registry, stop_pid (its own fail() is replaced below)
# shellcheck source=tests/e2e/lib.sh
. "$repo/tests/e2e/lib.sh"
fail() { echo "FAIL: nix sbom: $*" >&2; exit 1; }
[ -x "$venv/bin/pyspdxtools" ] || fail "$venv has no pyspdxtools: run scripts/setup.sh"
[ -d "$work/tools/bin" ] || fail "$work/tools: run tests/nix/run.sh (it builds the tools directory)"
start=$(date +%s)
flags=(--option substituters "" --option sandbox "${NIX_TEST_SANDBOX:-true}"
  --option allow-import-from-derivation false)
getent group nixbld >/dev/null || flags+=(--option build-users-group "")
expr=$here/sbom-test.nix
nb() { nix-build "${flags[@]}" --no-out-link "$expr" --arg toolsDir "$work/tools" "$@"; }

sbom=$(nb -A sbom) || fail "nix/sbom.nix did not build"
again=$(nb -A again) || fail "the salted SBOM derivation did not build"
[ "$sbom" != "$again" ] || fail "the salted derivation is the same store path"
for f in sbom.spdx.json sbom.cdx.json; do
  [ -s "$sbom/$f" ] || fail "no $f in $sbom"
  cmp "$sbom/$f" "$again/$f" || fail "$f differs between two derivations of the same image"
done
# The same derivation built again, compared by Nix itself.
nb -A sbom --check >/dev/null 2>&1 || fail "nix-build --check: the SBOM derivation is not deterministic"

mapfile -t roots < <(nix-instantiate --eval --strict --json "$expr" --arg toolsDir "$work/tools" -A roots |
  python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)))')
[ "${#roots[@]}" -gt 0 ] || fail "the image has no contents"
nix-store -qR "${roots[@]}" >"$work/sbom-closure.txt"
image=$(nb -A image)
python3 - "$sbom" "$work/sbom-closure.txt" "$image" <<'PY' || fail "the SBOM does not describe the closure"
import json, re, sys, urllib.parse
out, closure_file, image = sys.argv[1:]
cdx = json.load(open(f"{out}/sbom.cdx.json"))
spdx = json.load(open(f"{out}/sbom.spdx.json"))
closure = [l.strip() for l in open(closure_file) if l.strip()]
comps = {}
for c in cdx["components"]:
    p = c.get("purl", "")
    if p.startswith("pkg:nix/"):
        sp = urllib.parse.unquote(urllib.parse.parse_qs(p.split("?", 1)[1])["store_path"][0])
        comps[sp] = c
missing = [p for p in closure if p not in comps]
assert not missing, f"store paths of the closure missing from the SBOM: {missing}"
extra = [p for p in comps if p not in closure]
assert not extra, f"pkg:nix components not in the closure: {extra}"
# Name and version from the store path name, parsed here independently.
for p in closure:
    base = p.split("/")[3].split("-", 1)[1]
    m = re.match(r"^(.*?)-(\d.*)$", base)
    name, version = (m.group(1), m.group(2)) if m else (base, "")
    c = comps[p]
    assert (c["name"], c["version"]) == (name, version), (p, c["name"], c["version"])
by_name = {c["name"]: c for c in comps.values()}
want = {"fixture-app": "1", "fixture-lib-a": "1.0", "fixture-lib-b": "2.0", "fixture-runtime": "1.31"}
for n, v in want.items():
    assert n in by_name and by_name[n]["version"] == v, (n, v, sorted(by_name))
# References as dependencies: app -> lib-b -> lib-a.
deps = {d["ref"]: set(d.get("dependsOn", [])) for d in cdx["dependencies"]}
assert by_name["fixture-lib-b"]["purl"] in deps[by_name["fixture-app"]["purl"]], "app does not depend on lib-b"
assert by_name["fixture-lib-a"]["purl"] in deps[by_name["fixture-lib-b"]["purl"]], "lib-b does not depend on lib-a"
# nixpkgs meta where it was passed, nothing invented elsewhere.
app, libb, liba = by_name["fixture-app"], by_name["fixture-lib-b"], by_name["fixture-lib-a"]
assert app["licenses"] == [{"expression": "MIT"}], app.get("licenses")
assert app["externalReferences"] == [{"type": "website", "url": "https://example.org/fixture-app"}], app
assert libb["licenses"] == [{"expression": "(Apache-2.0 AND LicenseRef-nixpkgs-fixture-unfree)"}], libb.get("licenses")
assert "licenses" not in liba and "externalReferences" not in liba, liba
refs = {e["licenseId"] for e in spdx.get("hasExtractedLicensingInfos", [])}
assert refs == {"LicenseRef-nixpkgs-fixture-unfree"}, refs
# The image: its manifest digest; its files with hashes.
idx = json.load(open(f"{image}/index.json"))
digest = idx["manifests"][0]["digest"]
assert cdx["metadata"]["component"]["version"] == digest, (cdx["metadata"]["component"], digest)
assert spdx["packages"][0]["versionInfo"] == digest
files = {f["fileName"] for f in spdx["files"]}
assert any(f.endswith("/bin/app") for f in files), sorted(files)[:10]
# $out/oci: the two SBOM artifacts, subject the image, as in LAYOUT.attest/oci.
oidx = json.load(open(f"{out}/oci/index.json"))
types = sorted(m.get("artifactType") for m in oidx["manifests"])
assert types == ["application/spdx+json", "application/vnd.cyclonedx+json"], types
for m in oidx["manifests"]:
    a, h = m["digest"].split(":")
    man = json.load(open(f"{out}/oci/blobs/{a}/{h}"))
    assert man["subject"]["digest"] == digest, (man["subject"], digest)
print(f"nix sbom: {len(closure)} store paths, {len(spdx['files'])} files, image {digest}", file=sys.stderr)
PY

# Pushed with the image: the layout and the SBOM output side by side as
# LAYOUT and LAYOUT.attest, `ocipack push` attaches the two artifacts.
REGISTRY_PID=
trap 'stop_pid "$REGISTRY_PID"' EXIT
port=$(free_port)
start_registry "$work/sbom-registry" "$port"
rm -rf "$work/push" && mkdir -p "$work/push"
cp -rL "$image" "$work/push/app-v1" && cp -r "$sbom" "$work/push/app-v1.attest" && chmod -R u+w "$work/push"
ocipack=$work/tools/bin/ocipack
"$ocipack" push "$work/push/app-v1" "127.0.0.1:$port/nix/app-v1:latest" --insecure >/dev/null ||
  fail "ocipack push of the image with its Nix SBOMs"
refs=$("$ocipack" --json referrers "127.0.0.1:$port/nix/app-v1:latest" --insecure) || fail "ocipack referrers"
for t in application/spdx+json application/vnd.cyclonedx+json; do
  grep -qF "$t" <<<"$refs" || fail "the registry lists no $t referrer of the image: $refs"
done
stop_pid "$REGISTRY_PID"
REGISTRY_PID=

"$venv/bin/pyspdxtools" -i "$sbom/sbom.spdx.json" >/dev/null || fail "pyspdxtools refused the Nix SPDX document"
check() { "$venv/bin/python" "$repo/tests/supply-chain/check.py" "$@"; }
check cyclonedx "$sbom/sbom.cdx.json" || fail "the Nix CycloneDX document does not validate against 1.6"
check ntia "$sbom/sbom.spdx.json" || fail "ntia-conformance-checker: minimum elements missing"

if err=$(nb -A stray 2>&1); then
  fail "a package outside the image's closure was accepted"
fi
grep -q "not in the image's closure" <<<"$err" || fail "unexpected error for a package outside the closure: $err"
echo "nix sbom: passed in $(($(date +%s) - start)) s" >&2
