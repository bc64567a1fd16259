#!/usr/bin/env bash
# Back up one Qdrant collection to a snapshot file, over the HTTP API.
#
#   QDRANT_API_KEY_FILE=... scripts/qdrant-backup.sh [-u URL] [-c COLLECTION] OUTPUT.snapshot
#
# Asks Qdrant for a fresh collection snapshot (POST .../snapshots), downloads
# it, checks it against the sha256 Qdrant reports, then deletes the server's
# copy so the snapshots volume does not fill up. Qdrant keeps serving.
# The API key comes from QDRANT_API_KEY_FILE (a file holding the key, e.g. the
# mounted secret) or QDRANT_API_KEY, never from the command line, and reaches
# curl through a private header file, so `ps` does not show it.
# Writes OUTPUT atomically (temp file, check, rename) and OUTPUT.sha256 next to
# it for qdrant-restore.sh.
#
# Defaults: URL http://127.0.0.1:6333 (the compose stack's loopback port),
# COLLECTION face_embeddings (scoring's default). Needs: curl, jq, sha256sum.
set -euo pipefail

usage() {
    echo "usage: QDRANT_API_KEY_FILE=... $0 [-u URL] [-c COLLECTION] OUTPUT.snapshot" >&2
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
out=$1
die() {
    echo "qdrant-backup: $*" >&2
    exit 1
}
for t in curl jq sha256sum; do command -v "$t" >/dev/null || die "$t not found; install it"; done

dir=$(dirname -- "$out")
mkdir -p -- "$dir"
tmp=$(mktemp "$dir/.qdrant-backup.XXXXXX")
hdr=$(mktemp)
trap 'rm -f -- "$tmp" "$hdr" "$tmp.json"' EXIT
chmod 0600 "$hdr"
if [ -n "${QDRANT_API_KEY_FILE:-}" ]; then
    [ -r "$QDRANT_API_KEY_FILE" ] || die "QDRANT_API_KEY_FILE=$QDRANT_API_KEY_FILE is not a readable file"
    printf 'api-key: %s\n' "$(tr -d '[:space:]' <"$QDRANT_API_KEY_FILE")" >"$hdr"
elif [ -n "${QDRANT_API_KEY:-}" ]; then
    printf 'api-key: %s\n' "$QDRANT_API_KEY" >"$hdr"
fi
# q METHOD PATH [curl args...]: prints the body, fails with Qdrant's message.
q() {
    local method=$1 path=$2 code
    shift 2
    code=$(curl -sS -X "$method" -H @"$hdr" -o "$tmp.json" -w '%{http_code}' "$@" "$url$path") ||
        die "$method $url$path: no answer (is Qdrant running there?)"
    case $code in
        2??) cat -- "$tmp.json" ;;
        401 | 403) die "$method $url$path: HTTP $code: the API key was refused; set QDRANT_API_KEY_FILE to the key's file" ;;
        *) die "$method $url$path: HTTP $code: $(head -c 300 -- "$tmp.json")" ;;
    esac
}

name=$(q POST "/collections/$collection/snapshots?wait=true" | jq -r '.result.name // empty')
[ -n "$name" ] || die "Qdrant created no snapshot of $collection"
want=$(q GET "/collections/$collection/snapshots" | jq -r --arg n "$name" '.result[] | select(.name == $n) | .checksum // empty')
code=$(curl -sS -H @"$hdr" -o "$tmp" -w '%{http_code}' "$url/collections/$collection/snapshots/$name") || code=000
[ "$code" = 200 ] || die "downloading snapshot $name: HTTP $code"
got=$(sha256sum -- "$tmp" | cut -d' ' -f1)
[ -z "$want" ] || [ "$want" = "$got" ] || die "snapshot $name: downloaded sha256 $got, Qdrant reports $want"
q DELETE "/collections/$collection/snapshots/$name?wait=true" >/dev/null

chmod 0600 -- "$tmp"
mv -f -- "$tmp" "$out"
(cd -- "$dir" && sha256sum -- "$(basename -- "$out")") >"$out.sha256"
echo "qdrant-backup: wrote $out ($(stat -c %s -- "$out") bytes, collection $collection, snapshot $name) and $out.sha256"
