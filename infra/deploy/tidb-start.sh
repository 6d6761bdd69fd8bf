#!/usr/bin/env bash
# infra/deploy/tidb-start.sh [TIDB-SERVER ARGS...] — tidb-server of infra/compose.yaml. Renders
# the template infra/deploy/tidb-init.sql with the passwords of two compose secrets and runs
# tidb-server with it as --initialize-sql-file, which TiDB executes once, when it bootstraps a new
# cluster: the database `likes`, the user `likes` (the likes services' LIKES_DATABASE_URL) and
# root's password. The rendered file is in LIKES_TIDB_INIT_DIR (a tmpfs in compose; mode 0600).
#
#   LIKES_DATABASE_PASSWORD_FILE    @LIKES_PASSWORD@, default /run/secrets/tidb_likes_password
#   LIKES_TIDB_ROOT_PASSWORD_FILE   @ROOT_PASSWORD@, default /run/secrets/tidb_root_password
#   LIKES_TIDB_INIT_TEMPLATE        default /etc/likes/tidb-init.sql
#   LIKES_TIDB_INIT_DIR             default /run/likes
#   LIKES_TIDB_SERVER               default /tidb-server (the image's binary)
#
# bash, not sh: the substitution is bash's own, with no tool of the image's needed. A missing,
# unreadable or empty file, or one with a control character (two lines): exit 2, naming it. A
# cluster bootstrapped already ignores the file: to change a password later, ALTER USER as root,
# then update the secret file and recreate the services that use it.
set -euo pipefail
template=${LIKES_TIDB_INIT_TEMPLATE:-/etc/likes/tidb-init.sql}
dir=${LIKES_TIDB_INIT_DIR:-/run/likes}
server=${LIKES_TIDB_SERVER:-/tidb-server}
# Replacements are literal (bash 5.2 would otherwise read `&` in them as the matched text).
shopt -u patsub_replacement 2>/dev/null || true

# sql_password VAR DEFAULT: the password in the file $VAR names, as the inside of an SQL string
# literal ('...': backslash and quote escaped).
sql_password() {
    local file=${!1:-$2} password
    if [ ! -f "$file" ] || [ ! -r "$file" ]; then
        echo "tidb-start.sh: $1=$file is not a readable file (user $(id -u))" >&2
        exit 2
    fi
    password=$(<"$file")
    [ -n "$password" ] || { echo "tidb-start.sh: $1=$file is empty" >&2; exit 2; }
    if [[ $password == *[[:cntrl:]]* ]]; then
        echo "tidb-start.sh: $1=$file holds a control character (a second line?)" >&2
        exit 2
    fi
    password=${password//\\/\\\\}
    printf '%s' "${password//\'/\'\'}"
}

likes=$(sql_password LIKES_DATABASE_PASSWORD_FILE /run/secrets/tidb_likes_password)
root=$(sql_password LIKES_TIDB_ROOT_PASSWORD_FILE /run/secrets/tidb_root_password)
[ -r "$template" ] || { echo "tidb-start.sh: no template $template" >&2; exit 2; }
sql=$(<"$template")
# Through control characters, which neither the template nor a password holds: a password that
# contains the other placeholder stays as it is.
sql=${sql//@LIKES_PASSWORD@/$'\x01'}
sql=${sql//@ROOT_PASSWORD@/$'\x02'}
sql=${sql//$'\x01'/$likes}
sql=${sql//$'\x02'/$root}
umask 077
mkdir -p "$dir"
printf '%s\n' "$sql" >"$dir/tidb-init.sql"
unset LIKES_DATABASE_PASSWORD_FILE LIKES_TIDB_ROOT_PASSWORD_FILE LIKES_TIDB_INIT_TEMPLATE LIKES_TIDB_INIT_DIR LIKES_TIDB_SERVER
exec "$server" "$@" --initialize-sql-file="$dir/tidb-init.sql"
