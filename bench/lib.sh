# Shared by the benchmark scripts (source it after setting PORT, from the repository root):
# builds the release binary, makes scratch PostgreSQL schemas and a data directory that are
# removed at exit, and starts and stops the server with rate limits off (the load comes from one
# client IP and one user on purpose).

DB=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
SECRET=bench-secret-that-is-long-enough-to-sign-tokens
export WRK_DIR=$PWD/bench/wrk

bench_setup() { # $@ = PostgreSQL schemas to create
  command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
  if [ -z "${BIN:-}" ]; then # BIN names a prebuilt binary, for A/B runs of two builds
    cargo build --release -q -p portside
    BIN=${CARGO_TARGET_DIR:-target}/release/portside
  fi
  SCHEMAS="$*"
  for s in $SCHEMAS; do psql -q "$DB" -c "CREATE SCHEMA $s"; done
  data=$(mktemp -d)
  pid=
  trap bench_cleanup EXIT
}

bench_cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  for s in $SCHEMAS; do
    psql -q "$DB" -c "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1 || true
  done
  rm -rf "$data"
}

start() { # $@ = extra environment (VAR=value …)
  env RATE_LIMIT_PER_IP=0 RATE_LIMIT_PER_USER=0 RATE_LIMIT_CREDENTIALS=0 JWT_SECRET="$SECRET" \
    HTTP_ADDR=127.0.0.1:$PORT GRPC_ADDR=127.0.0.1:0 DATA_DIR="$data" RUST_LOG=warn "$@" \
    "$BIN" >/dev/null 2>>"$data/server.log" &
  pid=$!
  for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && return 0
    sleep 0.1
  done
  echo "server did not start; see $data/server.log" >&2
  exit 1
}

