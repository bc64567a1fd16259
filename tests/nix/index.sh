#!/usr/bin/env bash
# nix/imageIndex.nix built, offline (issue 16, docs/multi-arch.md): the
# fixture image app-v1 for x86_64-linux (run.sh built it) and for
# aarch64-linux, combined into one OCI image index. run.sh calls this with its
# work directory; under Nix 2.8 and 2.26.
#
#   tests/nix/index.sh WORK      (WORK: run.sh's work directory with tools/)
#
# The aarch64-linux derivations are built here, on x86-64, by Nix's
# `extra-platforms = aarch64-linux`: their fixture closure by Debian's arm64
# busybox-static, run by qemu-user through binfmt_misc. The handler needs the
# F flag (qemu opened at registration), since qemu is not in the sandbox;
# scripts/setup-cross.sh registers it (run here, as root, when the handler is
# missing). Without it this part is skipped, saying so. Checks: the aarch64 image's config says arm64; `ocipack verify` of the
# index (each child's platform against its config); skopeo lists amd64 and
# arm64; the layers both images share (base, model) stored once; the index
# rebuilt by Nix (`--check`) and from a second derivation (children given in
# the other order) has the same bytes.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${1:?usage: $0 WORK (tests/nix/run.sh work directory)}
fail() { echo "FAIL: nix index: $*" >&2; exit 1; }
[ -d "$work/tools/bin" ] || fail "$work/tools: run tests/nix/run.sh (it builds the tools directory)"
start=$(date +%s)

handler=/proc/sys/fs/binfmt_misc/qemu-aarch64
binfmt_ok() { [ -r "$handler" ] && grep -q '^enabled' "$handler" && grep -q '^flags:.*F' "$handler"; }
if ! binfmt_ok && [ "$(id -u)" -eq 0 ]; then
  echo "nix index: qemu-aarch64 is not registered with the F flag: scripts/setup-cross.sh registers it" >&2
  "$repo/scripts/setup-cross.sh" >&2 || true
fi
if ! binfmt_ok; then
  echo "SKIP: nix index: no qemu-aarch64 binfmt_misc handler with the F flag ($handler);" \
    "run scripts/setup-cross.sh as root to build the aarch64-linux fixture image and the index" >&2
  exit 0
fi

