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

stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
