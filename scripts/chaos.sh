#!/usr/bin/env bash
# The chaos scenarios of docs/RELIABILITY.md. Builds Portside and the driver in release mode,
# then runs `portside-bench`, which drives payments, order payments and refunds against a real
# server and verifies the store against what the clients were told. Exits non-zero when
# anything was lost, duplicated, half-written or applied twice, or a secret reached the log.
#
#   scripts/chaos.sh crash                 # SIGKILL x KILLS (20): PostgreSQL + RabbitMQ, SQLite, then split
#   KILLS=50 scripts/chaos.sh crash sqlite
#   scripts/chaos.sh crash split           # split mode (api, relay, worker, search processes) on
#                                          # RabbitMQ, then on Redis Streams: relay, worker, both
#                                          # or the API killed in turn
#   scripts/chaos.sh outage                # RabbitMQ, Redis, then PostgreSQL stopped for SECONDS (30)
#   SECONDS_DOWN=60 scripts/chaos.sh outage rabbitmq
#   scripts/chaos.sh provider              # Stripe down mid-load on a route of Stripe then PayPal
#                                          # (fakes in the driver): refusing connections for
#                                          # SECONDS_DOWN (20), then charging and answering 500
#                                          # for 10 s, the API killed KILLS (4) + 1 times
#   scripts/chaos.sh all                   # all three
#
# Needs PostgreSQL (BENCH_DATABASE_URL), RabbitMQ (BENCH_AMQP_URL) and Redis on their default
# local ports. The outage scenarios stop and start those local services (rabbitmqctl,
# redis-cli/redis-server, pg_ctlcluster; OUTAGE_STOP / OUTAGE_START replace the commands), so
# run them on a machine of your own, not beside other users of the services.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-crash}
shift || true
case "$what" in
  crash | outage | provider | all) ;;
  *) echo "usage: scripts/chaos.sh crash [postgres|sqlite|split] | outage [rabbitmq|redis|postgres] | provider | all" >&2; exit 2 ;;
esac

cargo build --release -q -p portside -p portside-bench
bin=${CARGO_TARGET_DIR:-target}/release
export PORTSIDE_BIN=$bin/portside

crash() {
  local stores=("$@")
  [ ${#stores[@]} -eq 0 ] && stores=(postgres sqlite split)
  for s in "${stores[@]}"; do
    if [ "$s" = split ]; then
      for bus in "${BENCH_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}" "${BENCH_REDIS_URL:-redis://127.0.0.1:6379/0}"; do
        echo "== crash test in split mode on ${bus%%:*}, ${KILLS:-20} kills"
        BENCH_AMQP_URL=$bus "$bin/portside-bench" crash postgres "${KILLS:-20}" split
      done
    else
      echo "== crash test on $s, ${KILLS:-20} kills"
      "$bin/portside-bench" crash "$s" "${KILLS:-20}"
    fi
  done
}

outage() {
  local deps=("$@")
  [ ${#deps[@]} -eq 0 ] && deps=(rabbitmq redis postgres)
  for d in "${deps[@]}"; do
    echo "== $d down for ${SECONDS_DOWN:-30} s under load"
    "$bin/portside-bench" outage "$d" "${SECONDS_DOWN:-30}"
  done
}

provider() {
  echo "== Stripe down for ${SECONDS_DOWN:-20} s + 10 s under load, route stripe -> paypal, ${KILLS:-4} + 1 kills"
  "$bin/portside-bench" provider-outage "${SECONDS_DOWN:-20}" "${KILLS:-4}"
}

case "$what" in
  crash) crash "$@" ;;
  outage) outage "$@" ;;
  provider) provider ;;
  all) crash && outage && provider ;;
esac
