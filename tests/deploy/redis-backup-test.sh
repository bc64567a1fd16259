#!/usr/bin/env bash
# End-to-end test of scripts/redis-backup.sh and scripts/redis-restore.sh
# against a real redis-server (Debian's), on a free loopback port, with a
# password and the production persistence settings (AOF on).
#
#   tests/deploy/redis-backup-test.sh
#
# A: write keys, back up, FLUSHALL, stop, delete the data dir, restore,
#    restart: every key, value and TTL is back.
# B: the realistic case: FLUSHALL is recorded in the AOF that stays in the
#    data dir; restore must move that AOF aside, or Redis would replay it and
#    come up empty.
# C: a damaged backup (sha256 mismatch) is refused.
# D: an RDB newer than the local tools read is refused, naming REDIS_IMAGE.
# Cleans up after itself (server stopped, temp dir removed) on every exit.
set -euo pipefail

root=$(cd -- "$(dirname -- "$0")/../.." && pwd)
backup_sh=$root/scripts/redis-backup.sh
restore_sh=$root/scripts/redis-restore.sh
for tool in redis-server redis-cli python3; do
    command -v "$tool" >/dev/null || {
        echo "redis-backup-test: $tool not found (apt-get install redis-server redis-tools python3)" >&2
        exit 1
    }
done

work=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf -- "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export REDIS_PASSWORD=test-$RANDOM-$RANDOM
export REDISCLI_AUTH=$REDIS_PASSWORD
data=$work/data
mkdir -p "$data"

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
cli() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }

start_redis() {
    redis-server --port "$port" --bind 127.0.0.1 --dir "$data" \
        --save "60 1" --appendonly yes --protected-mode no \
        --requirepass "$REDIS_PASSWORD" --logfile "$work/redis.log" &
    pid=$!
    # Bounded: 100 x 0.1 s. LOADING replies also mean "not yet".
    for _ in $(seq 100); do
        [ "$(cli ping 2>/dev/null || true)" = "PONG" ] && return 0
        kill -0 "$pid" 2>/dev/null || fail "redis-server exited at start: $(tail -5 "$work/redis.log")"
        sleep 0.1
    done
    fail "redis-server on port $port not ready after 10 s"
}
stop_redis() {
    # SHUTDOWN NOSAVE: the files on disk must be exactly what the test made
    # them, not a last-moment save of the (flushed) memory.
    cli shutdown nosave >/dev/null 2>&1 || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && fail "redis-server (pid $pid) did not stop"
    wait "$pid" 2>/dev/null || true
    pid=
}

# The data set: like the scoring cache (TTL'd strings) and the percentile
# histogram (a sorted set and a hash without TTL), plus bulk.
fill() {
    {
        for i in $(seq 1 500); do echo "SET score:cache:$i value-$i EX 86400"; done
        for b in $(seq 0 99); do echo "ZADD histogram:scores $((b * 3)) bucket-$b"; done
        echo "HSET histogram:meta count 12345 version 2"
        echo "SET plain:key hello"
    } | cli >/dev/null
}
check() {
    local what=$1
    [ "$(cli dbsize)" = "503" ] || fail "$what: dbsize is $(cli dbsize), expected 503"
    [ "$(cli get score:cache:417)" = "value-417" ] || fail "$what: score:cache:417 lost"
    [ "$(cli get plain:key)" = "hello" ] || fail "$what: plain:key lost"
    [ "$(cli zcard histogram:scores)" = "100" ] || fail "$what: histogram has $(cli zcard histogram:scores) buckets"
    [ "$(cli zscore histogram:scores bucket-42)" = "126" ] || fail "$what: bucket-42 score wrong"
    [ "$(cli hget histogram:meta count)" = "12345" ] || fail "$what: histogram:meta lost"
    local ttl
    ttl=$(cli ttl score:cache:1)
    [ "$ttl" -gt 86000 ] || fail "$what: TTL of score:cache:1 is $ttl, expected about 86400"
    [ "$(cli ttl plain:key)" = "-1" ] || fail "$what: plain:key gained a TTL"
    echo "ok: $what: 503 keys, values, histogram and TTLs back"
}

