# infra/dev/prometheus.sh — Prometheus and Alertmanager of the dev services, sourced by
# infra/dev/services (as stack.sh is): `prometheus` and `alertmanager` are services of its own to
# `services` (up, down, stop/start, status, logs), and `services check-prometheus` runs the checks
# CI runs on infra/prometheus and infra/alertmanager (check_prometheus below).
#
# Debian's prometheus and prometheus-alertmanager, as plain loopback processes like the rest. Each
# runs on a copy of the repo's config in its service dir (infra/prometheus/prometheus.yml and
# alerts.yml unchanged; infra/alertmanager/alertmanager.yml with the webhook lines on when
# LIKES_ALERT_WEBHOOK_URL is set). Prometheus finds its targets in targets/<job>.json beside its
# config (file_sd), which write_prometheus_targets rewrites on every change of the services.

PROM_CONF_DIR=$(cd "$HERE/../prometheus" && pwd)
AM_CONF=$(cd "$HERE/../alertmanager" && pwd)/alertmanager.yml

# Debian names the binary prometheus-alertmanager; upstream's is alertmanager.
alertmanager_bin() { command -v prometheus-alertmanager || command -v alertmanager; }

prepare_alertmanager() {
    alertmanager_bin >/dev/null || apt_install prometheus-alertmanager
    alertmanager_bin >/dev/null || die "alertmanager still missing after installing prometheus-alertmanager"
    need_cmd amtool prometheus-alertmanager
    need_cmd curl curl
}

# The repo's alertmanager.yml; with LIKES_ALERT_WEBHOOK_URL set, its `# likes-webhook:` lines
# become the page and ticket receivers' webhook_configs, pointing there.
render_alertmanager_conf() {
    local url=${LIKES_ALERT_WEBHOOK_URL:-} re='^https?://[^[:space:]"|&\\]+$'
    if [ -z "$url" ]; then cat "$AM_CONF"; return 0; fi
    [[ $url =~ $re ]] || die "LIKES_ALERT_WEBHOOK_URL=$url is not an http(s) URL"
    sed "s|^\( *\)# likes-webhook: \(.*\)LIKES_ALERT_WEBHOOK_URL|\1\2$url|" "$AM_CONF"
}

start_alertmanager() {
    local dir port; dir=$(svc_dir alertmanager); port=$(port_for LIKES_ALERTMANAGER_PORT)
    echo "port=$port" >"$dir/ports"
    echo "LIKES_ALERTMANAGER_URL=http://127.0.0.1:$port" >"$dir/env"
    render_alertmanager_conf >"$dir/alertmanager.yml"
    amtool check-config "$dir/alertmanager.yml" >>"$(svc_log alertmanager)" 2>&1 ||
        fail_with_log alertmanager "amtool check-config refused $dir/alertmanager.yml"
    # An empty --cluster.listen-address: one instance, no gossip port.
    start_detached alertmanager "$(alertmanager_bin)" --config.file="$dir/alertmanager.yml" \
        --storage.path="$dir/data" --data.retention=24h \
        --web.listen-address="127.0.0.1:$port" --web.external-url="http://127.0.0.1:$port/" \
        --cluster.listen-address=
}

probe_alertmanager() { curl -fs --max-time 2 "http://127.0.0.1:$(svc_get alertmanager port)/-/ready" >/dev/null; }

prepare_prometheus() { need_cmd prometheus prometheus; need_cmd promtool prometheus; need_cmd curl curl; }

start_prometheus() {
    local dir port; dir=$(svc_dir prometheus); port=$(port_for LIKES_PROMETHEUS_PORT)
    echo "port=$port" >"$dir/ports"
    echo "LIKES_PROMETHEUS_URL=http://127.0.0.1:$port" >"$dir/env"
    cp "$PROM_CONF_DIR/prometheus.yml" "$PROM_CONF_DIR/alerts.yml" "$dir/"
    write_prometheus_targets
    promtool check config "$dir/prometheus.yml" >>"$(svc_log prometheus)" 2>&1 ||
        fail_with_log prometheus "promtool check config refused $dir/prometheus.yml"
    # A day of 5 s scrapes of a dev stack is a few tens of MB.
    (cd "$dir" && start_detached prometheus prometheus --config.file="$dir/prometheus.yml" \
        --storage.tsdb.path="$dir/data" --storage.tsdb.retention.time=1d \
        --web.listen-address="127.0.0.1:$port" --web.external-url="http://127.0.0.1:$port/" \
        --web.enable-lifecycle)
}

