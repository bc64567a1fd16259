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
# Needs: redis-cli (Debian: redis-tools); redis-check-rdb when installed
# (Debian: redis-server) to verify the file.
set -euo pipefail

usage() {
    echo "usage: REDIS_PASSWORD=... $0 [-h HOST] [-p PORT] OUTPUT.rdb" >&2
    exit 2
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
if command -v redis-check-rdb >/dev/null; then
    if ! redis-check-rdb "$tmp" >"$tmp.check" 2>&1; then
        echo "redis-backup: redis-check-rdb rejected the snapshot:" >&2
        cat -- "$tmp.check" >&2
        rm -f -- "$tmp.check"
        exit 1
    fi
    rm -f -- "$tmp.check"
fi

chmod 0600 -- "$tmp"
mv -f -- "$tmp" "$out"
trap - EXIT
(cd -- "$dir" && sha256sum -- "$(basename -- "$out")") >"$out.sha256"
echo "redis-backup: wrote $out ($(stat -c %s -- "$out") bytes) and $out.sha256"