echo "redis-backup-test: redis-server $(redis-server --version | grep -o 'v=[0-9.]*') on 127.0.0.1:$port, data in $data"
start_redis
fill
check "before backup"

"$backup_sh" -h 127.0.0.1 -p "$port" "$work/backups/redis.rdb"
[ -s "$work/backups/redis.rdb" ] || fail "backup file empty"
[ -f "$work/backups/redis.rdb.sha256" ] || fail "no sha256 written"
echo "ok: backup written ($(stat -c %s "$work/backups/redis.rdb") bytes)"

# Scenario A: wipe everything, data dir included.
cli flushall >/dev/null
[ "$(cli dbsize)" = "0" ] || fail "FLUSHALL left keys"
stop_redis
rm -rf -- "$data"
mkdir -p "$data"
"$restore_sh" "$work/backups/redis.rdb" "$data"
start_redis
check "A (data dir deleted, restored)"

# Scenario B: FLUSHALL lands in the AOF, which stays in the data dir.
cli flushall >/dev/null
cli save >/dev/null # dump.rdb is now empty too: both files say "nothing"
stop_redis
start_redis
[ "$(cli dbsize)" = "0" ] || fail "B: restart after FLUSHALL still has keys; the test premise is wrong"
# The restore script must refuse while the server runs.
if "$restore_sh" "$work/backups/redis.rdb" "$data" 2>"$work/refuse.err"; then
    fail "B: restore ran while redis-server was using $data"
fi
grep -q "is running" "$work/refuse.err" || fail "B: unexpected refusal: $(cat "$work/refuse.err")"
echo "ok: B: restore refused while the server runs"
stop_redis
"$restore_sh" "$work/backups/redis.rdb" "$data"
ls -d "$data"/pre-restore-*/appendonlydir >/dev/null || fail "B: previous AOF not moved aside"
start_redis
check "B (AOF with FLUSHALL left in place, restored)"
stop_redis

# Scenario C: a damaged backup is refused and the data dir left untouched.
cp "$work/backups/redis.rdb" "$work/damaged.rdb"
cp "$work/backups/redis.rdb.sha256" "$work/damaged.rdb.sha256"
sed -i "s/redis.rdb/damaged.rdb/" "$work/damaged.rdb.sha256"
printf 'X' | dd of="$work/damaged.rdb" bs=1 seek=100 conv=notrunc status=none
before=$(find "$data" -printf "%P %s\n" | sort | sha256sum)
if "$restore_sh" "$work/damaged.rdb" "$data" 2>"$work/damaged.err"; then
    fail "C: a damaged backup was restored"
fi
grep -q "sha256" "$work/damaged.err" || fail "C: unexpected error: $(cat "$work/damaged.err")"
[ "$(find "$data" -printf "%P %s\n" | sort | sha256sum)" = "$before" ] || fail "C: refusal changed the data dir"
echo "ok: C: damaged backup refused, data dir untouched"

# Scenario D: an RDB in a format newer than the local redis-check-rdb reads
# (Redis 8.x, the Nix-built image, writes format 12; Debian 12's 7.0 reads up
# to 10): refused with the way out (the image's own tool), nothing changed.
printf 'REDIS0012\xfa\x09redis-ver\x058.2.1\xff' >"$work/v12.rdb"
(cd "$work" && sha256sum v12.rdb >v12.rdb.sha256)
if "$restore_sh" "$work/v12.rdb" "$data" 2>"$work/v12.err"; then fail "D: a format-12 RDB passed the local check"; fi
grep -q "REDIS_IMAGE=" "$work/v12.err" || fail "D: no hint to check with the image's own tool: $(cat "$work/v12.err")"
[ "$(find "$data" -printf "%P %s\n" | sort | sha256sum)" = "$before" ] || fail "D: refusal changed the data dir"
echo "ok: D: format 12 refused locally: $(head -1 "$work/v12.err")"

echo "redis-backup-test: PASS"