probe_prometheus() { curl -fs --max-time 2 "http://127.0.0.1:$(svc_get prometheus port)/-/ready" >/dev/null; }

# prometheus_sd NAME=PORT...: a file_sd target list, one group per target, `instance` set to the
# service's name (alerts and runbooks say ingest1, not a random port).
prometheus_sd() {
    local pair sep=""
    printf '['
    for pair in "$@"; do
        printf '%s\n  {"targets": ["127.0.0.1:%s"], "labels": {"instance": "%s"}}' "$sep" "${pair#*=}" "${pair%%=*}"
        sep=,
    done
    printf '\n]\n'
}

# write_sd_file FILE NAME:PORT_KEY...: the targets of the services started by `up` and not taken
# `down` (their ports file is there), running or not: one that died or is in an outage stays a
# target, down, which is what TargetDown and the dependency alerts watch.
write_sd_file() {
    local file=$1 item name port pairs=(); shift
    for item in "$@"; do
        name=${item%%:*}
        port=$(svc_get "$name" "${item#*:}")
        [ -n "$port" ] && pairs+=("$name=$port")
    done
    prometheus_sd "${pairs[@]}" >"$file.tmp.$$"
    mv "$file.tmp.$$" "$file"
}

# Rewrites targets/<job>.json while Prometheus has a service dir (running, or in an outage).
write_prometheus_targets() {
    local dir; dir=$(svc_dir prometheus)
    [ -f "$dir/ports" ] || return 0
    mkdir -p "$dir/targets"
    write_sd_file "$dir/targets/likes-ingest.json" ingest1:port ingest2:port
    write_sd_file "$dir/targets/likes-pipeline.json" worker1:port worker2:port
    write_sd_file "$dir/targets/tidb.json" tidb:status_port
    write_sd_file "$dir/targets/pulsar.json" pulsar:web_port
    write_sd_file "$dir/targets/prometheus.json" prometheus:port
    write_sd_file "$dir/targets/alertmanager.json" alertmanager:port
}

# check-prometheus (CI runs it): the configs load as the harness runs them, the rules parse and
# pass their unit tests, each severity reaches its receiver, and a throwaway Alertmanager on the
# config holds back what the inhibit rules say.
check_prometheus() {
    need_cmd promtool prometheus
    need_cmd amtool prometheus-alertmanager
    need_cmd curl curl
    alertmanager_bin >/dev/null || apt_install prometheus-alertmanager
    local tmp; tmp=$(mktemp -d)
    # As committed (syntax only: the targets are written at run time), then as `up` runs it:
    # copied beside its rules, with a target list per job (promtool checks those too).
    promtool check config --syntax-only "$PROM_CONF_DIR/prometheus.yml" || { rm -rf "$tmp"; die "promtool check config refused infra/prometheus/prometheus.yml"; }
    cp "$PROM_CONF_DIR/prometheus.yml" "$PROM_CONF_DIR/alerts.yml" "$tmp/"
    mkdir "$tmp/targets"
    prometheus_sd ingest1=1 ingest2=2 >"$tmp/targets/likes-ingest.json"
    prometheus_sd worker1=3 worker2=4 >"$tmp/targets/likes-pipeline.json"
    prometheus_sd tidb=5 >"$tmp/targets/tidb.json"
    prometheus_sd pulsar=6 >"$tmp/targets/pulsar.json"
    prometheus_sd prometheus=7 >"$tmp/targets/prometheus.json"
    prometheus_sd >"$tmp/targets/alertmanager.json"   # none running: an empty list
    local ok=1
    promtool check config "$tmp/prometheus.yml" || ok=0
    promtool check rules "$PROM_CONF_DIR/alerts.yml" || ok=0
    promtool test rules "$PROM_CONF_DIR/alerts_test.yml" || ok=0
    amtool check-config "$AM_CONF" || ok=0
    LIKES_ALERT_WEBHOOK_URL=http://127.0.0.1:1/likes-alerts render_alertmanager_conf >"$tmp/alertmanager-webhook.yml"
    grep -q 'url: "http://127.0.0.1:1/likes-alerts"' "$tmp/alertmanager-webhook.yml" && amtool check-config "$tmp/alertmanager-webhook.yml" ||
        { log "alertmanager.yml rendered with LIKES_ALERT_WEBHOOK_URL: no webhook, or refused"; ok=0; }
    local sev want
    for sev in page ticket none; do
        want=$sev; [ "$sev" = none ] && want=default
        amtool config routes test --config.file="$AM_CONF" --verify.receivers="$want" \
            alertname=Check job=likes-ingest severity="$sev" 2>/dev/null >/dev/null ||
            { log "severity=$sev is not routed to receiver $want"; ok=0; }
    done
    check_inhibitions "$tmp" || ok=0
    rm -rf "$tmp"
    [ "$ok" = 1 ] || die "infra/prometheus or infra/alertmanager check failed (see above)"
    log "prometheus.yml, alerts.yml (unit tests), alertmanager.yml (routes, inhibitions): ok"
}

