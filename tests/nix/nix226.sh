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

setup() {
  if [ -f "$tree/.aurum-stamp" ] && [ "$(cat "$tree/.aurum-stamp")" = "$stamp" ]; then
    return 0
  fi
  [ "$(id -u)" -eq 0 ] || die "setup needs root (mmdebstrap, chroot)"
  command -v mmdebstrap >/dev/null || die "mmdebstrap is missing; run scripts/setup.sh (apt-get install mmdebstrap)"
  local start=$SECONDS new=$base/root.new
  rm -rf "$new" && mkdir -p "$base"
  echo "nix226: installing trixie's nix-bin into $tree (mmdebstrap, Debian mirror only)" >&2
  mmdebstrap --quiet --variant=extract --include=nix-bin trixie "$new" \
    "${AURUM_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >&2 ||
    die "mmdebstrap of trixie's nix-bin failed (needs deb.debian.org or AURUM_DEBIAN_MIRROR)"
  # --variant=extract runs no maintainer scripts: add the merged-/usr links.
  for d in bin sbin lib lib64; do [ -e "$new/$d" ] || ln -s "usr/$d" "$new/$d"; done
  mkdir -p "$new/etc/nix" "$new/nix" "$new/proc" "$new/work" "$new/root"
  # No build users in the tree: root builds, in the sandbox; never a substituter.
  cat >"$new/etc/nix/nix.conf" <<'EOF'
experimental-features = nix-command flakes
build-users-group =
sandbox = true
substituters =
warn-dirty = false
EOF
  echo "$stamp" >"$new/.aurum-stamp"
  echo "nix226: trixie nix-bin installed in $((SECONDS - start)) s ($(du -sh "$new" | cut -f1))" >&2
  rm -rf "$tree" && mv "$new" "$tree"
}

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
  mkdir -p "$bin"
  for tool in nix nix-store nix-instantiate nix-build nix-hash; do
    cat >"$bin/$tool" <<EOF
#!/bin/sh
exec chroot "$tree" /usr/bin/bash-static -c 'cd "\$0" 2>/dev/null || cd /; exec "\$@"' "\$PWD" /usr/bin/$tool "\$@"
EOF
    chmod +x "$bin/$tool"
  done
  export PATH="$bin:$PATH" AURUM_NIX_VERSION=2.26
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
