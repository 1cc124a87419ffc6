#!/usr/bin/env bash
# The benchmark: identity-api (release) on PostgreSQL, driven by identity-bench, next to
# pgbench running the minimal SQL for the same work with the same concurrency, at two sizes.
# Prints the Markdown table for docs/BENCHMARKS.md's results section, keeps every measurement
# in target/bench/results.jsonl (BENCH_RESULTS) and draws them to docs/benchmarks.svg.
#   scripts/bench.sh                 (BENCH_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
db_url="${admin%/*}/identity_bench"
use_bench_db "$db_url"
port="${BENCH_PORT:-18480}"
clients="${BENCH_CLIENTS:-16}"
seconds="${BENCH_SECONDS:-10}"
sizes="${BENCH_SIZES:-100000 1000000}"   # customers (two contacts each): 100k and 1M customers

build_release
results="${BENCH_RESULTS:-target/bench/results.jsonl}"   # one JSON line per measurement
mkdir -p "$(dirname "$results")"
: >"$results"
out=$(mktemp)
{
  echo "| contacts | workload | service req/s | ceiling tps | service / ceiling | p50 ms | p90 ms | p99 ms | p99.9 ms | errors |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
} >"$out"
open_rows=$(mktemp)
key_rows=$(mktemp)

# Starts the service on the bench database (sets $server) and waits until it answers.
start_server() {
  PORT="$port" IDENTITY__DATABASE__POOL_SIZE="$clients" IDENTITY__MERGE_GUARD__MAX_CONTACTS=1000000 \
    IDENTITY__MERGE_GUARD__MAX_EMAILS=1000000 IDENTITY__MERGE_GUARD__MAX_PHONES=1000000 \
    $api >>/tmp/identity-bench-server.log 2>&1 &
  server=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
}
: >/tmp/identity-bench-server.log
server=""
trap 'kill $server 2>/dev/null || true' EXIT

for customers in $sizes; do
  fresh_database identity_bench
  start_server
  $bench seed --database "$db_url" --customers "$customers" >&2
  contacts=$((customers * 2))
  for workload in known mixed new; do
    tps=$($bench ceiling --database "$db_url" --workload "$workload" --customers "$customers" \
            --concurrency "$clients" --seconds "$seconds" --results "$results")
    row=$($bench run --url "http://127.0.0.1:$port" --workload "$workload" --customers "$customers" \
            --concurrency "$clients" --seconds "$seconds" --results "$results")
    rps=$(echo "$row" | awk -F'|' '{print $4}' | tr -d ' ')
    ratio=$(python3 -c "print(f'{$rps / $tps:.0%}')")
    echo "$row" | awk -F'|' -v c="$contacts" -v t="$tps" -v r="$ratio" \
      '{printf "| %s |%s|%s| %.0f | %s |%s|%s|%s|%s|%s|\n", c, $2, $4, t, r, $5, $6, $7, $8, $9}' >>"$out"
    if [ "$workload" != new ]; then
      half=$(python3 -c "print(round($rps / 2))")
      $bench run --url "http://127.0.0.1:$port" --workload "$workload" --customers "$customers" \
        --concurrency "$clients" --seconds "$seconds" --rate "$half" --results "$results" \
        | sed "s/^/| $contacts /" >>"$open_rows"
    fi
  done
  # API keys off (no key: the service runs open on loopback) and on, alternately, on the
  # same database: the cost of checking a key on every request.
  for round in 1 2; do
    # Open again only as a new process: once a key has existed, a running service requires
    # keys for good, even after every key is gone.
    psql -X -q "$db_url" -c "DELETE FROM api_key"
    kill "$server"; wait "$server" 2>/dev/null || true
    start_server
    row=$($bench run --url "http://127.0.0.1:$port" --workload known --customers "$customers" \
            --concurrency "$clients" --seconds "$seconds")
    echo "| $contacts | keys off |$(echo "$row" | cut -d'|' -f4-)" >>"$key_rows"
    key=$($api keys create --name "bench-$round" --scope identify | tail -n 1)
    sleep 3
    row=$($bench run --url "http://127.0.0.1:$port" --workload known --customers "$customers" \
            --concurrency "$clients" --seconds "$seconds" --key "$key")
    echo "| $contacts | keys on |$(echo "$row" | cut -d'|' -f4-)" >>"$key_rows"
  done
  kill "$server"; wait "$server" 2>/dev/null || true
done

{
  echo
  echo "Open loop at half the closed-loop rate (latency from the intended send time):"
  echo
  echo "| contacts | workload | mode | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | errors |"
  echo "|---|---|---|---|---|---|---|---|---|"
  cat "$open_rows"
  echo
  echo "\`known\` with API keys off and on, alternately, on the same database:"
  echo
  echo "| contacts | keys | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | errors |"
  echo "|---|---|---|---|---|---|---|---|"
  cat "$key_rows"
} >>"$out"
cat "$out"
$bench chart --input "$results" --output docs/benchmarks.svg
