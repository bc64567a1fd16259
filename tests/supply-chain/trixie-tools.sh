#!/usr/bin/env bash
# skopeo and podman from Debian 13 "trixie", in a tree of their own, for the
# signature-enforcement test (tests/supply-chain/run.sh, step signatures).
# Debian 12's skopeo 1.9 / podman 4.3 are built with sigstore verification
# patched out ("Debian-local change: sigstore disabled"); trixie's are not.
#
#   tests/supply-chain/trixie-tools.sh setup        install the tree (once; quick when cached)
#   tests/supply-chain/trixie-tools.sh run CMD...   run CMD with trixie's `skopeo` and `podman`
#                                                   first on its PATH
#
# The tree comes from Debian's mirror alone, the way tests/nix/nix226.sh gets
# Nix 2.26: `mmdebstrap --variant=extract` unpacks skopeo, podman and their
# dependencies (no maintainer scripts) into .cache/containers-trixie/root.
#
# `run` enters a private mount namespace (needs root). The wrappers chroot
# into the tree (its glibc and libraries) with /proc, /dev, /tmp and the
# repository bound at their own paths, so files under /tmp (keys, policies,
# podman's storage) keep their names. $TRIXIE_REGISTRIES_D, when set, is
# bound over the tree's /etc/containers/registries.d (podman reads
# registries.d only from there); nothing is written to the host's /etc.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
base=${AURUM_CONTAINERS_TRIXIE_DIR:-$repo/.cache/containers-trixie}
tree=$base/root
# What a finished tree records; a change here reinstalls it.
stamp="trixie skopeo podman extract v1"

die() { echo "trixie-tools: $*" >&2; exit 1; }

setup() {
  if [ -f "$tree/.aurum-stamp" ] && [ "$(cat "$tree/.aurum-stamp")" = "$stamp" ]; then
    return 0
  fi
  [ "$(id -u)" -eq 0 ] || die "setup needs root (mmdebstrap, chroot)"
  command -v mmdebstrap >/dev/null || die "mmdebstrap is missing; run scripts/setup.sh (apt-get install mmdebstrap)"
  local start=$SECONDS new=$base/root.new
  rm -rf "$new" && mkdir -p "$base"
  echo "trixie-tools: installing trixie's skopeo and podman into $tree (mmdebstrap, Debian mirror only)" >&2
  mmdebstrap --quiet --variant=extract --include=skopeo,podman,bash trixie "$new" \
    "${AURUM_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >&2 ||
    die "mmdebstrap of trixie's skopeo and podman failed (needs deb.debian.org or AURUM_DEBIAN_MIRROR)"
  # --variant=extract runs no maintainer scripts: add the merged-/usr links.
  for d in bin sbin lib lib64; do [ -e "$new/$d" ] || ln -s "usr/$d" "$new/$d"; done
  mkdir -p "$new/proc" "$new/dev" "$new/tmp" "$new/root" "$new/etc/containers/registries.d" "$new/var/tmp"
  echo "$stamp" >"$new/.aurum-stamp"
  echo "trixie-tools: installed in $((SECONDS - start)) s ($(du -sh "$new" | cut -f1))" >&2
  rm -rf "$tree" && mv "$new" "$tree"
}

enter() {
  mount --make-rprivate /
  # The tree a mount point of its own: containers-storage makes the chroot's
  # / private while applying a layer, which fails on a plain directory.
  mount --bind "$tree" "$tree"
  mkdir -p "$tree$repo"
  mount --rbind "$repo" "$tree$repo"
  mount -t proc proc "$tree/proc"
  mount --rbind /dev "$tree/dev"
  mount --bind /tmp "$tree/tmp"
  if [ -n "${TRIXIE_REGISTRIES_D:-}" ]; then
    mount --bind "$TRIXIE_REGISTRIES_D" "$tree/etc/containers/registries.d"
  fi
  local bin
  bin=$(mktemp -d /tmp/aurum-trixie-bin.XXXXXX)
  for tool in skopeo podman; do
    cat >"$bin/$tool" <<WRAP
#!/bin/sh
exec env -i PATH=/usr/sbin:/usr/bin HOME=/root TMPDIR=/var/tmp PODMAN_IGNORE_CGROUPSV1_WARNING=1 chroot "$tree" /usr/bin/bash -c 'cd "\$0" 2>/dev/null || cd /; exec "\$@"' "\$PWD" /usr/bin/$tool "\$@"
WRAP
    chmod +x "$bin/$tool"
  done
  export PATH="$bin:$PATH" AURUM_CONTAINERS_TRIXIE=1
  local rc=0
  "$@" || rc=$?
  rm -rf "$bin"
  return "$rc"
}

case "${1:-}" in
  setup)
    setup
    ;;
  run)
    shift
    [ $# -gt 0 ] || die "usage: $0 run CMD..."
    setup
    [ "$(id -u)" -eq 0 ] || die "run needs root (mount namespace, chroot)"
    exec unshare --mount --propagation private "$0" __enter "$@"
    ;;
  __enter)
    shift
    enter "$@"
    ;;
  *)
    die "usage: $0 setup | run CMD..."
    ;;
esac
