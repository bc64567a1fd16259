#!/usr/bin/env bash
# Offline tests of the nix/ image library, with Debian's nix-bin (2.8+).
# Under Nix 2.26: tests/nix/nix226.sh run tests/nix/run.sh
#
# Builds a static ocipack with cargo, puts it and /bin/busybox (busybox-static)
# into a tools directory handed to the test flake as its `hostTools` input,
# then builds the fixture images through the real nix/ code, runs
# `nix flake check` on the test flake and asserts the layer properties.
# Needs: nix-bin, busybox-static, skopeo, umoci, runc, jq, python3, cargo.
# No network.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${AURUM_NIX_TEST_DIR:-${TMPDIR:-/tmp}/aurum-nix-test-$(nix --version | awk '{print $NF}')}
target_dir=${CARGO_TARGET_DIR:-$repo/target}
triple=x86_64-unknown-linux-gnu

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*" >&2; }

# Flakes only (no other experimental feature). No substituters: everything
# is built here. Builds run in the sandbox (Debian
# ships nix.conf with sandbox = false; this turns it on for the tests), so a
# fixture or layer that reached outside its declared inputs fails here.
# NIX_TEST_SANDBOX=false turns it off, for hosts that cannot sandbox.
# Import-from-derivation is refused: evaluating an image must build nothing.
nix_flags=(
  --extra-experimental-features "nix-command flakes"
  --option substituters ""
  --option sandbox "${NIX_TEST_SANDBOX:-true}"
  --option allow-import-from-derivation false
)
if ! getent group nixbld >/dev/null; then
  # Without build users, a root nix builds as root.
  nix_flags+=(--option build-users-group "")
fi
flake="git+file://$repo?dir=tests/nix"
lock_flags=(--no-write-lock-file --override-input hostTools "path:$work/tools")
nixc() { nix "${nix_flags[@]}" "$@"; }

step "checking that the test files are tracked (flakes in git see tracked files only)"
for f in tests/nix/flake.nix tests/nix/default.nix tests/nix/fixtures.nix tests/nix/package-files.nix \
  tests/nix/bad-images/wrong-binary.toml tests/nix/bad-images/wrong-host-binary.toml nix/default.nix; do
  git -C "$repo" ls-files --error-unmatch "$f" >/dev/null 2>&1 ||
    fail "$f is not tracked by git; git add it, or the flake will not see it"
done

step "building a static ocipack"
# AURUM_STATIC_OCIPACK: a static ocipack built elsewhere (e.g. from another
# revision while the working tree does not compile); CI always builds.
static=${AURUM_STATIC_OCIPACK:-$target_dir/$triple/release/ocipack}
if [ -z "${AURUM_STATIC_OCIPACK:-}" ]; then
  RUSTFLAGS='-C target-feature=+crt-static' cargo build --quiet --release \
    --manifest-path "$repo/Cargo.toml" -p ocipack-cli --target "$triple" --target-dir "$target_dir"
fi
rm -rf "$work" && mkdir -p "$work/tools/bin"
cp "$static" "$work/tools/bin/ocipack"
cp /bin/busybox "$work/tools/bin/busybox"
# A fresh salt per run (see fixtures.nix): every fixture, layer and image is
# built from scratch, so the run checks cold builds, not a warm store.
# AURUM_NIX_TEST_SALT pins it, to check what a warm store does.
printf '%s' "${AURUM_NIX_TEST_SALT:-$(date +%s%N)-$$}" >"$work/tools/salt"
ocipack="$work/tools/bin/ocipack"

build() { # build ATTR... -> prints output paths, one a line
  local args=()
  for a in "$@"; do args+=("$flake#$a"); done
  nixc build --offline "${lock_flags[@]}" --no-link --json "${args[@]}" |
    python3 -c 'import json,sys; [print(o["outputs"]["out"]) for o in json.load(sys.stdin)]'
}
# The derivation as JSON ({drvPath: {...}}): `nix derivation show` since 2.15.
drv_json() { nixc derivation show "$1" 2>/dev/null || nixc show-derivation "$1"; }
# Every absolute symlink into /nix/store in the image's layers must point at
# a path one of its layers holds (a file the package really has).
check_links() {
  python3 - "$1" <<'PY'
import json, sys, tarfile
d = sys.argv[1]
a, h = json.load(open(d + "/index.json"))["manifests"][0]["digest"].split(":")
man = json.load(open(f"{d}/blobs/{a}/{h}"))
names, links = set(), []
for layer in man["layers"]:
    a, h = layer["digest"].split(":")
    for m in tarfile.open(f"{d}/blobs/{a}/{h}"):
        n = "/" + m.name.lstrip("./")
        names.add(n.rstrip("/"))
        if m.issym() and m.linkname.startswith("/nix/store/"):
            links.append((n, m.linkname))
bad = [f"{n} -> {t}" for n, t in links if t.rstrip("/") not in names]
if bad:
    sys.exit("dangling links: " + ", ".join(bad))
print(f"{len(links)} links into the store resolve", file=sys.stderr)
PY
}
manifest_digest() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]+"/index.json"))["manifests"][0]["digest"])' "$1"; }
# "digest dir" for every layer of the image's manifest; dir is the directory
# the blob links to ("-" for blobs held in the layout itself): a layer
# derivation's output, or <closure derivation>/<i>.
layers_of() {
  python3 - "$1" <<'PY'
import json, os, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
algo, hexd = idx["manifests"][0]["digest"].split(":")
man = json.load(open(f"{d}/blobs/{algo}/{hexd}"))
for layer in man["layers"]:
    a, h = layer["digest"].split(":")
    p = f"{d}/blobs/{a}/{h}"
    link = os.readlink(p) if os.path.islink(p) else "-"
    print(layer["digest"], os.path.dirname(link) if link != "-" else "-")
PY
}

