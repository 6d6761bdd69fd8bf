#!/bin/sh
# infra/deploy/nginx-start.sh — Nginx of infra/compose.yaml: renders the template
# infra/nginx/nginx.conf (the same file infra/dev/stack fills in for the loopback stack, so the two
# cannot drift) and runs nginx on it in the foreground. The compose file mounts the template and
# this script read-only and makes the script the container's entrypoint.
#
#   LIKES_NGINX_UPSTREAMS   the ingests, "host:port host:port ..." (required)
#   LIKES_NGINX_LISTEN      @LISTEN@, default 8080
#   LIKES_BODY_LIMIT_BYTES  @BODY_LIMIT@, the ingests' body limit, default 16384
#   LIKES_NGINX_WORKERS     @WORKERS@, default auto
#   LIKES_NGINX_TEMPLATE    the template, default /etc/likes/nginx.conf.template
#   LIKES_NGINX_PREFIX      @PREFIX@ (pid, temp files, the rendered nginx.conf), default /var/cache/nginx/likes
#
# `nginx-start.sh -t` renders and runs `nginx -t` only (infra/deploy/check does, on this machine).
# Nginx resolves the upstream names once, at start: the compose file restarts it when an ingest is
# recreated (depends_on ... restart: true).
set -eu
template=${LIKES_NGINX_TEMPLATE:-/etc/likes/nginx.conf.template}
prefix=${LIKES_NGINX_PREFIX:-/var/cache/nginx/likes}
: "${LIKES_NGINX_UPSTREAMS:?LIKES_NGINX_UPSTREAMS must name the ingests (host:port ...)}"

servers=""
for upstream in $LIKES_NGINX_UPSTREAMS; do
    servers="${servers}server $upstream max_fails=3 fail_timeout=5s; "
done
mkdir -p "$prefix/tmp"
# The template logs errors to @PREFIX@/error.log: the container's stderr, for `docker compose logs`.
ln -sf /dev/stderr "$prefix/error.log"
sed -e "s|@PREFIX@|$prefix|g" \
    -e "s|@LISTEN@|${LIKES_NGINX_LISTEN:-8080}|g" \
    -e "s|@UPSTREAMS@|$servers|" \
    -e "s|@BODY_LIMIT@|${LIKES_BODY_LIMIT_BYTES:-16384}|g" \
    -e "s|@WORKERS@|${LIKES_NGINX_WORKERS:-auto}|" \
    "$template" >"$prefix/nginx.conf"
if grep -n '^[^#]*@[A-Z_]*@' "$prefix/nginx.conf" >&2; then
    echo "nginx-start.sh: placeholders of $template left unfilled (above)" >&2
    exit 1
fi
if [ "${1:-}" = "-t" ]; then
    exec nginx -t -p "$prefix" -c "$prefix/nginx.conf"
fi
exec nginx -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off;'
