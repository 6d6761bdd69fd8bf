# infra/dev/stack.sh — the likes deployment on top of the services, sourced by infra/dev/services:
# Nginx in front of two `likes-ingest` instances, and two `likes-pipeline run` workers, all on
# loopback. Each member is a service of its own to `services` (ingest1 ingest2 worker1 worker2
# nginx: up, down, stop/start, pause/resume, status, logs), so a chaos test can fail any one of
# them the way it fails Redis; `stack` names them all.
#
# The members share one JWT secret, one database (`likes` on the services' TiDB) and the default
# topics of a deployment. Their settings go to `stack.env` beside the services' env file, not into
# it: every test loads the services' env, and a JWT secret or topic there would change what the
# binaries under test see.
#
#   LIKES_STACK_BIN_DIR   where likes-ingest and likes-pipeline are (default: built here, release)
#   LIKES_STACK_DATABASE  the stack's database on TiDB (default: likes)

STACK_MEMBERS=(ingest1 ingest2 worker1 worker2 nginx)
STACK_ENV_FILE=${LIKES_STACK_ENV:-$RUN_DIR/stack.env}
STACK_SECRET_FILE=$RUN_DIR/stack-jwt-secret
STACK_DATABASE=${LIKES_STACK_DATABASE:-likes}
REPO_ROOT=$(cd "$HERE/../.." && pwd)

stack_bin_dir() {
    echo "${LIKES_STACK_BIN_DIR:-${CARGO_TARGET_DIR:-$CACHE_DIR/cargo-target}/release}"
}

# The services' settings plus the stack's, as the members read them.
stack_common_env() {
    local s
    for s in redis tidb pulsar; do
        is_running "$s" || [ -f "$(svc_dir "$s")/stopped" ] ||
            die "the stack runs on redis, tidb and pulsar: start them first (services up)"
        cat "$(svc_dir "$s")/env"
    done | grep -v '^LIKES_DATABASE_URL=\|^LIKES_TIDB_URL='
    echo "LIKES_DATABASE_URL=mysql://root@127.0.0.1:$(svc_get tidb port)/$STACK_DATABASE"
    echo "LIKES_AUTH__JWT_SECRET=$(cat "$STACK_SECRET_FILE")"
}

# Once per `services` invocation: the binaries, the secret, the database, topics and schema.
STACK_PREPARED=0
prepare_stack() {
    [ "$STACK_PREPARED" = 0 ] || return 0
    STACK_PREPARED=1
    if [ -z "${LIKES_STACK_BIN_DIR:-}" ]; then
        log "building likes-ingest and likes-pipeline (release)"
        (cd "$REPO_ROOT" && CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE_DIR/cargo-target} \
            CARGO_INCREMENTAL=0 cargo build --release -q -p likes-ingest -p likes-pipeline) ||
            die "cargo build failed"
    fi
    local bin; bin=$(stack_bin_dir)
    [ -x "$bin/likes-ingest" ] && [ -x "$bin/likes-pipeline" ] || die "no likes-ingest/likes-pipeline in $bin"
    [ -s "$STACK_SECRET_FILE" ] || { mkdir -p "$RUN_DIR"; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$STACK_SECRET_FILE"; }
    mysql_client
    tidb_sql -e "CREATE DATABASE IF NOT EXISTS \`$STACK_DATABASE\`"
    (set -a; eval "$(stack_common_env)"; set +a; "$bin/likes-pipeline" init) >>"$RUN_DIR/stack-init.log" 2>&1 ||
        { tail -n 20 "$RUN_DIR/stack-init.log" >&2; die "likes-pipeline init failed (log: $RUN_DIR/stack-init.log)"; }
}

# A member's port: the one it had (an outage keeps it), else a free one.
member_port() {
    local name=$1 port; port=$(svc_get "$name" port)
    [ -n "$port" ] || port=$(free_port)
    echo "$port"
}

# start_member NAME PORT VAR=VALUE... -- CMD...: the member with the stack's env plus its own.
start_member() {
    local name=$1 port=$2; shift 2
    local vars=()
    while [ "$1" != -- ]; do vars+=("$1"); shift; done; shift
    echo "port=$port" >"$(svc_dir "$name")/ports"
    local env_args=() line
    while IFS= read -r line; do env_args+=("$line"); done < <(stack_common_env)
    start_detached "$name" env "${env_args[@]}" "${vars[@]}" RUST_LOG="${RUST_LOG:-info}" "$@"
}

start_ingest() {
    local name=$1 port; port=$(member_port "$name")
    start_member "$name" "$port" \
        LIKES_HTTP_ADDR="127.0.0.1:$port" LIKES_DATA_DIR="$(svc_dir "$name")/data" \
        LIKES_INSTANCE_ID="$name" LIKES_TRUST_FORWARDED_FOR=true LIKES_TRUSTED_PROXY_HOPS=1 \
        -- "$(stack_bin_dir)/likes-ingest"
}

