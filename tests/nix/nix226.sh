#!/usr/bin/env bash
# Nix 2.26 (Debian 13 "trixie"'s nix-bin) next to the host's Debian 12 Nix 2.8.
#
#   tests/nix/nix226.sh setup        install the tree (once; quick when cached)
#   tests/nix/nix226.sh run CMD...   run CMD with Nix 2.26 as `nix`, `nix-store`,
#                                    `nix-instantiate`, `nix-build` on its PATH
#
# The tree comes from Debian's registry alone: `mmdebstrap --variant=extract`
# unpacks trixie's nix-bin and its dependencies (no maintainer scripts) into
# .cache/nix-trixie/root. Its own store and database live in
# .cache/nix-trixie/nix, never in the host's /nix (Nix 2.8's).
#
# `run` enters a private mount namespace (needs root) in which that store is
# mounted at /nix, so CMD and the host's tools (skopeo, umoci, python) see the
# 2.26 store paths where the layouts' symlinks point. The nix commands
# themselves run chrooted into the tree (its glibc and libraries), with /proc,
# /dev, /tmp, the store, the repository and ../shared bound at their own
# paths. Builds run in Nix's sandbox, offline, without build users.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
base=${AURUM_NIX226_DIR:-$repo/.cache/nix-trixie}
tree=$base/root
state=$base/nix
# What a finished tree records; a change here reinstalls it.
stamp="trixie nix-bin extract v1"

die() { echo "nix226: $*" >&2; exit 1; }
# shellcheck source=tests/lib/trixie-tree.sh
. "$repo/tests/lib/trixie-tree.sh"

# No build users in the tree: root builds, in the sandbox; never a substituter.
nix_config() {
  mkdir -p "$1/etc/nix" "$1/nix" "$1/work"
  cat >"$1/etc/nix/nix.conf" <<'EOF'
experimental-features = nix-command flakes
build-users-group =
sandbox = true
substituters =
warn-dirty = false
EOF
}

setup() { trixie_install "$tree" "$stamp" nix226 nix-bin nix_config; }

# Inside the namespace: the bind mounts, then wrappers on PATH.

enter() {
  mkdir -p "$state" /nix
  mount --make-rprivate /
  mount --bind "$state" /nix
  # First (the tree lies inside the repository): the repository, ../shared
  # next to it and $TMPDIR at their own paths inside. HOME inside is the
  # tree's own /root, so Nix 2.26's caches stay apart from 2.8's.
  local d
  for d in "$repo" "$(dirname "$repo")/shared" "${TMPDIR:-/tmp}"; do
    [ -d "$d" ] || continue
    case "$d" in /tmp | /tmp/*) continue ;; esac
    mkdir -p "$tree$d"
    mount --rbind "$d" "$tree$d"
  done
  mount --bind "$state" "$tree/nix"
  mount -t proc proc "$tree/proc"
  mount --rbind /dev "$tree/dev"
  mount --bind /tmp "$tree/tmp"
  local bin=/tmp/aurum-nix226-bin.$$
  trixie_wrappers "$bin" "$tree" /usr/bin/bash-static "" nix nix-store nix-instantiate nix-build nix-hash
  export AURUM_NIX_VERSION=2.26
  trixie_run "$bin" "$@"
}

trixie_main "$0" "$@"
