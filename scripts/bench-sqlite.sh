#!/usr/bin/env bash
# The benchmark on SQLite, the embedded default: the service (release) on a fresh file seeded
# like `identity-bench seed` (customers of two contacts each), each workload closed loop,
# then open loop at half that rate. There is no pgbench-like ceiling for an in-process
# database. Prints Markdown table rows.
#   scripts/bench-sqlite.sh [customers]      (default 100000)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
build_release
customers=${1:-100000}
dir=$(mktemp -d)
port=18484
use_bench_db "sqlite://$dir/bench.db"
start() {
  PORT="$port" IDENTITY__DATABASE__POOL_SIZE=16 IDENTITY__MERGE_GUARD__MAX_CONTACTS=1000000 \
    IDENTITY__MERGE_GUARD__MAX_EMAILS=1000000 IDENTITY__MERGE_GUARD__MAX_PHONES=1000000 \
    $api >/tmp/sqlite-bench-server.log 2>&1 &
  server=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
}
start; kill $server; wait $server 2>/dev/null || true
python3 - "$dir/bench.db" "$customers" <<'PY'
import sqlite3, sys, datetime
db, n = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
base = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
ts = lambda i: (base + datetime.timedelta(microseconds=i)).strftime('%Y-%m-%dT%H:%M:%S.%fZ')
c.executemany("INSERT INTO contact (id, email, phone_number, link_precedence, created_at) VALUES (?,?,?, 'primary', ?)",
  ((i, f"c{i}@bench.io", f"1555{i:07d}", ts(i)) for i in range(1, n + 1)))
c.executemany("INSERT INTO contact (id, email, phone_number, linked_id, link_precedence, created_at) VALUES (?,?,?,?, 'secondary', ?)",
  ((n + i, f"d{i}@bench.io", f"1555{i:07d}", i, ts(n + i)) for i in range(1, n + 1)))
c.commit(); c.execute("ANALYZE"); c.close()
PY
start
for w in known mixed new; do
  row=$($bench run --url "http://127.0.0.1:$port" --workload $w --customers "$customers" --concurrency 16 --seconds 10 2>/dev/null)
  echo "| $((customers * 2)) sqlite $row"
  if [ $w != new ]; then
    rps=$(echo "$row" | awk -F'|' '{print $4}' | tr -d ' ')
    half=$(python3 -c "print(round($rps / 2))")
    echo "| $((customers * 2)) sqlite $($bench run --url "http://127.0.0.1:$port" --workload $w --customers "$customers" --concurrency 16 --seconds 10 --rate $half 2>/dev/null)"
  fi
done
kill $server; wait $server 2>/dev/null || true
rm -rf "$dir"
