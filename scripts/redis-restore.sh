#!/usr/bin/env bash
# Put an RDB backup (from redis-backup.sh) into a STOPPED Redis's data directory.
#
#   scripts/redis-restore.sh [-o UID:GID] BACKUP.rdb DATA_DIR
#
# Then start Redis on DATA_DIR. Steps:
#   1. verify BACKUP.rdb against BACKUP.rdb.sha256 (when present) and with
#      redis-check-rdb (when installed), or with the image's own one when
#      REDIS_IMAGE=<image reference> is set (a Redis newer than the local
#      tools, e.g. the Nix-built image's 8.x);
#   2. refuse if a Redis still holds DATA_DIR (its dump.rdb/AOF would be
#      overwritten at shutdown);
#   3. move the current dump.rdb and append-only files aside into
#      DATA_DIR/pre-restore-<UTC time>/ (never deleted: a wrong restore can be
#      undone);
#   4. write the backup twice: as DATA_DIR/dump.rdb (read when appendonly is
#      off) and as the RDB base of a fresh multi-part AOF,
#      DATA_DIR/appendonlydir/appendonly.aof.1.base.rdb plus its manifest
#      (read when appendonly is on, as in our stack). Both matter: with
#      `appendonly yes` Redis loads only the AOF, so a leftover AOF would win
#      over the backup, and with no AOF at all Redis 7 starts EMPTY and
#      ignores dump.rdb (scenarios A and B of tests/deploy/redis-backup-test.sh
#      fail without the AOF base and without moving the old AOF aside).
#      Assumes Redis >= 7.0 and the default appenddirname/appendfilename;
#   5. mode 0600 (0700 for the directory), owner UID:GID when -o is given
#      (e.g. -o 65532:65532 for our images).
set -euo pipefail

usage() {
    echo "usage: $0 [-o UID:GID] BACKUP.rdb DATA_DIR" >&2
    exit 2
}

me=redis-restore
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

owner=
while getopts "o:" opt; do
    case "$opt" in
        o) owner=$OPTARG ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] || usage
backup=$1
data=$2

[ -f "$backup" ] || {
    echo "redis-restore: backup $backup does not exist" >&2
    exit 1
}
[ -d "$data" ] || {
    echo "redis-restore: data directory $data does not exist; create it (owned by the redis user) first" >&2
    exit 1
}

if [ -f "$backup.sha256" ]; then
    want=$(cut -d' ' -f1 <"$backup.sha256")
    have=$(sha256sum -- "$backup" | cut -d' ' -f1)
    if [ "$want" != "$have" ]; then
        echo "redis-restore: $backup has sha256 $have but $backup.sha256 says $want; the backup is damaged, pick another" >&2
        exit 1
    fi
else
    echo "redis-restore: warning: no $backup.sha256, restoring unverified" >&2
fi
if [ "$(head -c 5 -- "$backup")" != "REDIS" ]; then
    echo "redis-restore: $backup is not an RDB file (no REDIS magic)" >&2
    exit 1
fi
if ! check_rdb "$backup"; then
    echo "redis-restore: $backup failed its check (above); nothing was changed" >&2
    exit 1
fi

# A running server keeps its data in memory and rewrites these files on
# shutdown, undoing the restore. Redis keeps no lock file, so look for a
# redis-server process whose working directory is DATA_DIR (readable for our
# own processes, or all of them as root).
abs=$(cd -- "$data" && pwd -P)
for pid in $(pgrep -x redis-server || true); do
    if [ "$(readlink "/proc/$pid/cwd" 2>/dev/null || true)" = "$abs" ]; then
        echo "redis-restore: redis-server (pid $pid) is running on $abs; stop it first" >&2
        exit 1
    fi
done

aside="$abs/pre-restore-$(date -u +%Y%m%dT%H%M%SZ)-$$"
moved=0
for f in dump.rdb appendonlydir appendonly.aof; do
    if [ -e "$abs/$f" ]; then
        mkdir -p -- "$aside"
        mv -- "$abs/$f" "$aside/"
        moved=1
    fi
done
[ "$moved" = 1 ] && echo "redis-restore: moved the previous data to $aside"

# Stage everything under a temporary name, then rename into place, so an
# interrupted restore never leaves a half-written dump.rdb or manifest.
stage="$abs/.restore.$$"
mkdir -m 0700 -- "$stage" "$stage/appendonlydir"
cp -- "$backup" "$stage/dump.rdb"
cp -- "$backup" "$stage/appendonlydir/appendonly.aof.1.base.rdb"
printf 'file appendonly.aof.1.base.rdb seq 1 type b\n' >"$stage/appendonlydir/appendonly.aof.manifest"
chmod 0600 -- "$stage/dump.rdb" "$stage/appendonlydir/"*
if [ -n "$owner" ]; then
    chown -R -- "$owner" "$stage"
fi
mv -- "$stage/appendonlydir" "$abs/appendonlydir"
mv -- "$stage/dump.rdb" "$abs/dump.rdb"
rmdir -- "$stage"
echo "redis-restore: restored $backup to $abs (dump.rdb and appendonlydir/); start redis on $abs now"