start_worker() {
    local name=$1 port; port=$(member_port "$name")
    start_member "$name" "$port" \
        LIKES_ADMIN_ADDR="127.0.0.1:$port" LIKES_CONSUMER_NAME="$name" \
        -- "$(stack_bin_dir)/likes-pipeline" run
}

probe_member() { curl -fs --max-time 2 "http://127.0.0.1:$(svc_get "$1" port)/$2" >/dev/null; }

for n in 1 2; do
    eval "prepare_ingest$n() { prepare_stack; }
          start_ingest$n() { start_ingest ingest$n; }
          probe_ingest$n() { probe_member ingest$n readyz; }
          prepare_worker$n() { prepare_stack; }
          start_worker$n() { start_worker worker$n; }
          probe_worker$n() { probe_member worker$n metrics; }"
done

# ------------------------------------------------------------------ nginx ---

prepare_nginx() {
    need_cmd nginx nginx
    local m
    for m in ingest1 ingest2; do is_running "$m" || die "nginx fronts ingest1 and ingest2: start them first"; done
}

# Renders infra/nginx/nginx.conf for a loopback stack: PREFIX LISTEN UPSTREAM_PORTS...
render_nginx_conf() {
    local prefix=$1 listen=$2; shift 2
    local upstreams="" p
    for p in "$@"; do upstreams+="server 127.0.0.1:$p max_fails=3 fail_timeout=5s; "; done
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@LISTEN@|$listen|g" -e "s|@UPSTREAMS@|$upstreams|" \
        -e "s|@BODY_LIMIT@|${LIKES_BODY_LIMIT_BYTES:-16384}|g" -e "s|@WORKERS@|${LIKES_NGINX_WORKERS:-1}|" \
        "$REPO_ROOT/infra/nginx/nginx.conf"
    # Workers of a master started as root would run as nobody, who cannot read the run dir.
    [ "$(id -u)" != 0 ] || echo "user root;"
}

start_nginx() {
    local dir port; dir=$(svc_dir nginx); port=$(member_port nginx)
    mkdir -p "$dir/tmp"
    echo "port=$port" >"$dir/ports"
    render_nginx_conf "$dir" "127.0.0.1:$port" "$(svc_get ingest1 port)" "$(svc_get ingest2 port)" >"$dir/nginx.conf"
    nginx -t -q -p "$dir" -c "$dir/nginx.conf" >>"$(svc_log nginx)" 2>&1 || fail_with_log nginx "nginx -t refused the config"
    start_detached nginx nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;'
}

# `nginx -t` on the template rendered for a loopback stack (CI runs it).
check_nginx_conf() {
    need_cmd nginx nginx
    local dir; dir=$(mktemp -d)
    mkdir -p "$dir/tmp"
    render_nginx_conf "$dir" 127.0.0.1:1 2 3 >"$dir/nginx.conf"
    if nginx -t -p "$dir" -c "$dir/nginx.conf"; then rm -rf "$dir"; else rm -rf "$dir"; die "nginx -t refused infra/nginx/nginx.conf"; fi
}

probe_nginx() { curl -fs --max-time 2 "http://127.0.0.1:$(svc_get nginx port)/readyz" >/dev/null; }

# stack.env: how to reach the stack, written while its Nginx runs.
write_stack_env() {
    if ! is_running nginx; then rm -f "$STACK_ENV_FILE"; return 0; fi
    local tmp="$STACK_ENV_FILE.tmp.$$" m
    {
        echo "# Written by infra/dev/services on $(date -u +%Y-%m-%dT%H:%M:%SZ); do not edit."
        echo "# The likes stack (Nginx, two ingests, two workers). Load with: set -a; . $STACK_ENV_FILE; set +a"
        echo "LIKES_STACK_URL=http://127.0.0.1:$(svc_get nginx port)"
        echo "LIKES_AUTH__JWT_SECRET=$(cat "$STACK_SECRET_FILE")"
        echo "LIKES_STACK_DATABASE_URL=mysql://root@127.0.0.1:$(svc_get tidb port)/$STACK_DATABASE"
        for m in ingest1 ingest2; do echo "LIKES_STACK_${m^^}_URL=http://127.0.0.1:$(svc_get "$m" port)"; done
        for m in worker1 worker2; do echo "LIKES_STACK_${m^^}_ADMIN_URL=http://127.0.0.1:$(svc_get "$m" port)"; done
    } >"$tmp"
    mv "$tmp" "$STACK_ENV_FILE"
}
