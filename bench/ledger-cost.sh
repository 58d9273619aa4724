#!/usr/bin/env bash
# Where the ledger's cost on the payment path goes, on PostgreSQL, without HTTP: pgbench runs
# bench/pgbench/payment.sql (what POST /payments writes, the ledger included) and variants of it
# made here from the same file, on one freshly migrated schema, in the same run:
#   no ledger      the payment path as it was before the ledger (no ledger statement);
#   no balances    without the ledger_balances upserts;
#   no entries     without the ledger_entries inserts;
#   one statement  each phase's ledger statements as one statement (WITH ... INSERT), as
#                  Portside sends them.
#
#   bench/ledger-cost.sh                  # CLIENTS="1 16" DURATION=10s
#
# Needs PostgreSQL (BENCH_DATABASE_URL), pgbench and psql. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-1 16}
DURATION=${DURATION:-10s}
source bench/lib.sh
pg_schema="bench_ledger_$$"
bench_setup "$pg_schema"
DATABASE_URL="$DB?options=-c%20search_path%3D$pg_schema" "$BIN" migrate >/dev/null

variants=$data/variants
mkdir -p "$variants"
src=bench/pgbench/payment.sql
cp "$src" "$variants/full.sql"
# A ledger statement spans two lines (INSERT, VALUES), a balance upsert four (… ON CONFLICT,
# RETURNING): awk drops or joins them by their first line.
awk '/^INSERT INTO ledger_(transactions|entries)/ {skip = 2} /^INSERT INTO ledger_balances/ {skip = 4}
     skip > 0 {skip--; next} {print}' "$src" >"$variants/no-ledger.sql"
awk '/^INSERT INTO ledger_balances/ {skip = 4} skip > 0 {skip--; next} {print}' "$src" >"$variants/no-balances.sql"
awk '/^INSERT INTO ledger_entries/ {skip = 2} skip > 0 {skip--; next} {print}' "$src" >"$variants/no-entries.sql"
awk '/^INSERT INTO ledger_transactions/ {n = 8; text = "WITH t AS ("}
     n > 0 {
       line = $0
       if (n == 7 || n == 5) { sub(/;$/, "", line); line = line (n == 7 ? "), e AS (" : ") ") }
       text = text (n == 8 || n == 6 ? "" : "\n") line
       if (--n == 0) print text
       next
     }
     {print}' "$src" >"$variants/one-statement.sql"

full=""
echo "| payment.sql variant | clients | tx/s | of the full ledger |"
echo "|---|---|---|---|"
for c in $CLIENTS; do
  for v in full no-ledger no-balances no-entries one-statement; do
    jobs=2; [ "$c" -lt 2 ] && jobs=1
    tps=$(PGOPTIONS="-c search_path=$pg_schema" pgbench -n -M prepared -c "$c" -j $jobs \
      -T "${DURATION%s}" -f "$variants/$v.sql" "$DB" 2>"$data/pgbench.err" | awk '/^tps = / {printf "%.0f", $3}')
    [ -n "$tps" ] || { cat "$data/pgbench.err" >&2; exit 1; }
    [ "$v" = full ] && full=$tps
    echo "| $v | $c | $tps | $(( 100 * tps / full )) % |"
  done
done
