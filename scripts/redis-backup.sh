#!/usr/bin/env bash
# Back up a running Redis to one RDB file, over the network.
#
#   REDIS_PASSWORD=... scripts/redis-backup.sh [-h HOST] [-p PORT] OUTPUT.rdb
#
# Uses `redis-cli --rdb`, which asks the server for a fresh snapshot over the
# replication protocol: no access to the server's data directory is needed
# and the server keeps serving. The password is read from REDIS_PASSWORD (or
# REDISCLI_AUTH), never from the command line, where `ps` would show it.
# Writes OUTPUT.rdb atomically (temp file, check, rename) and OUTPUT.rdb.sha256
# next to it for redis-restore.sh to verify.
#
# Defaults: HOST 127.0.0.1, PORT 6381 (the compose stack's loopback port).
# Needs: redis-cli (Debian: redis-tools); to verify the file, redis-check-rdb
# (Debian: redis-tools) or, with REDIS_IMAGE=<image reference>, docker and that
# image's own redis-check-rdb (for a Redis newer than the local tools).
set -euo pipefail

usage() {
    echo "usage: REDIS_PASSWORD=... $0 [-h HOST] [-p PORT] OUTPUT.rdb" >&2
    exit 2
}

me=redis-backup
# check_rdb FILE: the file is a valid RDB for the Redis that wrote it, checked
# with that Redis's own redis-check-rdb: the image's (REDIS_IMAGE set: run under
# docker, no network, read-only) or the local one. A Redis newer than the local
# tool writes a format it cannot read (Debian 12's 7.0 reads up to RDB 10; the
# Nix-built image's Redis 8.x writes 12): then say so instead of guessing.
check_rdb() {
    local file=$1 out
    if [ -n "${REDIS_IMAGE:-}" ]; then
        out=$(docker run --rm --network none --read-only --user "$(id -u):$(id -g)" \
            -v "$(cd -- "$(dirname -- "$file")" && pwd -P):/backup:ro" --entrypoint /usr/bin/redis-check-rdb \
            "$REDIS_IMAGE" "/backup/$(basename -- "$file")" 2>&1) || {
            printf '%s\n' "$out" >&2
            return 1
        }
    elif command -v redis-check-rdb >/dev/null; then
        out=$(redis-check-rdb "$file" 2>&1) || {
            if grep -q "Can't handle RDB format version" <<<"$out"; then
                echo "$me: RDB format $(head -c 9 -- "$file" | tail -c 4) is newer than the local $(redis-check-rdb --version 2>&1 | head -1) reads;" \
                    "check with the server's own tool: REDIS_IMAGE=<the redis image reference> $me ..." >&2
            else
                printf '%s\n' "$out" >&2
            fi
            return 1
        }
    fi
}

host=127.0.0.1
port=6381
while getopts "h:p:" opt; do
    case "$opt" in
        h) host=$OPTARG ;;
        p) port=$OPTARG ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
out=$1

command -v redis-cli >/dev/null || {
    echo "redis-backup: redis-cli not found; install redis-tools" >&2
    exit 1
}
if [ -n "${REDIS_PASSWORD:-}" ]; then
    export REDISCLI_AUTH=$REDIS_PASSWORD
fi

# redis-cli exits 0 even on an error reply (NOAUTH, LOADING), so check the text.
reply=$(redis-cli -h "$host" -p "$port" ping 2>&1 || true)
if [ "$reply" != "PONG" ]; then
    echo "redis-backup: redis at $host:$port answered '$reply' to PING; check host, port and REDIS_PASSWORD" >&2
    exit 1
fi

dir=$(dirname -- "$out")
mkdir -p -- "$dir"
tmp=$(mktemp "$dir/.redis-backup.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT

if ! redis-cli -h "$host" -p "$port" --rdb "$tmp" >/dev/null 2>"$tmp.err"; then
    echo "redis-backup: redis-cli --rdb from $host:$port failed: $(cat "$tmp.err")" >&2
    rm -f -- "$tmp.err"
    exit 1
fi
rm -f -- "$tmp.err"

# Every RDB file starts with the magic "REDIS" and a 4-digit version.
if [ "$(head -c 5 -- "$tmp")" != "REDIS" ]; then
    echo "redis-backup: $host:$port sent a file that is not an RDB snapshot" >&2
    exit 1
fi
if ! check_rdb "$tmp"; then
    echo "redis-backup: the snapshot from $host:$port failed its check (above); nothing was written" >&2
    exit 1
fi

chmod 0600 -- "$tmp"
mv -f -- "$tmp" "$out"
trap - EXIT
(cd -- "$dir" && sha256sum -- "$(basename -- "$out")") >"$out.sha256"
echo "redis-backup: wrote $out ($(stat -c %s -- "$out") bytes) and $out.sha256"
