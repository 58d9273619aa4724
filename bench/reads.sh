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
for s in $app_schema $pg_schema; do
  psql -q "$DB" -c "INSERT INTO $s.payments SELECT md5('p' || g)::uuid, '$me', 1999, 'USD', 'credit_card', 'tok_visa', 'mock', 'succeeded', 0, 0, 'ch', NULL, NULL, NULL, NULL, '{}', 2, 2, now(), now() FROM generate_series(1, 10000) g"
done
psql -Atq "$DB" -c "SELECT '/api/v1/payments/' || id FROM $app_schema.payments" >"$data/ids"
IDS=$data/ids wrk -t2 -c16 -d3s -s "$WRK_DIR/get.lua" "http://127.0.0.1:$PORT/" >/dev/null # warm-up
for c in $CONNECTIONS; do
  threads=2
  [ "$c" -lt 2 ] && threads=1
  portside=$(IDS=$data/ids wrk -t$threads -c"$c" -d"$DURATION" -s "$WRK_DIR/get.lua" "http://127.0.0.1:$PORT/" \
    | awk '/^\{"rps"/' | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print("%.0f req/s, p50 %.2f ms, p99 %.2f ms, %d errors" % (d["rps"], d["p50_ms"], d["p99_ms"], d["non2xx"] + d["socket_errors"]))')
  limit=$(PGOPTIONS="-c search_path=$pg_schema" pgbench -n -M prepared -c "$c" -j $threads -T "${DURATION%s}" \
    -f bench/pgbench/payment_by_id.sql "$DB" 2>/dev/null | awk '/^tps = / {printf "%.0f", $3}')
  echo "connections $c: Portside $portside; pgbench $limit tx/s"
done
stop