step "building app-v1 alone"
start=$(date +%s)
v1=$(build images.app-v1)
echo "built app-v1 in $(($(date +%s) - start)) s" >&2

step "an unchanged layer is not rebuilt: after app-v1, app-v2 needs only its application, closure and image"
# Evaluation builds nothing (no import-from-derivation: refused above); what
# remains to build must be the application itself, its closure split and the
# image, never the base or the model layer.
dry=$(nixc build --offline "${lock_flags[@]}" --dry-run --no-link "$flake#images.app-v2" 2>&1)
todo=$(printf '%s\n' "$dry" | grep -o '/nix/store/[^ ]*\.drv' || true)
for d in $todo; do
  case "$d" in
    *-fixture-app-2.drv | *-closure-app-v2.drv | *-image-app-v2.drv) ;;
    *) fail "app-v2 would rebuild $d although only its top path changed" ;;
  esac
done
echo "app-v2 needs $(printf '%s' "$todo" | grep -c drv || true) derivations built" >&2

step "building the other fixture images"
start=$(date +%s)
# One build for all (in parallel), then each path on its own: `nix build
# --json` does not list its results in the order of its arguments.
build images.app-v2 images.other images.supporting images.runnable >/dev/null
v2=$(build images.app-v2) other=$(build images.other)
supporting=$(build images.supporting) runnable=$(build images.runnable)
echo "built 3 images in $(($(date +%s) - start)) s" >&2

step "ocipack verify and skopeo inspect on every layout"
for img in "$v1" "$v2" "$other" "$supporting" "$runnable"; do
  "$ocipack" verify "$img" >/dev/null || fail "ocipack verify $img"
  skopeo inspect "oci:$img:latest" >/dev/null || fail "skopeo inspect oci:$img:latest"
done
skopeo inspect --config "oci:$v1:latest" | python3 -c '
import json, sys
c = json.load(sys.stdin)["config"]
assert c["Entrypoint"] == ["/app/bin/app"], c
assert any(e.startswith("ORT_DYLIB_PATH=/nix/store/") for e in c["Env"]), c["Env"]
assert "3000/tcp" in c["ExposedPorts"], c' || fail "app-v1 config does not follow its definition"

step "a supporting image links its entrypoint and workspace binaries"
python3 - "$supporting" <<'PY' || fail "supporting image lacks its links"
import json, sys, tarfile
d = sys.argv[1]
a, h = json.load(open(d + "/index.json"))["manifests"][0]["digest"].split(":")
man = json.load(open(f"{d}/blobs/{a}/{h}"))
a, h = man["layers"][-1]["digest"].split(":")
names = {m.name: m for m in tarfile.open(f"{d}/blobs/{a}/{h}")}
for want in ("usr/bin/other", "usr/local/bin/fixture-app-v1"):
    m = names.get(want) or names.get("./" + want)
    assert m is not None and m.issym() and m.linkname.startswith("/nix/store/"), (want, sorted(names)[:20])
PY

step "a Nix-built image runs: umoci unpack of the store layout, runc as uid 65532"
bundle=$work/runnable-bundle
umoci unpack --image "$runnable:latest" "$bundle" >/dev/null || fail "umoci unpack $runnable"
jq '.process.terminal = false | .root.readonly = true
    | .linux.namespaces |= map(select(.type != "network"))' \
  "$bundle/config.json" >"$bundle/config.new" && mv "$bundle/config.new" "$bundle/config.json"
[ "$(jq -c .process.user "$bundle/config.json")" = '{"uid":65532,"gid":65532}' ] ||
  fail "runnable does not run as 65532: $(jq -c .process.user "$bundle/config.json")"
