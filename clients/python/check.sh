#!/usr/bin/env bash
# Generates a Python client from a running Portside's /openapi.json with openapi-python-client
# (PyPI) and runs the README's walk-through through it (walk_through.py).
#
#   clients/python/check.sh BASE_URL ADMIN_EMAIL ADMIN_PASSWORD
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python3 -c 'import openapi_python_client' 2>/dev/null ||
  python3 -m pip install -q --disable-pip-version-check 'openapi-python-client==0.29.*'
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
curl -fsS "$1/openapi.json" -o "$out/openapi.json"
(cd "$out" && openapi-python-client generate --path openapi.json --meta none --output-path portside_client >/dev/null)
PYTHONPATH="$out" python3 "$here/walk_through.py" "$@"
