#!/usr/bin/env bash
# Make the stack's secrets as files, for compose (`secrets:`) and Kubernetes
# (`kubectl create secret ... --from-file`), in DIR (default deploy/secrets,
# git-ignored):
#
#   deploy/make-secrets.sh [DIR]
#
#   service-token              the token every service requires (SERVICE_TOKEN_FILE)
#   redis-password             scoring's Redis password (REDIS_PASSWORD_FILE)
#   redis.conf                 Redis's own config: requirepass, and a `probe`
#                              user allowed PING only, for the healthcheck
#   qdrant-api-key             scoring's Qdrant key (QDRANT_API_KEY_FILE)
#   qdrant-config.yaml         Qdrant's config with that key (--config-path)
#   nginx-scoring-auth.conf    nginx's Authorization header towards scoring
#   tls.crt, tls.key           a SELF-SIGNED pair for localhost (local use only;
#                              put your real certificate and key there instead)
#
# Existing random secrets and an existing certificate are kept (so a rerun
# does not lock the running stack out); the derived files are rewritten from
# them. As root, files are owned by 65532:65532 (the images' user) with mode
# 0400; otherwise mode 0444, readable by the containers' user.
# Needs: openssl.
set -euo pipefail
dir=${1:-$(cd -- "$(dirname -- "$0")" && pwd)/secrets}
command -v openssl >/dev/null || {
    echo "make-secrets: openssl not found; install it (Debian: openssl)" >&2
    exit 1
}
mkdir -p -- "$dir"
chmod 0755 -- "$dir"
umask 077

random() { # FILE: 32 random bytes as hex, unless FILE exists
    if [ ! -s "$1" ]; then
        openssl rand -hex 32 >"$1.new"
        mv -f -- "$1.new" "$1"
    fi
}
secret() { tr -d '[:space:]' <"$1"; }

random "$dir/service-token"
random "$dir/redis-password"
random "$dir/qdrant-api-key"
# The probe user has no password but may run nothing except PING, so the
# healthcheck (`redis-cli -e --user probe --pass probe ping`) needs no secret
# and still sees NOAUTH-free PONG only when Redis is up and loaded.
printf 'requirepass %s\nuser probe on nopass -@all +ping\n' "$(secret "$dir/redis-password")" >"$dir/redis.conf"
printf 'service:\n  api_key: "%s"\n' "$(secret "$dir/qdrant-api-key")" >"$dir/qdrant-config.yaml"
printf 'proxy_set_header Authorization "Bearer %s";\n' "$(secret "$dir/service-token")" >"$dir/nginx-scoring-auth.conf"
if [ ! -s "$dir/tls.crt" ] || [ ! -s "$dir/tls.key" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 90 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null
    echo "make-secrets: wrote a self-signed certificate for localhost (90 days): $dir/tls.crt"
fi

files=(service-token redis-password redis.conf qdrant-api-key qdrant-config.yaml nginx-scoring-auth.conf tls.crt tls.key)
if [ "$(id -u)" = 0 ]; then
    for f in "${files[@]}"; do chown 65532:65532 "$dir/$f" && chmod 0400 "$dir/$f"; done
else
    for f in "${files[@]}"; do chmod 0444 "$dir/$f"; done
fi
echo "make-secrets: $dir holds ${files[*]}"
