#!/usr/bin/env bash
# Reads from a standby against reads from the primary, in one run: a primary and its
# synchronous streaming standby (two clusters of this script's own under target/, Debian's
# defaults, fsync on), the service (release) on the primary alone and then with
# database.read_url on the standby, each driven by identity-bench on the same seeded data.
# Prints one Markdown table for docs/BENCHMARKS.md: the service's throughput and latency,
# and the transactions each server ran (pg_stat_database.xact_commit).
#   scripts/bench-replica.sh   (BENCH_CUSTOMERS, BENCH_CLIENTS, BENCH_SECONDS, BENCH_WORKLOADS)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
customers="${BENCH_CUSTOMERS:-100000}"
clients="${BENCH_CLIENTS:-16}"
seconds="${BENCH_SECONDS:-10}"
workloads="${BENCH_WORKLOADS:-known mixed}"
port="${BENCH_PORT:-18481}"
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
root="$PWD/target/bench-replica"

build_release

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
start_cluster() { # dir port
  as_pg "$bindir/pg_ctl" start -w -D "$1/data" -l "$1/postgres.log" \
    -o "-p $2 -k $1 -c listen_addresses=127.0.0.1 -c max_connections=200" >/dev/null
}
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  for c in primary standby; do
    [ -d "$root/$c/data" ] && as_pg "$bindir/pg_ctl" stop -m immediate -D "$root/$c/data" >/dev/null 2>&1 || true
  done
  rm -rf "$root"
}
trap cleanup EXIT
cleanup
mkdir -p "$root/primary" "$root/standby"
[ "$(id -u)" = 0 ] && chown -R postgres "$root"
p_port=$(free_port); s_port=$(free_port)
primary="postgres://postgres@127.0.0.1:$p_port/identity_bench"
standby="postgres://postgres@127.0.0.1:$s_port/identity_bench"

as_pg "$bindir/initdb" -D "$root/primary/data" -U postgres --auth=trust -E UTF8 >/dev/null
start_cluster "$root/primary" "$p_port"
psql -X -q "${primary%/*}/postgres" -c "CREATE DATABASE identity_bench"
use_bench_db "$primary"
$api migrate >/dev/null
$bench seed --database "$primary" --customers "$customers" >&2
as_pg "$bindir/pg_basebackup" -h 127.0.0.1 -p "$p_port" -U postgres -X stream -R -D "$root/standby/data"
sed -i "s/primary_conninfo = '/primary_conninfo = 'application_name=standby1 /" "$root/standby/data/postgresql.auto.conf"
start_cluster "$root/standby" "$s_port"
psql -X -q "${primary%/*}/postgres" -c "ALTER SYSTEM SET synchronous_standby_names = 'standby1'" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 100); do
  [ "$(psql -X -At "${primary%/*}/postgres" -c "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")" = 1 ] && break
  sleep 0.1
done

# Transactions committed in the bench database; the server's backends are ended first so
# that they report what they counted (a busy backend reports about once a second, an idle
# one up to 10 s later).
commits() {
  psql -X -At "${1%/*}/postgres" -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = 'identity_bench' AND pid <> pg_backend_pid()" >/dev/null
  sleep 0.3
  psql -X -At "${1%/*}/postgres" -c "SELECT xact_commit FROM pg_stat_database WHERE datname = 'identity_bench'"
}

echo "| reads from | workload | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | errors | primary xacts | standby xacts | on the standby |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for setup in primary standby; do
  read_url=""
  [ "$setup" = standby ] && read_url="$standby"
  IDENTITY__DATABASE__READ_URL="$read_url" PORT="$port" IDENTITY__DATABASE__POOL_SIZE="$clients" \
    $api >>"$root/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  if [ -n "$read_url" ]; then
    for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$port/metrics" | grep -q '^identity_db_standby_up 1' && break; sleep 0.1; done
  fi
  # A short warm-up, not measured.
  $bench run --url "http://127.0.0.1:$port" --workload known --customers "$customers" \
    --concurrency "$clients" --seconds 3 >/dev/null
  for workload in $workloads; do
    p0=$(commits "$primary"); s0=$(commits "$standby")
    row=$($bench run --url "http://127.0.0.1:$port" --workload "$workload" --customers "$customers" \
            --concurrency "$clients" --seconds "$seconds")
    p1=$(commits "$primary"); s1=$(commits "$standby")
    p=$((p1 - p0)); s=$((s1 - s0))
    share=$(python3 -c "print(f'{$s / max(1, $p + $s):.0%}')")
    echo "| $setup |$(echo "$row" | cut -d'|' -f2,4-9)| $p | $s | $share |"
  done
  kill "$server"; wait "$server" 2>/dev/null || true
  server=""
done
