#!/bin/sh
# infra/deploy/redis-start.sh [REDIS-SERVER ARGS...] — Redis of infra/compose.yaml, with a
# password. Reads it from the compose secret that LIKES_REDIS_PASSWORD_FILE names (the same file
# likes-entrypoint puts into the likes services' LIKES_REDIS_URL), writes a config file holding
# `requirepass` into LIKES_REDIS_CONF_DIR (a tmpfs in compose; mode 0600, owned by the redis user)
# and runs the image's entrypoint on it: `docker-entrypoint.sh redis-server FILE ARGS...`, which
# drops root for the redis user as the image always does. The password is never an argument, so
# `ps` and `docker inspect` do not show it.
#
#   LIKES_REDIS_PASSWORD_FILE  default /run/secrets/redis_password
#   LIKES_REDIS_CONF_DIR       default /run/likes
#
# A missing, unreadable or empty file, or one of more than one line: exit 2, naming it.
set -eu
file=${LIKES_REDIS_PASSWORD_FILE:-/run/secrets/redis_password}
dir=${LIKES_REDIS_CONF_DIR:-/run/likes}
if [ ! -f "$file" ] || [ ! -r "$file" ]; then
    echo "redis-start.sh: LIKES_REDIS_PASSWORD_FILE=$file is not a readable file (user $(id -u))" >&2
    exit 2
fi
password=$(cat "$file")
case $password in
'') echo "redis-start.sh: $file is empty" >&2; exit 2 ;;
*'
'*) echo "redis-start.sh: $file holds more than one line" >&2; exit 2 ;;
esac
umask 077
mkdir -p "$dir"
# A double-quoted string of redis.conf: backslash and double quote escaped.
quoted=$(printf '%s' "$password" | sed 's/[\\"]/\\&/g')
printf 'requirepass "%s"\n' "$quoted" >"$dir/redis.conf"
if [ "$(id -u)" = 0 ] && id redis >/dev/null 2>&1; then
    chown -R redis:redis "$dir"
fi
unset LIKES_REDIS_PASSWORD_FILE LIKES_REDIS_CONF_DIR
exec docker-entrypoint.sh redis-server "$dir/redis.conf" "$@"
