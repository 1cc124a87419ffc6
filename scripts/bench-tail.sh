#!/usr/bin/env bash
# The latency tail of a fresh process: ten closed-loop runs of the known path (returning
# customers, 16 clients, 20 s, 100k customers), each on a process started just before (as
# a rolling deploy starts them, measuring from the moment /readyz says ready), beside the
# steady tail of one process measured after a 20 s warm-up. Prints one line per run.
#   scripts/bench-tail.sh        (BENCH_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
db_url="${admin%/*}/identity_tail"
use_bench_db "$db_url"
port="${BENCH_PORT:-18481}"
runs="${BENCH_RUNS:-10}"
seconds="${BENCH_SECONDS:-20}"
customers="${BENCH_CUSTOMERS:-100000}"
build_release
server=""
trap 'kill $server 2>/dev/null || true' EXIT
start_server() {
  PORT="$port" IDENTITY__DATABASE__POOL_SIZE=16 $api >>/tmp/identity-tail.log 2>&1 &
  server=$!
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.05; done
}
stop_server() { kill "$server"; wait "$server" 2>/dev/null || true; }
run() { $bench run --url "http://127.0.0.1:$port" --workload known --customers "$customers" \
          --concurrency 16 --seconds "$seconds"; }
fresh_database identity_tail
: >/tmp/identity-tail.log
start_server
$bench seed --database "$db_url" --customers "$customers" >&2
stop_server
echo "| run | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | errors |"
for i in $(seq 1 "$runs"); do
  start_server
  echo "| fresh $i |$(run | cut -d'|' -f4-)"
  stop_server
done
start_server
run >/dev/null
echo "| steady (after ${seconds} s) |$(run | cut -d'|' -f4-)"
stop_server
drop_database identity_tail
