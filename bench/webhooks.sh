#!/usr/bin/env bash
# Outgoing webhooks (docs/BENCHMARKS.md, "Outgoing webhooks"). Builds Portside and the driver in
# release mode, then: the limit, what wrk alone can POST to a receiver that answers 204 at once
# (`portside-bench webhook-receiver`, 16 connections, 10 s); then `portside-bench webhooks`
# on PostgreSQL all-in-one and on SQLite: the payment API's rate with no endpoint and with one
# endpoint that wants every event, and the rate at which the deliveries reach that receiver.
# Needs PostgreSQL on its default local port (BENCH_DATABASE_URL) and wrk.
#
#   bench/webhooks.sh
#   ENGINES=postgres MAX_SECONDS=20 bench/webhooks.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p portside -p portside-bench
bin=${CARGO_TARGET_DIR:-target}/release
export PORTSIDE_BIN=${PORTSIDE_BIN:-$bin/portside}
bench=${BENCH_BIN:-$bin/portside-bench}
export WRK_DIR=$PWD/bench/wrk

echo "## The limit: wrk alone POSTing to the receiver (16 connections, 10 s)"
echo
"$bench" webhook-receiver > /tmp/portside-webhook-receiver.url &
receiver=$!
trap 'kill $receiver 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do [ -s /tmp/portside-webhook-receiver.url ] && break; sleep 0.1; done
url=$(cat /tmp/portside-webhook-receiver.url)
BODY='{"type":"payment.succeeded","timestamp":"2026-12-01T00:00:00Z","data":{}}' POST_PATH=/hook TOKEN=none \
  wrk -t2 -c16 -d10s -s "$WRK_DIR/pay.lua" "${url%/hook}" \
  | awk '/^\{"rps"/' | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print("| requests/s | p50 ms | p99 ms | errors |\n|---|---|---|---|\n| %.0f | %.2f | %.2f | %d |" % (d["rps"], d["p50_ms"], d["p99_ms"], d["non2xx"] + d["socket_errors"]))'
kill $receiver; wait $receiver 2>/dev/null || true
echo
for engine in ${ENGINES:-postgres sqlite}; do
  "$bench" webhooks "$engine"
  echo
done
