# shellcheck shell=bash
# A tree of Debian 13 "trixie" programs beside this Debian 12 host, for the
# tools whose Debian 12 builds are too old or patched (Nix 2.26 in
# tests/nix/nix226.sh; skopeo and podman with sigstore verification in
# tests/supply-chain/trixie-tools.sh). Sourced by those two scripts, which
# define `die` and their own `enter` (the bind mounts inside the namespace).
#
# The tree comes from Debian's mirror alone: `mmdebstrap --variant=extract`
# unpacks the packages and their dependencies without maintainer scripts.
# A stamp file records what was installed; another stamp reinstalls.

# trixie_install TREE STAMP NAME PACKAGES [HOOK]: installs PACKAGES (comma
# separated) into TREE unless TREE holds STAMP. HOOK, a function, is called
# with the new tree's path before it is moved into place (directories,
# configuration). NAME prefixes the messages.
trixie_install() {
    local tree=$1 stamp=$2 name=$3 packages=$4 hook=${5:-}
    if [ -f "$tree/.aurum-stamp" ] && [ "$(cat "$tree/.aurum-stamp")" = "$stamp" ]; then
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || die "setup needs root (mmdebstrap, chroot)"
    command -v mmdebstrap >/dev/null || die "mmdebstrap is missing; run scripts/setup.sh (apt-get install mmdebstrap)"
    local start=$SECONDS new=$tree.new
    rm -rf "$new" && mkdir -p "$(dirname "$tree")"
    echo "$name: installing trixie's $packages into $tree (mmdebstrap, Debian mirror only)" >&2
    mmdebstrap --quiet --variant=extract --include="$packages" trixie "$new" \
        "${AURUM_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >&2 ||
        die "mmdebstrap of trixie's $packages failed (needs deb.debian.org or AURUM_DEBIAN_MIRROR)"
    # --variant=extract runs no maintainer scripts: add the merged-/usr links.
    local d
    for d in bin sbin lib lib64; do [ -e "$new/$d" ] || ln -s "usr/$d" "$new/$d"; done
    mkdir -p "$new/proc" "$new/dev" "$new/tmp" "$new/root"
    if [ -n "$hook" ]; then "$hook" "$new"; fi
    echo "$stamp" >"$new/.aurum-stamp"
    echo "$name: installed in $((SECONDS - start)) s ($(du -sh "$new" | cut -f1))" >&2
    rm -rf "$tree" && mv "$new" "$tree"
}

# trixie_wrappers BIN TREE SHELL ENV TOOL...: a script BIN/TOOL per TOOL that
# runs the tree's /usr/bin/TOOL chrooted into TREE through the tree's SHELL,
# in the caller's directory when the tree has it (the bind mounts keep paths),
# with ENV (words for env(1), or empty for the caller's environment) first.
trixie_wrappers() {
    local bin=$1 tree=$2 shell=$3 env=$4 tool
    shift 4
    mkdir -p "$bin"
    for tool in "$@"; do
        cat >"$bin/$tool" <<WRAP
#!/bin/sh
exec ${env:+env $env }chroot "$tree" $shell -c 'cd "\$0" 2>/dev/null || cd /; exec "\$@"' "\$PWD" /usr/bin/$tool "\$@"
WRAP
        chmod +x "$bin/$tool"
    done
}

# trixie_run BIN CMD...: CMD with the wrappers in BIN first on PATH; BIN is
# removed afterwards; CMD's exit status.
trixie_run() {
    local bin=$1 rc=0
    shift
    PATH="$bin:$PATH" "$@" || rc=$?
    rm -rf "$bin"
    return "$rc"
}

# trixie_main SCRIPT ARGS...: the command line both scripts share:
#   setup        install the tree (the script's `setup`)
#   run CMD...   install, then run CMD in a private mount namespace in which
#                the script's `enter` has put the wrappers first on PATH
trixie_main() {
    local script=$1
    shift
    case "${1:-}" in
        setup)
            setup
            ;;
        run)
            shift
            [ $# -gt 0 ] || die "usage: $script run CMD..."
            setup
            [ "$(id -u)" -eq 0 ] || die "run needs root (mount namespace, chroot)"
            exec unshare --mount --propagation private "$script" __enter "$@"
            ;;
        __enter)
            shift
            enter "$@"
            ;;
        *)
            die "usage: $script setup | run CMD..."
            ;;
    esac
}