container=aurum-nix-test-$$
trap 'runc --root "$work/runc" delete --force "$container" >/dev/null 2>&1 || true' EXIT
said=$(timeout 60 runc --root "$work/runc" run --bundle "$bundle" "$container" </dev/null 2>&1) ||
  fail "runc run of the Nix-built image failed: $said"
[ "$said" = "hello from a Nix-built image" ] || fail "the Nix-built image said '$said'"
echo "runc: $said" >&2

step "every blob links into the store: base and model layers into their derivations, the closure into its split"
mapfile -t v1_layers < <(layers_of "$v1")
n=${#v1_layers[@]}
[ "$n" -ge 5 ] || fail "app-v1 has only $n layers"
links=$(printf '%s\n' "${v1_layers[@]}" | awk '{print $2}')
[ "$(printf '%s\n' "$links" | grep -c '^/nix/store/')" -eq "$n" ] ||
  fail "some layers of app-v1 are not links into the store: $links"
[ "$(printf '%s\n' "$links" | sort -u | wc -l)" -eq "$n" ] ||
  fail "two layers of app-v1 share one store path"
printf '%s\n' "${v1_layers[0]}" | grep -q -- '-layer-base-app$' ||
  fail "the bottom layer of app-v1 is not the base layer derivation: ${v1_layers[0]}"
printf '%s\n' "${v1_layers[1]}" | grep -q -- '-closure-app-v1/0$' ||
  fail "the lowest closure layer of app-v1 is not group 0 of its closure split: ${v1_layers[1]}"
for l in $links; do
  top=$(printf '%s' "$l" | cut -d/ -f1-4)
  drv=$(nix-store -q --deriver "$top")
  [ "$drv" != "unknown-deriver" ] || fail "layer $l has no deriver"
done
# The base layer's only input derivation is ocipack (a derivation here, as
# in the flake), the model layer's ocipack and the model: never the
# application, so no application change can rebuild them.
inputs_of() { # layer dir -> its derivation's input derivations, sorted, one line
  drv_json "$(nix-store -q --deriver "$1")" | python3 -c '
import json, sys
d = next(iter(json.load(sys.stdin).values()))
print(" ".join(sorted(p if p.startswith("/") else "/nix/store/" + p for p in d["inputDrvs"])))'
}
ev() { nixc eval --offline "${lock_flags[@]}" --raw "$flake#$1"; }
ocipack_drv=$(ev ocipackPkg.drvPath)
model_drv=$(ev fixtures.bigModel.drvPath)
base_dir=$(printf '%s\n' "${v1_layers[0]}" | awk '{print $2}')
model_dir=$(printf '%s\n' "${v1_layers[@]}" | grep -- '-layer-model-big$' | awk '{print $2}')
[ "$(inputs_of "$base_dir")" = "$ocipack_drv" ] ||
  fail "the base layer depends on '$(inputs_of "$base_dir")', expected only ocipack ($ocipack_drv)"
[ "$(inputs_of "$model_dir")" = "$(printf '%s\n' "$ocipack_drv" "$model_drv" | sort | xargs)" ] ||
  fail "the model layer depends on '$(inputs_of "$model_dir")', expected only ocipack and the model"

step "changing only the top path changes only the top layer"
mapfile -t v2_layers < <(layers_of "$v2")
[ "${#v2_layers[@]}" -eq "$n" ] || fail "app-v1 has $n layers, app-v2 ${#v2_layers[@]}"
# Same blob digests below the top (the closure's lower groups are packed
# again, byte for byte); the base and model layers are the same store paths.
for ((i = 0; i < n - 1; i++)); do
  [ "${v1_layers[$i]%% *}" = "${v2_layers[$i]%% *}" ] || fail "layer $i differs between app-v1 and app-v2: ${v1_layers[$i]} / ${v2_layers[$i]}"
  case "${v1_layers[$i]}" in
    *-layer-*) [ "${v1_layers[$i]}" = "${v2_layers[$i]}" ] || fail "layer $i is a different derivation in app-v2: ${v2_layers[$i]}" ;;
  esac
done
[ "${v1_layers[$((n - 1))]%% *}" != "${v2_layers[$((n - 1))]%% *}" ] || fail "the top layers of app-v1 and app-v2 are equal"

step "images sharing a model share its layer (store path and digest)"
model_v1=$(printf '%s\n' "${v1_layers[@]}" | grep -- '-layer-model-big$' || true)
model_other=$(layers_of "$other" | grep -- '-layer-model-big$' || true)
[ -n "$model_v1" ] || fail "app-v1 has no layer-model-big"
[ "$model_v1" = "$model_other" ] || fail "model layer differs: app-v1 '$model_v1', other '$model_other'"

