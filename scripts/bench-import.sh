#!/usr/bin/env bash
# The import benchmark: 100,000 generated past orders (~35,000 customers: shared phones,
# extra emails, cross-customer merges, email-only and phone-only orders) imported into an
# empty PostgreSQL database by `identity-api import`, record by record (the path before
# set-based batches, `--per-record`) and set-based, next to PostgreSQL's COPY of the same
# rows into a table shaped and indexed like `contact`, in one run on one server. Prints a
# Markdown table, keeps the measurements in docs/import-benchmark.jsonl and draws
# docs/import-benchmark.svg.
#   scripts/bench-import.sh      (BENCH_ADMIN_URL, BENCH_ORDERS)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
db_url="${admin%/*}/identity_import_bench"
use_bench_db "$db_url"
orders="${BENCH_ORDERS:-100000}"
results="${BENCH_IMPORT_RESULTS:-docs/import-benchmark.jsonl}"

build_release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
$bench orders --count "$orders" --jsonl "$work/orders.jsonl" --csv "$work/orders.csv"

fresh() {
  fresh_database identity_import_bench
  $api migrate >/dev/null
}
now() { date +%s.%N; }
: >"$results"
record() { # method seconds batch
  printf '{"method":"%s","records":%s,"seconds":%.3f,"batch":%s}\n' "$1" "$orders" "$2" "$3" >>"$results"
}

# Record by record with its default batch (500), set-based with the same batch and with
# its default (5000).
for run in per-record:500 set-based:500 set-based:5000; do
  method=${run%:*}; batch=${run#*:}
  fresh
  flag=""; [ "$method" = per-record ] && flag="--per-record"
  start=$(now)
  $api import "$work/orders.jsonl" --batch-size "$batch" --rejects "$work/rejects.jsonl" $flag >&2
  record "$method" "$(echo "$(now) - $start" | bc)" "$batch"
  $api check >&2
done

# COPY into a table shaped and indexed like contact (its columns, defaults, checks and
# indexes), on the same server, right after the imports.
psql -X -q "$db_url" -c "CREATE TABLE copy_target (LIKE contact INCLUDING ALL)"
start=$(now)
psql -X -q "$db_url" -c "\\copy copy_target (email, phone_number, created_at, link_precedence) FROM '$work/orders.csv' WITH (FORMAT csv)"
record copy "$(echo "$(now) - $start" | bc)" 0
drop_database identity_import_bench

echo "| method | batch | records | seconds | records/s | share of COPY |"
echo "|---|---|---|---|---|---|"
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
copy = next(r["records"] / r["seconds"] for r in rows if r["method"] == "copy")
for r in rows:
    rate = r["records"] / r["seconds"]
    batch = r["batch"] or "-"
    print(f"| {r['method']} | {batch} | {r['records']} | {r['seconds']:.2f} | {rate:,.0f} | {rate / copy:.3f} |")
PY
$bench import-chart --input "$results" --output docs/import-benchmark.svg
