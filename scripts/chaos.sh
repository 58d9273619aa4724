#!/usr/bin/env bash
# The crash test of docs/RELIABILITY.md: builds Portside and the test driver in release mode,
# then, for each store, drives payments, order payments and refunds while the server is
# killed with SIGKILL KILLS times (default 20) and restarted, and verifies the store against
# what the clients were told. Exits non-zero when anything was lost or duplicated.
#
#   scripts/chaos.sh crash                 # PostgreSQL + RabbitMQ, then SQLite
#   KILLS=50 scripts/chaos.sh crash sqlite
#
# Needs PostgreSQL (BENCH_DATABASE_URL) and RabbitMQ (BENCH_AMQP_URL) on their default local
# ports for the server mode.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-crash}
[ "$what" = crash ] || { echo "usage: scripts/chaos.sh crash [postgres|sqlite]" >&2; exit 2; }
shift || true
stores=("$@")
[ ${#stores[@]} -eq 0 ] && stores=(postgres sqlite)

cargo build --release -q -p portside -p portside-bench
bin=${CARGO_TARGET_DIR:-target}/release
for s in "${stores[@]}"; do
  echo "== crash test on $s, ${KILLS:-20} kills"
  PORTSIDE_BIN=$bin/portside "$bin/portside-bench" crash "$s" "${KILLS:-20}"
done
