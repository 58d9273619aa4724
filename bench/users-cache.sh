#!/usr/bin/env bash
# GET /api/v1/users/{id} on PostgreSQL with the Redis cache, with the in-memory cache and with
# no cache, in one run on one machine; plus the login timing of a wrong password against an
# unknown email. Prints a Markdown report (also written to bench/results/).
#
#   bench/users-cache.sh            # DURATION=10s CONNECTIONS="16 64" by default
#
# Needs PostgreSQL (BENCH_DATABASE_URL, default the local server), Redis (BENCH_REDIS_URL),
# wrk (Debian package) and curl. Figures are for comparison within the run, not absolutes.
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/0}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16 64}
PORT=${PORT:-18080}

source bench/lib.sh
schema="bench_users_$$"
bench_setup "$schema"
start_cache() { # $1 = CACHE_URL
  start DATABASE_URL="$DB?options=-c%20search_path%3D$schema" CACHE_URL="$1"
}

B=http://127.0.0.1:$PORT/api/v1
J='Content-Type: application/json'
start_cache none
ME=$(curl -s -X POST $B/users -H "$J" -d '{"email":"bench@example.com","password":"correct horse battery","name":"Bench"}' | sed -E 's/.*"id":"([^"]+)".*/\1/')
TOKEN=$(curl -s -X POST $B/auth/login -H "$J" -d '{"email":"bench@example.com","password":"correct horse battery"}' | sed -E 's/.*"access_token":"([^"]+)".*/\1/')

# Login timing: the same answer must not take measurably longer for an existing email. The two
# kinds alternate in ABBA order so that neither always runs first.
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
login_time() { # $1 = email
  curl -s -o /dev/null -w '%{time_total}\n' -X POST $B/auth/login -H "$J" -d "{\"email\":\"$1\",\"password\":\"wrong password!!\"}"
}
: >"$data/wrong"; : >"$data/unknown"
for i in $(seq 1 40); do
  if [ $((i % 2)) -eq 0 ]; then
    login_time bench@example.com >>"$data/wrong"; login_time nobody@example.com >>"$data/unknown"
  else
    login_time nobody@example.com >>"$data/unknown"; login_time bench@example.com >>"$data/wrong"
  fi
done
wrong=$(median <"$data/wrong")
unknown=$(median <"$data/unknown")
stop

rows=""
for cache in none memory "$REDIS"; do
  start_cache "$cache"
  wrk -t2 -c16 -d2s -H "Authorization: Bearer $TOKEN" "$B/users/$ME" >/dev/null # warm-up
  for c in $CONNECTIONS; do
    out=$(wrk -t2 -c"$c" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "$B/users/$ME")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
    label=$cache; [ "$cache" = "$REDIS" ] && label="redis"
    rows+="| $label | $c | $rps | $p50 | $p99 | ${non2xx:-0} |"$'\n'
  done
  stop
done

mkdir -p bench/results
report="bench/results/users-cache-$(date -u +%Y%m%dT%H%M%SZ).md"
{
  echo "## GET /api/v1/users/{id} on PostgreSQL, $(date -u +%Y-%m-%d), $(nproc) cores, wrk -t2 -d$DURATION"
  echo
  echo "| cache | connections | requests/s | p50 | p99 | non-2xx |"
  echo "|---|---|---|---|---|---|"
  printf "%s" "$rows"
  echo
  echo "Login with a wrong password: median ${wrong}s; with an unknown email: median ${unknown}s (40 each, sequential, ABBA order)."
} | tee "$report"
