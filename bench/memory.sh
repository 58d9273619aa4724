#!/usr/bin/env bash
# Peak resident memory of the embedded (SQLite) mode under the write and read load of
# bench/perf.sh's scenario (e): payments at 16, 1, 16 and 64 connections, the event backlog
# drained, then reads at 1, 16 and 64. Extra server environment comes from SERVER_ENV, e.g.
#
#   bench/memory.sh
#   SERVER_ENV="MALLOC_ARENA_MAX=2" bench/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-18093}

source bench/lib.sh
bench_setup
mb() { awk -v k="$1" '$1 == k":" {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }
threads() { if [ "$1" -lt 2 ]; then echo 1; else echo 2; fi; }
rps() { awk '/^\{"rps"/' | python3 -c 'import json,sys; print("%.0f" % json.loads(sys.stdin.read())["rps"])'; }

# shellcheck disable=SC2086 # SERVER_ENV is a list of VAR=value words
start ${SERVER_ENV:-}
idle=$(mb VmRSS)
sign_in
writes=""
for c in 16 1 16 64; do
  writes+=" $(wrk -t"$(threads "$c")" -c"$c" -d8s -s "$WRK_DIR/pay.lua" "http://127.0.0.1:$PORT/api/v1/payments" | rps)"
done
until [ "$(sqlite3 -readonly "$data/portside.db" "SELECT count(*) FROM outbox WHERE published_at IS NULL")" = 0 ]; do sleep 1; done
after_writes=$(mb VmHWM)
sqlite3 -readonly "$data/portside.db" "SELECT '/api/v1/payments/' || id FROM payments LIMIT 10000" >"$data/ids"
reads=""
for c in 1 16 64; do
  reads+=" $(IDS=$data/ids wrk -t"$(threads "$c")" -c"$c" -d8s -s "$WRK_DIR/get.lua" "http://127.0.0.1:$PORT/" | rps)"
done
echo "SERVER_ENV='${SERVER_ENV:-}': idle ${idle} MB, peak after the writes and the drain ${after_writes} MB, peak at the end $(mb VmHWM) MB; payments/s${writes}; reads/s${reads}"
stop