# Registers the bench user (once per database) and exports its access TOKEN.
sign_in() {
  local b=http://127.0.0.1:$PORT/api/v1 j='Content-Type: application/json'
  curl -s -X POST $b/users -H "$j" -d '{"email":"bench@example.com","password":"correct horse battery","name":"Bench"}' >/dev/null
  TOKEN=$(curl -s -X POST $b/auth/login -H "$j" -d '{"email":"bench@example.com","password":"correct horse battery"}' | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  export TOKEN
}

# Tops the signed-in user's wallet up with 999 999.99 (the largest payment) for the wallet
# payments and registers the user the transfers go to (RECIPIENT).
fund_wallet() {
  local b=http://127.0.0.1:$PORT/api/v1 j='Content-Type: application/json'
  curl -s -X POST $b/wallets/me/top-ups -H "$j" -H "Authorization: Bearer $TOKEN" \
    -H "Idempotency-Key: bench-fund-$$-$SECONDS" \
    -d '{"amount":"999999.99","currency":"USD","payment_method_token":"tok_visa"}' >/dev/null
  RECIPIENT=$(curl -s -X POST $b/users -H "$j" \
    -d '{"email":"bench-recipient@example.com","password":"correct horse battery","name":"Recipient"}' \
    | sed -E 's/.*"id":"([^"]+)".*/\1/')
  export RECIPIENT
}

# Puts the products order.lua orders in the catalog (once per database), as an administrator
# made with `portside users create-admin`: sku-1 untracked, sku-2 with stock reserved by every
# order (10^9 units, so the run never runs out), and the 100 products order_spread.lua orders.
# $@ = the server's extra environment.
shelve() {
  local b=http://127.0.0.1:$PORT/api/v1 j='Content-Type: application/json' admin
  env JWT_SECRET="$SECRET" DATA_DIR="$data" PORTSIDE_ADMIN_PASSWORD='bench admin password' "$@" \
    "$BIN" users create-admin --email bench-admin@example.com >/dev/null 2>&1 || true
  admin=$(curl -s -X POST $b/auth/login -H "$j" -d '{"email":"bench-admin@example.com","password":"bench admin password"}' | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  curl -s -X POST $b/products -H "$j" -H "Authorization: Bearer $admin" \
    -d '{"sku":"sku-1","name":"Mug","prices":{"USD":"4.50"}}' >/dev/null
  curl -s -X POST $b/products -H "$j" -H "Authorization: Bearer $admin" \
    -d '{"sku":"sku-2","name":"Kite","prices":{"USD":"30.00"},"stock":{"on_hand":1000000000}}' >/dev/null
  for n in $(seq 1 100); do # order_spread.lua's
    curl -s -X POST $b/products -H "$j" -H "Authorization: Bearer $admin" \
      -d "{\"sku\":\"sku-s$n\",\"name\":\"Spread $n\",\"prices\":{\"USD\":\"10.00\"},\"stock\":{\"on_hand\":1000000000}}" >/dev/null
  done
}

stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

# The server's memory in MB: rss_mb VmRSS (now) or rss_mb VmHWM (peak so far).
rss_mb() { awk -v k="$1" '$1 == k":" {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }

# One wrk run: prints "rps p50 p99 p999 non2xx+socket errors".
drive() { # $1 = script, $2 = connections, $3 = duration, $4 = path
  local threads=2
  [ "$2" -lt 2 ] && threads=1
  wrk -t$threads -c"$2" -d"$3" -s "$WRK_DIR/$1" "http://127.0.0.1:$PORT$4" \
    | awk '/^\{"rps"/' | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print("%.0f %.2f %.2f %.2f %d" % (d["rps"], d["p50_ms"], d["p99_ms"], d["p999_ms"], d["non2xx"] + d["socket_errors"]))'
}

# pgbench on the schema $pg_schema for $DURATION: prints transactions (script runs) per second.
pgb() { # $1 = script (in bench/pgbench/, or a path), $2 = clients
  local jobs=2 script=$1
  [[ $script == */* ]] || script=bench/pgbench/$script
  [ "$2" -lt 2 ] && jobs=1
  PGOPTIONS="-c search_path=$pg_schema" pgbench -n -M prepared -c "$2" -j $jobs -T "${DURATION%s}" \
    -f "$script" "$DB" 2>/dev/null | awk '/^tps = / {printf "%.0f", $3}'
}

# Inserts 10 000 settled payments of one owner, the rows scenario (b) reads.
seed_payments() { # $1 = schema, $2 = owner
  psql -q "$DB" -c "INSERT INTO $1.payments SELECT md5('p' || g)::uuid, '$2', 1999, 'USD', 'credit_card', 'tok_visa', 'mock', 'succeeded', 0, 0, 'ch', NULL, NULL, NULL, NULL, '{}', 2, 2, now(), now() FROM generate_series(1, 10000) g ON CONFLICT DO NOTHING"
}

# The products order.lua orders, in a pgbench schema, as shelve() makes them: sku-1 untracked,
# sku-2 and sku-s1 … sku-s100 with 10^9 units on hand.
seed_catalog() { # $1 = schema
  psql -q "$DB" -c "INSERT INTO $1.products VALUES ('sku-1', 'Mug', '', '{\"USD\": 450}', true, 1, 1, now(), now()), ('sku-2', 'Kite', '', '{\"USD\": 3000}', true, 1, 1, now(), now())" \
    -c "INSERT INTO $1.stock_levels VALUES ('sku-2', 1000000000, 0, NULL, false, 1, 1, now())" \
    -c "INSERT INTO $1.products SELECT 'sku-s' || n, 'Spread ' || n, '', '{\"USD\": 1000}', true, 1, 1, now(), now() FROM generate_series(1, 100) n" \
    -c "INSERT INTO $1.stock_levels SELECT 'sku-s' || n, 1000000000, 0, NULL, false, 1, 1, now() FROM generate_series(1, 100) n"
}

# Waits until the embedded server's relay has published every event; prints the seconds taken.
drain_sqlite() {
  local t0=$SECONDS
  until [ "$(sqlite3 -readonly "$data/portside.db" "SELECT count(*) FROM outbox WHERE published_at IS NULL")" = 0 ]; do sleep 1; done
  echo $((SECONDS - t0))
}
