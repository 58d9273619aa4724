#!/usr/bin/env bash
# Scenario (b) of bench/perf.sh alone, for back-to-back comparisons of the read path: 10 000
# payments of one user inserted by SQL (no write load before, no event backlog), then
# GET /api/v1/payments/{id} with wrk and pgbench's select-by-key on the same data, at each
# connection count. Prints one line per count: requests/s, p50/p99 ms, errors, pgbench tx/s.
#
#   bench/reads.sh                # DURATION=10s CONNECTIONS="1 16 64" by default
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-1 16 64}
PORT=${PORT:-18091}

source bench/lib.sh
app_schema="bench_reads_app_$$"
pg_schema="bench_reads_pg_$$"
bench_setup "$app_schema" "$pg_schema"

DATABASE_URL="$DB?options=-c%20search_path%3D$pg_schema" "$BIN" migrate >/dev/null 2>>"$data/server.log"
start DATABASE_URL="$DB?options=-c%20search_path%3D$app_schema"
sign_in
me=$(psql -Atq "$DB" -c "SELECT id FROM $app_schema.users")
for s in $app_schema $pg_schema; do seed_payments "$s" "$me"; done
psql -Atq "$DB" -c "SELECT '/api/v1/payments/' || id FROM $app_schema.payments" >"$data/ids"
IDS=$data/ids drive get.lua 16 3s / >/dev/null # warm-up
for c in $CONNECTIONS; do
  read -r rps p50 p99 _ bad < <(IDS=$data/ids drive get.lua "$c" "$DURATION" /)
  echo "connections $c: Portside $rps req/s, p50 $p50 ms, p99 $p99 ms, $bad errors; pgbench $(pgb payment_by_id.sql "$c") tx/s"
done
stop
