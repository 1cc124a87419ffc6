# Recipes for working on identity-api. `just --list` shows them.

# Run the service (data in ./data/identity.db unless DATABASE_URL names PostgreSQL).
run:
    cargo run --release

# Run every test (uses DATABASE_URL, or starts a throwaway PostgreSQL itself).
test:
    cargo test

# The benchmark (release build, PostgreSQL at 127.0.0.1:5432): writes the table of docs/BENCHMARKS.md.
bench:
    scripts/bench.sh
    cargo bench -p identity-domain --bench reconcile -- --quick

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
