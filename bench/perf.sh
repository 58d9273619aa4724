#!/usr/bin/env bash
# The performance run: builds Portside in release mode, starts it itself (PostgreSQL, then the
# embedded SQLite mode), warms up, drives each scenario with wrk at several concurrencies, and
# runs pgbench with the same SQL on the same PostgreSQL in the same run for the limit beside it.
# Prints a Markdown report (also written to bench/results/).
#
#   bench/perf.sh                 # DURATION=10s CONNECTIONS="1 16 64" by default
#
# Needs PostgreSQL (BENCH_DATABASE_URL, default the local server; pgbench and psql), wrk,
# sqlite3 and curl. Figures compare within one run; the machine is shared and noisy.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-1 16 64}
PORT=${PORT:-18090}

source bench/lib.sh
app_schema="bench_app_$$"
pg_schema="bench_pg_$$"
bench_setup "$app_schema" "$pg_schema"

rows=""
add() { rows+="$1"$'\n'; }
ratio() { # $1 = Portside, $2 = pgbench
  if [ -n "$2" ] && [ "$2" -gt 0 ]; then echo "$(( 100 * $1 / $2 )) %"; else echo "n/a"; fi
}

# ---- PostgreSQL -----------------------------------------------------------------------------
DATABASE_URL="$DB?options=-c%20search_path%3D$pg_schema" "$BIN" migrate >/dev/null 2>>"$data/server.log"
start DATABASE_URL="$DB?options=-c%20search_path%3D$app_schema"
idle=$(rss_mb VmRSS)
sign_in
drive pay.lua 16 3s /api/v1/payments >/dev/null # warm-up
for c in $CONNECTIONS; do
  read -r rps p50 p99 p999 bad < <(drive pay.lua "$c" "$DURATION" /api/v1/payments)
  limit=$(pgb payment.sql "$c")
  add "| (a) POST /payments | PostgreSQL | $c | $rps | $p50 | $p99 | $p999 | $bad | $limit | $(ratio "$rps" "$limit") |"
done
# The same payments submitted with `Prefer: respond-async` (accepted at once, charged by the
# `charges` group): what the client waits for, beside (a)'s charge in the request.
for c in $CONNECTIONS; do
  read -r rps p50 p99 p999 bad < <(PREFER=respond-async drive pay.lua "$c" "$DURATION" /api/v1/payments)
  add "| (a) POST /payments, Prefer: respond-async | PostgreSQL | $c | $rps | $p50 | $p99 | $p999 | $bad | | |"
done
drain_pg() { # the reads below measure reads, not reads beside the event backlog of (a)
  local t0=$SECONDS
  until [ "$(psql -Atq "$DB" -c "SELECT count(*) FROM $app_schema.outbox WHERE published_at IS NULL")" = 0 ]; do sleep 1; done
  echo $((SECONDS - t0))
}
pg_events=$(psql -Atq "$DB" -c "SELECT count(*) FROM $app_schema.outbox WHERE published_at IS NULL")
pg_drain=$(drain_pg)
psql -Atq "$DB" -c "SELECT '/api/v1/payments/' || id FROM $app_schema.payments LIMIT 10000" >"$data/ids"
seed_payments "$pg_schema" c
stored=$(wc -l <"$data/ids")
drive get.lua 16 3s /api/v1/payments >/dev/null
for c in $CONNECTIONS; do
  read -r rps p50 p99 p999 bad < <(IDS=$data/ids drive get.lua "$c" "$DURATION" /)
  limit=$(pgb payment_by_id.sql "$c")
  add "| (b) GET /payments/{id} over $stored | PostgreSQL | $c | $rps | $p50 | $p99 | $p999 | $bad | $limit | $(ratio "$rps" "$limit") |"
done
shelve DATABASE_URL="$DB?options=-c%20search_path%3D$app_schema"
seed_catalog "$pg_schema"
for c in $CONNECTIONS; do
  read -r rps p50 p99 p999 bad < <(drive order.lua "$c" "$DURATION" /api/v1/orders)
  limit=$(pgb order.sql "$c")
  add "| (c) POST /orders (catalog prices, a stock reservation) | PostgreSQL | $c | $rps | $p50 | $p99 | $p999 | $bad | $limit | $(ratio "$rps" "$limit") |"
done
for c in $CONNECTIONS; do
  read -r rps p50 p99 p999 bad < <(drive order_spread.lua "$c" "$DURATION" /api/v1/orders)
  limit=$(pgb order_spread.sql "$c")
  add "| (c2) POST /orders, one of 100 products | PostgreSQL | $c | $rps | $p50 | $p99 | $p999 | $bad | $limit | $(ratio "$rps" "$limit") |"
