#!/usr/bin/env bash
# End-to-end test of scripts/qdrant-backup.sh and scripts/qdrant-restore.sh
# against the real Qdrant server (the build setup.sh installs, the one the
# qdrant image packs), on free loopback ports, with the API key given the way
# the deployments give it: a mounted config file (--config-path).
#
#   tests/deploy/qdrant-backup-test.sh
#
# A: 40 points in face_embeddings (512-d cosine, as scoring creates it), back
#    up, DELETE the collection (wipe), restore: 40 points, payload and vector
#    of a sample point identical, nearest neighbour of a point is itself.
# B: a request without the key and with a wrong key gets 401; the backup
#    script with a wrong key fails naming the key, and writes no file.
# C: a damaged backup (sha256 mismatch) is refused, the collection untouched.
# D: a restart of Qdrant on the same storage keeps the restored points.
set -euo pipefail

root=$(cd -- "$(dirname -- "$0")/../.." && pwd)
backup_sh=$root/scripts/qdrant-backup.sh
restore_sh=$root/scripts/qdrant-restore.sh
qdrant=${QDRANT_BIN:-$(command -v qdrant || echo "$root/.cache/qdrant/qdrant")}
[ -x "$qdrant" ] || {
    echo "qdrant-backup-test: no qdrant server ($qdrant); run scripts/setup.sh" >&2
    exit 1
}
work=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf -- "$work"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    [ -f "$work/qdrant.log" ] && tail -5 "$work/qdrant.log" >&2
    exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
grpc=$(free_port)
url=http://127.0.0.1:$port
key=qk-$RANDOM-$RANDOM-$RANDOM
printf '%s\n' "$key" >"$work/key"
printf 'service:\n  api_key: "%s"\n' "$key" >"$work/qdrant-config.yaml"
export QDRANT_API_KEY_FILE=$work/key
c=face_embeddings

start_qdrant() {
    (cd "$work" && exec env QDRANT__SERVICE__HOST=127.0.0.1 QDRANT__SERVICE__HTTP_PORT="$port" \
        QDRANT__SERVICE__GRPC_PORT="$grpc" QDRANT__STORAGE__STORAGE_PATH="$work/storage" \
        QDRANT__STORAGE__SNAPSHOTS_PATH="$work/snapshots" QDRANT__TELEMETRY_DISABLED=true \
        "$qdrant" --config-path "$work/qdrant-config.yaml" >>"$work/qdrant.log" 2>&1) &
    pid=$!
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "$url/readyz" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "qdrant did not become ready on $url"
}
stop_qdrant() {
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
}
api() { # METHOD PATH [JSON] (the body goes through a file: 40 vectors are too long for argv)
    if [ $# -gt 2 ]; then printf '%s' "$3" >"$work/body.json"; else : >"$work/body.json"; fi
    curl -fsS -X "$1" -H "api-key: $key" -H 'Content-Type: application/json' --data-binary @"$work/body.json" "$url$2"
}
count() { api GET "/collections/$c" | jq -r .result.points_count; }

start_qdrant
api PUT "/collections/$c" '{"vectors":{"size":512,"distance":"Cosine"}}' >/dev/null
python3 - >"$work/points.json" <<'PY'
import json, random
r = random.Random(7)
print(json.dumps({"points": [{"id": i, "vector": [r.uniform(-1, 1) for _ in range(512)],
                              "payload": {"user_id": f"user-{i}", "score": i / 10}} for i in range(1, 41)]}))
PY
curl -fsS -X PUT -H "api-key: $key" -H 'Content-Type: application/json' --data-binary @"$work/points.json" \
    "$url/collections/$c/points?wait=true" >/dev/null
[ "$(count)" = 40 ] || fail "upsert: $(count) points, want 40"
api GET "/collections/$c/points/7?with_vector=true" | jq -c .result >"$work/p7.before"

# B: the key is required, and a wrong one is reported.
code=$(curl -sS -o /dev/null -w '%{http_code}' "$url/collections/$c")
[ "$code" = 401 ] || fail "no API key: HTTP $code, want 401"
code=$(curl -sS -o /dev/null -w '%{http_code}' -H 'api-key: wrong' "$url/collections/$c")
[ "$code" = 401 ] || fail "wrong API key: HTTP $code, want 401"
echo wrong >"$work/badkey"
if QDRANT_API_KEY_FILE=$work/badkey "$backup_sh" -u "$url" "$work/bad/x.snapshot" 2>"$work/bad.err"; then
    fail "backup with a wrong key succeeded"
fi
grep -q "API key was refused" "$work/bad.err" || fail "wrong-key message: $(cat "$work/bad.err")"
[ ! -e "$work/bad/x.snapshot" ] || fail "a failed backup left a file"
echo "ok: no key and a wrong key get 401; the backup script says '$(cat "$work/bad.err")'"

# A: backup, wipe, restore.
"$backup_sh" -u "$url" "$work/backup/faces.snapshot"
if [ ! -s "$work/backup/faces.snapshot" ] || [ ! -s "$work/backup/faces.snapshot.sha256" ]; then fail "no backup written"; fi
left=$(api GET "/collections/$c/snapshots" | jq '.result | length')
[ "$left" = 0 ] || fail "the backup left $left snapshot(s) on the server"
api DELETE "/collections/$c" >/dev/null
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "api-key: $key" "$url/collections/$c")
[ "$code" = 404 ] || fail "collection still there after DELETE (HTTP $code)"
"$restore_sh" -u "$url" "$work/backup/faces.snapshot"
[ "$(count)" = 40 ] || fail "after restore: $(count) points, want 40"
api GET "/collections/$c/points/7?with_vector=true" | jq -c .result >"$work/p7.after"
cmp -s "$work/p7.before" "$work/p7.after" || fail "point 7 differs after restore"
vec=$(jq -c .vector "$work/p7.after")
top=$(api POST "/collections/$c/points/search" "{\"vector\":$vec,\"limit\":1}" | jq -r '.result[0].id')
[ "$top" = 7 ] || fail "nearest neighbour of point 7 is $top"
echo "ok: backup ($(stat -c %s "$work/backup/faces.snapshot") bytes), wipe, restore: 40 points, point 7 identical and its own nearest neighbour"

# C: a damaged backup is refused before anything changes.
cp "$work/backup/faces.snapshot" "$work/backup/faces.snapshot.orig"
printf 'X' | dd of="$work/backup/faces.snapshot" bs=1 seek=100 conv=notrunc status=none
if "$restore_sh" -u "$url" "$work/backup/faces.snapshot" 2>"$work/dmg.err"; then fail "a damaged backup was restored"; fi
grep -q "does not match" "$work/dmg.err" || fail "damaged-backup message: $(cat "$work/dmg.err")"
[ "$(count)" = 40 ] || fail "refusing a damaged backup changed the collection"
echo "ok: a damaged backup is refused: $(cat "$work/dmg.err")"

# D: the restored points survive a restart.
stop_qdrant
start_qdrant
[ "$(count)" = 40 ] || fail "after a restart: $(count) points, want 40"
echo "ok: a Qdrant restart keeps the 40 restored points"
echo "qdrant-backup-test: PASS"
