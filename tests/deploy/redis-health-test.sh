#!/usr/bin/env bash
# Readiness means PONG, everywhere: the Redis healthcheck of images/redis.toml
# (the same command compose.yaml runs, checked by check_policy.py) and
# tests/e2e/lib.sh's redis_ready, against a real redis-server configured like
# the image (deploy/make-secrets.sh's redis.conf as the first argument).
#
#   tests/deploy/redis-health-test.sh
#
# Regression: `redis-cli ping` exits 0 on error replies, so the old checks
# passed on NOAUTH, WRONGPASS and LOADING (a restarted Redis replaying its
# append-only file was taken as ready: scoring's restart test then failed with
# "BusyLoading"). Here:
#   A: a wrong password: redis_ready is false (the old check exited 0);
#   B: while Redis loads a million keys from its AOF, the healthcheck and
#      redis_ready are false (the old check exited 0 at the same moment), and
#      both turn true once loading is done;
#   C: the healthcheck needs no password (the PING-only `probe` user), and
#      that user can run nothing else.
set -euo pipefail
root=$(cd -- "$(dirname -- "$0")/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh disable=SC1091
. "$root/tests/e2e/lib.sh"
work=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf -- "$work"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
"$root/deploy/make-secrets.sh" "$work/secrets" >/dev/null
port=$(free_port)
password=$(cat "$work/secrets/redis-password")
# The healthcheck of the image definition, pointed at this port.
mapfile -t hc < <(python3 - "$root/images/redis.toml" "$port" <<'PY'
import sys, tomllib
test = tomllib.load(open(sys.argv[1], "rb"))["healthcheck"]["test"]
assert test[0] == "CMD", test
args = test[1:]
args[args.index("-p") + 1] = sys.argv[2]
print("\n".join(["redis-cli" if a == "/usr/bin/redis-cli" else a for a in args]))
PY
)
healthcheck() { env -u REDISCLI_AUTH "${hc[@]}" >/dev/null 2>&1; }
old_check() { REDISCLI_AUTH=$1 redis-cli -p "$port" ping >/dev/null 2>&1; }

mkdir -p "$work/data"
start() {
    redis-server "$work/secrets/redis.conf" --port "$port" --bind 127.0.0.1 --dir "$work/data" \
        --appendonly yes --save '' --protected-mode no --enable-debug-command local \
        --logfile "$work/redis.log" &
    pid=$!
}
start
export REDISCLI_AUTH=$password
wait_for 100 redis_ready "$port" || fail "redis did not answer PONG: $(tail -3 "$work/redis.log")"

# A
REDISCLI_AUTH=wrong redis_ready "$port" && fail "A: redis_ready passed with a wrong password"
old_check wrong || fail "A: premise: the old check should exit 0 on WRONGPASS"
echo "ok: A: a wrong password is not ready (plain 'redis-cli ping' exited 0 on it)"

# C
healthcheck || fail "C: the healthcheck failed on a ready Redis"
out=$(redis-cli --no-auth-warning --user probe --pass probe -p "$port" get x 2>&1 || true)
grep -q NOPERM <<<"$out" || fail "C: the probe user could run GET: $out"
echo "ok: C: healthcheck passes without the password; the probe user may only PING ($out)"

# B: 2 million keys in the AOF, restart, poll while loading.
redis-cli -p "$port" debug populate 1000000 >/dev/null
redis-cli -p "$port" bgrewriteaof >/dev/null
wait_for 300 sh -c "redis-cli -p $port info persistence | grep -q 'aof_rewrite_in_progress:0' &&
    redis-cli -p $port info persistence | grep -q 'aof_rewrite_scheduled:0'" || fail "B: AOF rewrite did not finish"
redis-cli -p "$port" shutdown >/dev/null 2>&1 || true
wait "$pid" 2>/dev/null || true
pid=
start
seen_loading=0 bad=0
for _ in $(seq 400); do
    reply=$(redis-cli -p "$port" ping 2>/dev/null || true)
    case $reply in
    LOADING*)
        seen_loading=1
        old_check "$password" || bad="old check failed during LOADING (premise)"
        # A check that passed is wrong only if Redis still says LOADING after
        # it (loading may end between the two).
        if healthcheck && [[ $(redis-cli -p "$port" ping 2>/dev/null) == LOADING* ]]; then
            bad="the healthcheck passed during LOADING"
        fi
        if redis_ready "$port" && [[ $(redis-cli -p "$port" ping 2>/dev/null) == LOADING* ]]; then
            bad="redis_ready passed during LOADING"
        fi
        ;;
    PONG) break ;;
    esac
    sleep 0.02
done
[ "$seen_loading" = 1 ] || fail "B: never saw LOADING (the data set loaded too fast to observe)"
[ "$bad" = 0 ] || fail "B: $bad"
wait_for 300 redis_ready "$port" || fail "B: not ready after loading"
healthcheck || fail "B: the healthcheck failed after loading"
echo "ok: B: during LOADING the healthcheck and redis_ready fail (the old check exited 0); both pass after ($(redis-cli -p "$port" dbsize) keys)"
echo "redis-health-test: PASS"
