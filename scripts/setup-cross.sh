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
#   - qemu-user-static, with the qemu-aarch64 binfmt_misc handler registered with
#     the F flag (the interpreter opened at registration, so it works inside
#     containers and chroots that do not have it).
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
host_pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static binfmt-support)
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
stamp="$sysroot/.complete-$(printf '%s\n' "${arm64_debs[@]}" | sha256sum | cut -c1-16)"
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
  (cd "$tmp/debs" && apt-get download -qq $(printf '%s:arm64 ' "${arm64_debs[@]}")) \
    || { flock /tmp/apt.lock apt-get update -qq; (cd "$tmp/debs" && apt-get download -qq $(printf '%s:arm64 ' "${arm64_debs[@]}")); }
  for d in "$tmp"/debs/*.deb; do
    dpkg -x "$d" "$tmp/root"
  done
  (cd "$tmp/debs" && sha256sum ./*.deb | sed 's| \./| |') > "$tmp/root/debs.sha256"
  rm -rf "$sysroot"
  mv "$tmp/root" "$sysroot"
  touch "$stamp"
  rm -rf "$tmp"
  trap - EXIT
  log "sysroot ready: $sysroot ($(wc -l < "$sysroot/debs.sha256") packages)"
fi

# 4. binfmt_misc: qemu-aarch64 with the F (fix binary) flag.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null \
    || { log "cannot mount binfmt_misc; arm64 binaries will not run here"; exit 1; }
fi
handler=/proc/sys/fs/binfmt_misc/qemu-aarch64
if [ -e "$handler" ] && ! grep -q '^flags:.*F' "$handler"; then
  log "re-registering qemu-aarch64 with the F flag"
  echo -1 > "$handler"
fi
if [ ! -e "$handler" ]; then
  log "registering qemu-aarch64 (flags OCF)"
  printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:OCF' \
    > /proc/sys/fs/binfmt_misc/register
fi
grep -q '^enabled' "$handler" || { log "$handler is not enabled"; exit 1; }