step "images with the same user share the base layer derivation"
base_v1=$(printf '%s\n' "${v1_layers[@]}" | grep -- '-layer-base-app$' || true)
base_other=$(layers_of "$other" | grep -- '-layer-base-app$' || true)
if [ -z "$base_v1" ] || [ "$base_v1" != "$base_other" ]; then
  fail "base layer differs: app-v1 '$base_v1', other '$base_other'"
fi

step "two independent builds give the same manifest digest"
build rebuilt.app-v1 rebuilt.other >/dev/null
again=("$(build rebuilt.app-v1)" "$(build rebuilt.other)")
[ "${again[0]}" != "$v1" ] || fail "the rebuild reused the first build's output"
[ "$(manifest_digest "$v1")" = "$(manifest_digest "${again[0]}")" ] ||
  fail "app-v1 manifest digests differ between independent builds"
[ "$(manifest_digest "$other")" = "$(manifest_digest "${again[1]}")" ] ||
  fail "other manifest digests differ between independent builds"

step "the project's own images/*.toml through nix/ (fixture contents): verified, config as defined"
defs=("$repo"/images/*.toml)
for def in "${defs[@]}"; do
  name=$(basename "$def" .toml)
  layout=$(build "realImages.$name") || fail "images/$name.toml does not build through nix/"
  "$ocipack" verify "$layout" >/dev/null || fail "ocipack verify of images/$name.toml built through nix/"
  check_links "$layout" || fail "images/$name.toml built through nix/ links a file its package does not have"
  skopeo inspect --config "oci:$layout:latest" | python3 -c '
import json, sys, tomllib
want = tomllib.load(open(sys.argv[1], "rb")).get("config", {})
got = json.load(sys.stdin)["config"]
assert got.get("Entrypoint") == want.get("entrypoint"), (got.get("Entrypoint"), want.get("entrypoint"))
assert got.get("User") == "65532:65532", got.get("User")
for k, v in want.get("env", {}).items():
    assert f"{k}={v}" in got.get("Env", []), (k, v, got.get("Env"))
for p in want.get("exposed_ports", []):
    assert p in got.get("ExposedPorts", {}), (p, got.get("ExposedPorts"))
' "$def" || fail "images/$name.toml: the Nix-built config does not follow the definition"
done
echo "${#defs[@]} definitions built through nix/" >&2

step "a definition naming a binary its package lacks is refused (dangling link)"
for bad in wrong-binary wrong-host-binary; do
  layout=$(build "badImages.$bad") || fail "badImages.$bad does not build"
  if check_links "$layout" 2>/dev/null; then
    fail "tests/nix/bad-images/$bad.toml links a missing binary and was not refused"
  fi
done

step "an image without a closure (ocipack alone assembles it) and layerAssignment on its own"
bare=$(build bare)
"$ocipack" verify "$bare" >/dev/null || fail "ocipack verify $bare"
[ "$(layers_of "$bare" | grep -c -- '-layer-')" -eq 2 ] || fail "bare: expected the base and the entries layer: $(layers_of "$bare")"
assignment=$(build assignment)
python3 - "$assignment" <<'PY' || fail "layerAssignment wrote no version 1 assignment with the app on top"
import json, sys
a = json.load(open(sys.argv[1]))
assert a["version"] == 1, a
assert any(p.endswith("-fixture-app-1") for p in a["layers"][-1]["paths"]), a["layers"][-1]
PY

step "nix/sbom.nix: app-v1's SBOMs from its closure graph, validated (tests/nix/sbom.sh)" && "$here/sbom.sh" "$work"
step "nix/imageIndex.nix: app-v1 for x86_64-linux and aarch64-linux (qemu) in one index (tests/nix/index.sh)" && "$here/index.sh" "$work"

step "fetchAssets refuses a photo without a sha256, naming it"
bad_list='{ photos = { members = [ "pkg/lost.jpg" ]; wheel_url = "file:///nonexistent.whl"; wheel_sha256 = "00"; sha256 = { }; }; }'
if err=$(nix-instantiate --eval --strict -E "
  let lib = import $repo/nix { system = \"x86_64-linux\"; ocipack = \"/nonexistent\"; busybox = \"/nonexistent\"; };
  in (lib.fetchAssets { list = $bad_list; }).photos.\"lost.jpg\".drvPath" 2>&1); then
  fail "fetchAssets accepted a photo without a sha256"
fi
printf '%s\n' "$err" | grep -q 'photo lost.jpg has no sha256' || fail "unexpected fetchAssets error: $err"

step "nix flake check (verify every image, reproducibility check)"
nixc flake check --offline "${lock_flags[@]}" "$flake"

step "every .nix file parses, flake.lock pins what flake.nix declares"
"$here/check-static.sh"

echo "app-v1 manifest $(manifest_digest "$v1"), $n layers" >&2
echo "PASS: tests/nix" >&2
