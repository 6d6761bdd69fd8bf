#!/usr/bin/env bash
# The distributed like path in one sitting (issue 7, DESIGN section 9): likes-ingest (release) on
# the real Redis, Pulsar and TiDB of `infra/dev/services`, loaded by `likes-load target` (with its
# bare warp hello baseline in the same invocation), then the dependency floor
# (`likes-ingest-floor`: the same Redis and Pulsar work with no HTTP) at the same concurrency,
# closed loop and then open loop at half of its own peak (the floor's side of the p99 target).
#
#   bench/distributed-ingest.sh [SECONDS]     (services up: infra/dev/services up)
#
# likes-ingest runs on as many tokio worker threads as the hello baseline's server runtime
# (LIKES_BENCH_SERVER_THREADS, 1 by default): on two cores shared with the load generator and
# Redis, a second worker thread only adds wake-ups, and the ratios compare like with like.
#
# Everything runs on loopback and stops by itself; the topics (deleted after) and the Redis
# namespace are new for the run, the database is the services' one (no pipeline runs: nothing
# is committed, the load checks the counts ingest serves).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
threads=${LIKES_BENCH_SERVER_THREADS:-1}
env_file=${LIKES_SERVICES_ENV:-${LIKES_RUN_DIR:-${LIKES_CACHE_DIR:-$HOME/.cache/likes}/run}/services.env}
set -a; . "$env_file"; set +a
cargo build --release -q -p likes-ingest -p likes-pipeline -p likes-bench --bins
bin=${CARGO_TARGET_DIR:-target}/release
run_id="bench-$(date +%s)"
export LIKES_PULSAR__TOPIC="$run_id" LIKES_PULSAR__DLQ_TOPIC="$run_id-dlq"
export LIKES_REDIS__NAMESPACE="$run_id"
export LIKES_AUTH__JWT_SECRET="likes-bench-secret-of-at-least-32-bytes"
"$bin/likes-pipeline" init >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
data=$(mktemp -d)
LIKES_HTTP_ADDR="127.0.0.1:$port" LIKES_DATA_DIR="$data" \
LIKES_RATE__PER_USER_PER_SEC=1000000 LIKES_RATE__PER_USER_BURST=1000000 \
LIKES_RATE__PER_IP_PER_SEC=1000000 LIKES_RATE__PER_IP_BURST=1000000 \
LIKES_RATE__MAX_IN_FLIGHT=100000 RUST_LOG=warn TOKIO_WORKER_THREADS="$threads" \
    "$bin/likes-ingest" >"$data/ingest.log" 2>&1 &
ingest=$!
cleanup() {
    kill "$ingest" 2>/dev/null || true
    wait "$ingest" 2>/dev/null || true
    rm -rf "$data"
    local admin="$LIKES_PULSAR_ADMIN_URL/admin/v2/persistent/public/default"
    curl -fs -X DELETE "$admin/$run_id/partitions?force=true" >/dev/null || true
    curl -fs -X DELETE "$admin/$run_id-dlq?force=true" >/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.2
done
echo "== likes-load target (likes-ingest on Redis + Pulsar + TiDB), hello baseline in the same run"
status=0
"$bin/likes-load" target --url "http://127.0.0.1:$port" --duration "$secs" \
    --server-threads "$threads" || status=$?
echo "== likes-ingest's local hot-key cache over the run"
curl -fs "http://127.0.0.1:$port/metrics" | grep '^likes_ingest_hot_counts_lookups_total' || true
echo "== dependency floor, same concurrency"
floor=$("$bin/likes-ingest-floor" --duration "$secs" --concurrency 64)
echo "$floor"
echo "== dependency floor at half of its peak (open loop, as likes-load's last phase)"
peak=$(sed -n 's/.*: \([0-9]*\) likes\/s.*/\1/p' <<<"$floor")
"$bin/likes-ingest-floor" --duration 5 --concurrency 64 --rate $((peak / 2))
exit "$status"   # likes-load's: non-zero when the served counts were not exact
