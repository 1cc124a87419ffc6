# What the benchmark scripts share, sourced by each (not run): it moves to the repository's
# root and says how to build the release binaries, where the PostgreSQL server is
# (BENCH_ADMIN_URL), and how to run the service with the settings every benchmark uses.
#   source "$(dirname "$0")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
admin="${BENCH_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
api=target/release/identity-api
bench=target/release/examples/identity-bench

# Two builds: a target filter such as `--example` applies to every `-p`, so one command with
# both packages would build the load generator and skip the service.
build_release() {
  cargo build --release -q -p identity-api
  cargo build --release -q -p identity-bench --example identity-bench
}

# An empty database named $1 on the admin server, dropped first if it exists.
fresh_database() {
  drop_database "$1"
  psql -X -q "$admin" -c "CREATE DATABASE $1"
}
drop_database() { psql -X -q "$admin" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)"; }

# Points the service, and its subcommands, at the database $1, with no configuration files
# and only warnings logged: exported, so that `$api &` is the service's own process (a
# backgrounded shell function would be a subshell, and killing it would leave the service).
use_bench_db() {
  export DATABASE_URL="$1" IDENTITY_CONFIG_DIR=/nonexistent IDENTITY__LOG__LEVEL=warn
}
