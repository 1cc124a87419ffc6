# Recipes for working on identity-api. `just --list` shows them.

# Run the service (data in ./data/identity.db unless DATABASE_URL names PostgreSQL).
run:
    cargo run --release

# Run every test (uses TEST_DATABASE_URL, or starts a throwaway PostgreSQL itself).
test:
    cargo test

# The benchmark (release build, PostgreSQL at 127.0.0.1:5432): prints the tables of docs/BENCHMARKS.md, draws docs/benchmarks.svg.
bench:
    scripts/bench.sh
    scripts/bench-sqlite.sh
    cargo bench -p identity-domain --bench reconcile -- --quick

# The import against COPY (docs/BENCHMARKS.md): docs/import-benchmark.jsonl and .svg.
bench-import:
    scripts/bench-import.sh

# What CI checks besides the tests.
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

fmt:
    cargo fmt --all

# PostgreSQL and the service in containers (needs Docker).
up:
    docker compose up --build -d

down:
    docker compose down

# A local PostgreSQL on 127.0.0.1:5432, under target/dev-postgres.
db:
    scripts/dev-db.sh start

# Stop the local PostgreSQL and the tests' throwaway cluster.
db-stop:
    scripts/dev-db.sh stop

# The diesel CLI (`cargo install diesel_cli --no-default-features --features postgres`) and
# a scratch database next to $DATABASE_URL's (default: the local server) are needed.
# Regenerate crates/persistence/src/schema.rs from migrations/postgres.
schema:
    #!/usr/bin/env bash
    set -euo pipefail
    admin="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
    url="${admin%/*}/identity_schema"
    psql -X -q "$admin" -c "DROP DATABASE IF EXISTS identity_schema WITH (FORCE)" -c "CREATE DATABASE identity_schema"
    DATABASE_URL="$url" diesel migration run
    DATABASE_URL="$url" diesel print-schema > crates/persistence/src/schema.rs
    psql -X -q "$admin" -c "DROP DATABASE identity_schema WITH (FORCE)"
