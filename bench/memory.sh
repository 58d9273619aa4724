#!/usr/bin/env bash
# Peak resident memory of the embedded (SQLite) mode under the write and read load of
# bench/perf.sh's scenario (e): payments at 16, 1, 16 and 64 connections, the event backlog
# drained, then reads at 1, 16 and 64. Extra server environment comes from SERVER_ENV, e.g.
#
#   bench/memory.sh
#   SERVER_ENV="MALLOC_CONF=dirty_decay_ms:1000" bench/memory.sh
#   BIN=path/to/another/build bench/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-18093}

source bench/lib.sh
bench_setup
rps() { local r rest; read -r r rest < <(drive "$@"); echo "$r"; }

# shellcheck disable=SC2086 # SERVER_ENV is a list of VAR=value words
start ${SERVER_ENV:-}
idle=$(rss_mb VmRSS)
sign_in
writes=""
for c in 16 1 16 64; do writes+=" $(rps pay.lua "$c" 8s /api/v1/payments)"; done
drain_sqlite >/dev/null
after_writes=$(rss_mb VmHWM)
sqlite3 -readonly "$data/portside.db" "SELECT '/api/v1/payments/' || id FROM payments LIMIT 10000" >"$data/ids"
reads=""
for c in 1 16 64; do reads+=" $(IDS=$data/ids rps get.lua "$c" 8s /)"; done
echo "SERVER_ENV='${SERVER_ENV:-}': idle ${idle} MB, peak after the writes and the drain ${after_writes} MB, peak at the end $(rss_mb VmHWM) MB; payments/s${writes}; reads/s${reads}"
stop
