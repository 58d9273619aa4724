#!/usr/bin/env bash
# Checks deploy/'s observability stack: the Prometheus configuration and alert rules
# (`promtool check`), the rules' unit tests (`promtool test rules`), the Grafana dashboard's
# JSON, and that every Portside metric the rules and the dashboard name is one the code records.
# promtool comes from Debian's prometheus package (installed when missing, where apt-get can).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
  apt-get install -y -qq prometheus >/dev/null
fi
promtool check config deploy/prometheus/prometheus.yml
promtool test rules deploy/prometheus/alerts.test.yml
python3 -m json.tool deploy/grafana/dashboards/portside.json >/dev/null
echo "dashboard JSON ok"

missing=0
for m in $(grep -ohE 'portside_[a-z_]+' deploy/prometheus/alerts.yml deploy/grafana/dashboards/portside.json |
  sed -E 's/_(bucket|sum|count)$//' | sort -u); do
  if ! grep -rq "\"$m\"" crates --include='*.rs'; then
    echo "no code records the metric $m"
    missing=1
  fi
done
[ "$missing" = 0 ] && echo "every metric named in deploy/ is recorded by the code"
exit "$missing"
