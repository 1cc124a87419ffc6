#!/usr/bin/env bash
# A local PostgreSQL for development, in target/dev-postgres, listening on 127.0.0.1:5432
# (the service's default database.url), trust authentication, user `postgres`.
#   scripts/dev-db.sh start | stop | status
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD/target/dev-postgres"
port="${PGPORT:-5432}"

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ]; then
  bindir=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
fi
if [ ! -x "$bindir/initdb" ]; then
  echo "PostgreSQL server binaries not found: install them (Debian: apt-get install postgresql)," >&2
  echo "or use 'just up' to run PostgreSQL and the service with Docker Compose." >&2
  exit 1
fi

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

mkdir -p "$root"
[ "$(id -u)" = 0 ] && chown -R postgres "$root"
case "${1:-start}" in
  start)
    [ -f "$root/data/PG_VERSION" ] || as_pg "$bindir/initdb" -D "$root/data" -U postgres --auth=trust -E UTF8 >/dev/null
    if as_pg "$bindir/pg_ctl" status -D "$root/data" >/dev/null 2>&1; then
      echo "already running on 127.0.0.1:$port"
    else
      as_pg "$bindir/pg_ctl" start -w -D "$root/data" -l "$root/postgres.log" \
        -o "-p $port -k $root -c listen_addresses=127.0.0.1"
      echo "PostgreSQL is up: postgres://postgres@127.0.0.1:$port/postgres"
    fi
    ;;
  stop)
    # This cluster, and the one the tests start under target/test-postgres.
    for data in "$root/data" "$PWD/target/test-postgres/data"; do
      if [ -f "$data/PG_VERSION" ] && as_pg "$bindir/pg_ctl" status -D "$data" >/dev/null 2>&1; then
        as_pg "$bindir/pg_ctl" stop -D "$data" -m fast
      fi
    done
    ;;
  status) as_pg "$bindir/pg_ctl" status -D "$root/data" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