done
fund_wallet
# The wallet payment's SQL is payment.sql's with the payer's wallet (one balance row, slot 0)
# instead of the provider's clearing account (16 slots) and the wallet as method and provider.
wallet="replace('customer/01a20000-0000-7000-8000-000000000001/wallet', '/', ':')"
sed -e "s#replace('provider/mock/clearing', '/', ':'), 'USD', ((*:r::bigint[^,]*16)::int#$wallet, 'USD', 0#" \
  -e "s#replace('provider/mock/clearing', '/', ':')#$wallet#g" \
  -e "s#'credit_card', 'tok_visa', 'mock'#'wallet', 'wallet', 'wallet'#" \
  bench/pgbench/payment.sql >"$data/wallet_payment.sql"
for c in $CONNECTIONS; do
  read -r rps p50 p99 p999 bad < <(BODY='{"amount":"0.19","currency":"USD","payment_method":"wallet"}' \
    drive pay.lua "$c" "$DURATION" /api/v1/payments)
  limit=$(pgb "$data/wallet_payment.sql" "$c")
  add "| (f) POST /payments from one wallet | PostgreSQL | $c | $rps | $p50 | $p99 | $p999 | $bad | $limit | $(ratio "$rps" "$limit") |"
done
for c in $CONNECTIONS; do
  read -r rps p50 p99 p999 bad < <(POST_PATH=/api/v1/transfers \
    BODY="{\"recipient_id\":\"$RECIPIENT\",\"amount\":\"0.01\",\"currency\":\"USD\"}" \
    drive pay.lua "$c" "$DURATION" /api/v1/transfers)
  limit=$(pgb transfer.sql "$c")
  add "| (g) POST /transfers, one wallet to another | PostgreSQL | $c | $rps | $p50 | $p99 | $p999 | $bad | $limit | $(ratio "$rps" "$limit") |"
done
drain_pg >/dev/null
peak=$(rss_mb VmHWM)
stop

# (d) one user read by id, PostgreSQL alone and through Redis (fresh server each).
for cache in none redis://127.0.0.1:6379/0; do
  start DATABASE_URL="$DB?options=-c%20search_path%3D$app_schema" CACHE_URL="$cache"
  sign_in
  me=$(psql -Atq "$DB" -c "SELECT id FROM $app_schema.users WHERE email = 'bench@example.com'")
  echo "/api/v1/users/$me" >"$data/user"
  IDS=$data/user drive get.lua 16 3s / >/dev/null
  for c in $CONNECTIONS; do
    read -r rps p50 p99 p999 bad < <(IDS=$data/user drive get.lua "$c" "$DURATION" /)
    add "| (d) GET /users/{id}, cache $cache | PostgreSQL | $c | $rps | $p50 | $p99 | $p999 | $bad | | |"
  done
  stop
done

# ---- SQLite (embedded) ----------------------------------------------------------------------
start
sqlite_idle=$(rss_mb VmRSS)
sign_in
drive pay.lua 16 3s /api/v1/payments >/dev/null
for c in $CONNECTIONS; do
  read -r rps p50 p99 p999 bad < <(drive pay.lua "$c" "$DURATION" /api/v1/payments)
  add "| (e) POST /payments | SQLite | $c | $rps | $p50 | $p99 | $p999 | $bad | | |"
done
sqlite_events=$(sqlite3 -readonly "$data/portside.db" "SELECT count(*) FROM outbox WHERE published_at IS NULL")
sqlite_drain=$(drain_sqlite)
sqlite3 -readonly "$data/portside.db" "SELECT '/api/v1/payments/' || id FROM payments LIMIT 10000" >"$data/ids"
stored=$(wc -l <"$data/ids")
for c in $CONNECTIONS; do
  read -r rps p50 p99 p999 bad < <(IDS=$data/ids drive get.lua "$c" "$DURATION" /)
  add "| (e) GET /payments/{id} over $stored | SQLite | $c | $rps | $p50 | $p99 | $p999 | $bad | | |"
done
sqlite_peak=$(rss_mb VmHWM)
stop

mkdir -p bench/results
report="bench/results/perf-$(date -u +%Y%m%dT%H%M%SZ).md"
{
  echo "| scenario | store | connections | requests/s | p50 ms | p99 ms | p999 ms | errors | pgbench same SQL (tx/s) | Portside / pgbench |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  printf '%s' "$rows"
  echo
  echo "Event backlog after (a), waited out before (b): PostgreSQL ${pg_events} events in ${pg_drain} s; SQLite ${sqlite_events} events in ${sqlite_drain} s."
  echo "Resident memory of the all-in-one server: PostgreSQL mode ${idle} MB idle, ${peak} MB peak; SQLite mode ${sqlite_idle} MB idle, ${sqlite_peak} MB peak."
  echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); wrk and pgbench on the same machine; $DURATION per run."
} | tee "$report"
