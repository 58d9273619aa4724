#!/usr/bin/env bash
# The event pipeline under load (docs/BENCHMARKS.md, "The event pipeline"). Builds Portside
# and the driver in release mode, then, for each setup, starts Portside itself and measures:
# the API's maximum payment rate with the pipeline running, then payments at LOADS percent of
# it (default 50 80 100) for LOAD_SECONDS (120) each at a fixed rate, reporting per consumer group
# the end-to-end event latency (commit to handling: p50, p99, max) and the backlog over time;
# and the four-burst run (catch-up time after each of four bursts, as history grows). The soak
# (not in the default list: SOAK_MINUTES, 30 by default) sends SOAK_RATE (300) payments/s with
# short retention windows and prints, per minute, API and end-to-end latency and table sizes,
# with a burst's catch-up time after the first, middle and last minute.
# Prints a Markdown report (also written to bench/results/).
#
#   bench/pipeline.sh                    # every setup below
#   SETUPS="postgres-inprocess" LOAD_SECONDS=60 bench/pipeline.sh
#   SETUPS=soak bench/pipeline.sh        # 30 minutes, PostgreSQL all-in-one
#
# Setups: postgres-inprocess (all-in-one), sqlite (all-in-one, the embedded default),
# amqp-split and redis-split (PostgreSQL with RabbitMQ or Redis Streams; `portside api`,
# `search`, `relay` and `worker` as processes of their own), bursts (four bursts,
# PostgreSQL all-in-one), soak and soak-sqlite (all-in-one). Needs PostgreSQL, RabbitMQ and Redis on their default local ports
# (BENCH_DATABASE_URL, BENCH_AMQP_URL, BENCH_REDIS_URL).
set -euo pipefail
cd "$(dirname "$0")/.."

SETUPS=${SETUPS:-bursts postgres-inprocess sqlite amqp-split redis-split}
export LOAD_SECONDS=${LOAD_SECONDS:-120}

cargo build --release -q -p portside -p portside-bench
bin=${CARGO_TARGET_DIR:-target}/release
export PORTSIDE_BIN=$bin/portside

mkdir -p bench/results
report="bench/results/pipeline-$(date -u +%Y%m%dT%H%M%SZ).md"
{
  echo "# Event pipeline, $(date -u +%Y-%m-%d), $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo
  for s in $SETUPS; do
    case "$s" in
      bursts) "$bin/portside-bench" bursts postgres inprocess ;;
      postgres-inprocess) "$bin/portside-bench" pipeline postgres inprocess ;;
      sqlite) "$bin/portside-bench" pipeline sqlite ;;
      amqp-split) "$bin/portside-bench" pipeline postgres amqp split ;;
      redis-split) "$bin/portside-bench" pipeline postgres redis split ;;
      soak) "$bin/portside-bench" soak postgres inprocess ;;
      soak-sqlite) "$bin/portside-bench" soak sqlite ;;
      *) echo "unknown setup $s" >&2; exit 2 ;;
    esac
    echo
  done
} | tee "$report"
echo "written to $report"