# check_inhibitions DIR: posts firing alerts to an Alertmanager of its own (loopback, free port,
# data in DIR) and checks which of them its inhibit rules suppress.
check_inhibitions() {
    local dir=$1 port url pid
    port=$(free_port); url="http://127.0.0.1:$port"
    mkdir -p "$dir/am-data"
    setsid "$(alertmanager_bin)" --config.file="$AM_CONF" --storage.path="$dir/am-data" \
        --web.listen-address="127.0.0.1:$port" --cluster.listen-address= >"$dir/am.log" 2>&1 </dev/null 8>&- 9>&- &
    pid=$!
    local rc=0; check_inhibitions_against "$url" "$dir" || rc=1
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return $rc
}

check_inhibitions_against() {
    local url=$1 dir=$2 i
    for i in $(seq 60); do curl -fs --max-time 1 "$url/-/ready" >/dev/null && break; sleep 0.25; done
    # alertname, its other labels, and whether it must stay active or be suppressed.
    local cases=(
        'TargetDown job=likes-ingest,instance=ingest1 active'
        'RedisDown job=likes-ingest,instance=ingest1 suppressed'       # its target is down
        'RedisDown job=likes-ingest,instance=ingest2 active'
        'RedisErrors job=likes-ingest,instance=ingest2,error_type=timeout suppressed'
        'RedisErrors job=likes-ingest,instance=ingest3,error_type=timeout active'
        'TiDBDown job=tidb,instance=tidb active'                       # not held back by its TargetDown
        'TargetDown job=tidb,instance=tidb suppressed'
        'SinkStoreRetrying job=likes-pipeline,instance=worker1 suppressed'
        'IngestWriteLatencyHigh job=likes-ingest,http_route=like suppressed'
        'PulsarPublishErrors job=likes-ingest,instance=ingest2,error_type=io active'
        'IngestHigh5xxRatio job=likes-ingest active'
    )
    local c name labels want kv body="" sep=""
    for c in "${cases[@]}"; do
        read -r name labels want <<<"$c"
        body+="$sep{\"labels\":{\"alertname\":\"$name\",\"severity\":\"page\""
        for kv in ${labels//,/ }; do body+=",\"${kv%%=*}\":\"${kv#*=}\""; done
        body+="}}"; sep=,
    done
    if ! curl -fs --max-time 5 -H 'Content-Type: application/json' -d "[$body]" "$url/api/v2/alerts" >/dev/null; then
        log "could not post alerts to a test Alertmanager; its log:"; tail -n 20 "$dir/am.log" >&2
        return 1
    fi
    # The inhibitor learns of firing alerts asynchronously: poll until every state is as expected.
    local args got bad=()
    for i in $(seq 60); do
        bad=()
        for c in "${cases[@]}"; do
            read -r name labels want <<<"$c"
            args=(--data-urlencode "filter=alertname=$name")
            for kv in ${labels//,/ }; do args+=(--data-urlencode "filter=$kv"); done
            got=$(curl -fsG --max-time 2 "${args[@]}" "$url/api/v2/alerts" | grep -o '"state":"[a-z]*"' | head -n 1 | cut -d'"' -f4) || true
            [ "$got" = "$want" ] || bad+=("$name{$labels}: ${got:-not found}, expected $want")
        done
        [ ${#bad[@]} -eq 0 ] && return 0
        sleep 0.25
    done
    printf '[services] inhibition: %s\n' "${bad[@]}" >&2
    return 1
}
