# Shortcuts; each target is one command that also works without make.
.PHONY: run test lint bench migrate compose-up compose-down

run:            ## Portside on its embedded defaults (SQLite, in-process bus, Tantivy)
	cargo run --release

test:           ## the test suite (the README's test command)
	cargo test --workspace

lint:           ## formatting and clippy, as CI runs them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench:          ## the benchmarks of docs/BENCHMARKS.md
	bash bench/perf.sh
	cargo run -p portside-bench --release -- relay
	cargo run -p portside-bench --release -- search
	bash bench/users-cache.sh

migrate:        ## migrate the store DATABASE_URL names
	cargo run --release -- migrate

compose-up:     ## the split deployment of deploy/ (needs Docker and JWT_SECRET)
	docker compose -f deploy/docker-compose.yml up --build -d

compose-down:
	docker compose -f deploy/docker-compose.yml down