# Debian's arm64 busybox-static (apt verifies it against the signed
# archive), downloaded once into .cache/busybox-arm64.
cache=$repo/.cache/busybox-arm64
armbb=$cache/bin/busybox
if [ ! -x "$armbb" ]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    [ "$(id -u)" -eq 0 ] || fail "arm64 is not a dpkg architecture: run scripts/setup-cross.sh as root"
    dpkg --add-architecture arm64 # as scripts/setup-cross.sh does
    flock /tmp/apt.lock apt-get update -qq
  fi
  mkdir -p "$repo/.cache"
  tmp=$(mktemp -d "$repo/.cache/busybox-arm64.XXXXXX")
  chmod 755 "$tmp"
  get() { (cd "$tmp" && apt-get download -qq busybox-static:arm64 2>/dev/null); }
  get || { flock /tmp/apt.lock apt-get update -qq && get; } ||
    fail "apt-get download busybox-static:arm64 failed (is arm64 a dpkg architecture? scripts/setup.sh adds it)"
  dpkg-deb -x "$tmp"/busybox-static_*_arm64.deb "$tmp/root"
  mkdir -p "$tmp/bin" && mv "$tmp/root/bin/busybox" "$tmp/bin/busybox"
  rm -rf "$tmp/root" "$tmp"/*.deb "$cache" && mv "$tmp" "$cache"
fi
# e_machine 183 (0xb7): AArch64.
[ "$(od -An -tu2 -j18 -N2 "$armbb" | tr -d ' ')" = 183 ] || fail "$armbb is not an aarch64 ELF"

# The arm64 tools directory: the arm64 busybox, the same (x86-64) ocipack
# and the same salt as run.sh's.
arm=$work/tools-aarch64
rm -rf "$arm" && mkdir -p "$arm/bin"
cp "$armbb" "$arm/bin/busybox"
cp "$work/tools/bin/ocipack" "$arm/bin/ocipack"
cp "$work/tools/salt" "$arm/salt"
ocipack=$work/tools/bin/ocipack

flags=(--option substituters "" --option sandbox "${NIX_TEST_SANDBOX:-true}"
  --option allow-import-from-derivation false --option extra-platforms aarch64-linux)
getent group nixbld >/dev/null || flags+=(--option build-users-group "")
nb() { nix-build "${flags[@]}" -Q --no-out-link "$here/index-test.nix" \
  --arg x86Tools "$work/tools" --arg armTools "$arm" "$@"; }

uname=$(nb -A armUname) || fail "the arm64 busybox does not run in Nix's sandbox (aarch64-linux, extra-platforms)"
[ "$(cat "$uname")" = aarch64 ] || fail "the arm64 busybox says uname -m '$(cat "$uname")', not aarch64"

x86=$(nb -A x86Image) || fail "the x86_64-linux fixture image does not build"
armimg=$(nb -A armImage) || fail "the aarch64-linux fixture image does not build"
for img in "$x86" "$armimg"; do
  out=$("$ocipack" verify "$img" 2>&1) || fail "ocipack verify $img: $out"
done
arch=$(skopeo inspect --config "oci:$armimg:latest" | python3 -c 'import json,sys; c=json.load(sys.stdin); print(c["os"]+"/"+c["architecture"])')
[ "$arch" = linux/arm64 ] || fail "the aarch64-linux image's config says $arch, not linux/arm64"

index=$(nb -A index) || fail "nix/imageIndex.nix did not build"
out=$("$ocipack" verify "$index" 2>&1) || fail "ocipack verify of the index $index: $out"
skopeo inspect --raw "oci:$index:latest" >"$work/index-raw.json" || fail "skopeo inspect --raw oci:$index:latest"
python3 - "$work/index-raw.json" "$index" "$x86" "$armimg" <<'PY' || fail "the index is not the two images"
import json, os, sys
raw, index, x86, arm = sys.argv[1:]
idx = json.load(open(raw))
assert idx["mediaType"] == "application/vnd.oci.image.index.v1+json", idx.get("mediaType")
plats = [(m["platform"]["os"], m["platform"]["architecture"]) for m in idx["manifests"]]
assert plats == [("linux", "amd64"), ("linux", "arm64")], plats
def manifest(layout, digest=None):
    if digest is None:
        digest = json.load(open(layout + "/index.json"))["manifests"][0]["digest"]
    a, h = digest.split(":")
    return digest, json.load(open(f"{layout}/blobs/{a}/{h}"))
children = {m["platform"]["architecture"]: m["digest"] for m in idx["manifests"]}
for arch, layout in (("amd64", x86), ("arm64", arm)):
    d, _ = manifest(layout)
    assert children[arch] == d, (arch, children[arch], d)
_, mx = manifest(index, children["amd64"])
_, ma = manifest(index, children["arm64"])
lx = {l["digest"] for l in mx["layers"]}
la = {l["digest"] for l in ma["layers"]}
shared = lx & la
# The base layer and the 32 MiB model layer are the same bytes on both.
assert len(shared) >= 2, f"only {len(shared)} layers shared"
assert any(l["size"] >= 32 << 20 for l in mx["layers"] if l["digest"] in shared), "the model layer is not shared"
assert lx != la, "the closure layers should differ between the systems"
# Stored once: one blob per digest, exactly the blobs the index reaches.
top = json.load(open(index + "/index.json"))["manifests"][0]["digest"]
want = {top} | set(children.values()) | lx | la | {mx["config"]["digest"], ma["config"]["digest"]}
have = {f"sha256:{n}" for n in os.listdir(index + "/blobs/sha256")}
assert have == want, (sorted(have - want), sorted(want - have))
print(f"nix index: {len(idx['manifests'])} platforms, {len(shared)} of {len(lx)} layers shared, "
      f"{len(have)} blobs", file=sys.stderr)
PY

digest() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]+"/index.json"))["manifests"][0]["digest"])' "$1"; }
reversed=$(nb -A reversed) || fail "the second index derivation did not build"
[ "$reversed" != "$index" ] || fail "the second index derivation is the same store path"
if [ "$(digest "$index")" != "$(digest "$reversed")" ] || ! diff -r "$index" "$reversed" >/dev/null; then
  fail "two derivations of the same index differ (children in the other order): $(digest "$index"), $(digest "$reversed")"
fi
nb -A index --check >/dev/null 2>&1 || fail "nix-build --check: the index derivation is not deterministic"
echo "nix index: index $(digest "$index") over linux/amd64 and linux/arm64, passed in $(($(date +%s) - start)) s" >&2
