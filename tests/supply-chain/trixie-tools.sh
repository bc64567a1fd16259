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

# shellcheck source=tests/lib/trixie-tree.sh
. "$repo/tests/lib/trixie-tree.sh"

containers_dirs() { mkdir -p "$1/etc/containers/registries.d" "$1/var/tmp"; }

setup() { trixie_install "$tree" "$stamp" trixie-tools skopeo,podman,bash containers_dirs; }

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
  trixie_wrappers "$bin" "$tree" /usr/bin/bash \
    "-i PATH=/usr/sbin:/usr/bin HOME=/root TMPDIR=/var/tmp PODMAN_IGNORE_CGROUPSV1_WARNING=1" skopeo podman
  export AURUM_CONTAINERS_TRIXIE=1
  trixie_run "$bin" "$@"
}

trixie_main "$0" "$@"
