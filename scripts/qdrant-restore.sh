#!/usr/bin/env bash
# Restore one Qdrant collection from a snapshot file (from qdrant-backup.sh),
# into a RUNNING Qdrant, over the HTTP API.
#
#   QDRANT_API_KEY_FILE=... scripts/qdrant-restore.sh [-u URL] [-c COLLECTION] BACKUP.snapshot
#
# 1. verifies BACKUP against BACKUP.sha256 (refuses a damaged file; without the
#    .sha256 file it refuses too, unless QDRANT_RESTORE_UNVERIFIED=1);
# 2. uploads it (POST .../snapshots/upload?priority=snapshot): Qdrant replaces
#    the collection's points with the snapshot's, creating the collection if it
#    was wiped;
# 3. prints the restored point count.
# Points written after the backup are lost: stop writers (scale scoring to 0)
# first if that matters. Same key handling and defaults as qdrant-backup.sh.
set -euo pipefail

usage() {
    echo "usage: QDRANT_API_KEY_FILE=... $0 [-u URL] [-c COLLECTION] BACKUP.snapshot" >&2
    exit 2
}
url=http://127.0.0.1:6333
collection=face_embeddings
while getopts "u:c:" opt; do
    case "$opt" in
        u) url=${OPTARG%/} ;;
        c) collection=$OPTARG ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
backup=$1
die() {
    echo "qdrant-restore: $*" >&2
    exit 1
}
for t in curl jq sha256sum; do command -v "$t" >/dev/null || die "$t not found; install it"; done
[ -f "$backup" ] || die "$backup: no such file"
if [ -f "$backup.sha256" ]; then
    (cd -- "$(dirname -- "$backup")" && sha256sum --quiet -c -- "$(basename -- "$backup").sha256") >/dev/null 2>&1 ||
        die "$backup does not match $backup.sha256: the file is damaged or not the one backed up; nothing was changed"
elif [ "${QDRANT_RESTORE_UNVERIFIED:-}" != 1 ]; then
    die "$backup.sha256 not found; set QDRANT_RESTORE_UNVERIFIED=1 to restore an unverified file"
fi

hdr=$(mktemp)
body=$(mktemp)
trap 'rm -f -- "$hdr" "$body"' EXIT
chmod 0600 "$hdr"
if [ -n "${QDRANT_API_KEY_FILE:-}" ]; then
    [ -r "$QDRANT_API_KEY_FILE" ] || die "QDRANT_API_KEY_FILE=$QDRANT_API_KEY_FILE is not a readable file"
    printf 'api-key: %s\n' "$(tr -d '[:space:]' <"$QDRANT_API_KEY_FILE")" >"$hdr"
elif [ -n "${QDRANT_API_KEY:-}" ]; then
    printf 'api-key: %s\n' "$QDRANT_API_KEY" >"$hdr"
fi

code=$(curl -sS -H @"$hdr" -o "$body" -w '%{http_code}' -X POST \
    -F "snapshot=@$backup" "$url/collections/$collection/snapshots/upload?priority=snapshot&wait=true") ||
    die "POST $url: no answer (is Qdrant running there?)"
case $code in
    200) ;;
    401 | 403) die "HTTP $code: the API key was refused; set QDRANT_API_KEY_FILE to the key's file" ;;
    *) die "upload to $collection: HTTP $code: $(head -c 300 -- "$body")" ;;
esac
curl -sS -H @"$hdr" -o "$body" "$url/collections/$collection" || die "reading $collection back failed"
echo "qdrant-restore: $collection restored from $backup: $(jq -r '.result.points_count' "$body") points"
