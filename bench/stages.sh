#!/usr/bin/env bash
# Where the event pipeline spends its time: one burst of payments (wrk, 16 connections, 10 s)
# against Portside on PostgreSQL with the in-process bus, then, once every event is published,
# the mean and total of each stage of a relay pass (`portside_relay_stage_seconds`) and of a
# delivery batch per consumer group (`portside_consumer_stage_seconds`), from /metrics.
#
#   bench/stages.sh                                   # the defaults
#   bench/stages.sh RELAY_BATCH=200 WORKER_BATCH=32   # any server settings
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-18091}
source bench/lib.sh
schema="bench_stages_$$"
bench_setup "$schema"
start DATABASE_URL="$DB?options=-c%20search_path%3D$schema" EVENT_BUS=inprocess "$@"
sign_in
read -r rps _ < <(drive pay.lua 16 10s /api/v1/payments)
t0=$(date +%s.%N)
until [ "$(psql -Atq "$DB" -c "SELECT count(*) FROM $schema.outbox WHERE published_at IS NULL")" = 0 ]; do sleep 0.2; done
echo "settings: ${*:-defaults}; $rps payments/s during the burst; every event published $(python3 -c "import time; print(round(time.time() - $t0, 1))") s after it"
curl -s "http://127.0.0.1:$PORT/metrics" | python3 -c '
import re, sys
sums, counts = {}, {}
for line in sys.stdin:
    m = re.match(r"portside_(relay|consumer)_stage_seconds_(sum|count)\{(.*)\} (\S+)", line)
    if m:
        (sums if m.group(2) == "sum" else counts)[m.group(3)] = float(m.group(4))
print("| stage | count | mean | total |\n|---|---|---|---|")
for k in sorted(sums):
    n = counts.get(k, 0)
    print(f"| {k} | {n:.0f} | {1000 * sums[k] / max(n, 1):.1f} ms | {sums[k]:.1f} s |")
'
