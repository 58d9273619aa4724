#!/usr/bin/env bash
# What routing costs on the payment path: POST /api/v1/payments with wrk on PostgreSQL, each
# in a fresh schema, alternating, ROUNDS times:
#   before      BEFORE, a release binary built without routing (e.g. from 01c792c);
#   no rules    this build with no routing file (every payment: the default provider);
#   50 rules    this build with a file of 50 rules, the payment matching only the last.
#
#   BEFORE=/path/to/old/portside bench/routing-cost.sh   # ROUNDS=3 CONNECTIONS=16 DURATION=10s
#
# Needs PostgreSQL (BENCH_DATABASE_URL), wrk, psql and curl. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-16}
DURATION=${DURATION:-10s}
PORT=${PORT:-18093}
: "${BEFORE:?BEFORE names the release binary to compare with}"
source bench/lib.sh
bench_setup
after=$BIN

rules=$data/routing.toml
for n in $(seq 1 49); do
  printf '[[rules]]\nname = "eur-%d"\ncurrencies = ["EUR"]\nmin_amount = %d\nmax_amount = %d\nproviders = [{ name = "mock" }]\n\n' \
    "$n" "$((n * 1000))" "$((n * 1000 + 999))" >>"$rules"
done
printf '[[rules]]\nname = "usd"\ncurrencies = ["USD"]\nproviders = [{ name = "mock" }]\n' >>"$rules"

run() { # $1 = label, $2 = binary, $@ = extra environment
  local label=$1 schema="bench_routing_$$_$RANDOM"
  BIN=$2
  shift 2
  psql -q "$DB" -c "CREATE SCHEMA $schema"
  SCHEMAS="$SCHEMAS $schema"
  start DATABASE_URL="$DB?options=-c%20search_path%3D$schema" "$@"
  sign_in
  drive pay.lua "$CONNECTIONS" 3s /api/v1/payments >/dev/null # warm-up
  read -r rps p50 p99 p999 bad < <(drive pay.lua "$CONNECTIONS" "$DURATION" /api/v1/payments)
  echo "| $round | $label | $rps | $p50 | $p99 | $bad |"
  stop
}

echo "| round | build | payments/s | p50 ms | p99 ms | failed |"
echo "|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
  run before "$BEFORE"
  run "no rules" "$after"
  run "50 rules" "$after" ROUTING_FILE="$rules"
done
