#!/usr/bin/env bash
# Run a command with a PostgreSQL server for the tests, exporting SWARM_TEST_PG_DSN.
#   scripts/with-postgres.sh COMMAND [ARGS...]
# Uses the server at SWARM_TEST_PG_DSN (default: postgresql://postgres@127.0.0.1:5432/test)
# when it answers; otherwise starts a throwaway cluster from the installed server
# binaries (installing Debian's postgresql package if they are missing), and stops it
# afterwards. Exits non-zero when no server can be had: PostgreSQL tests never skip.
set -euo pipefail

dsn="${SWARM_TEST_PG_DSN:-postgresql://postgres@127.0.0.1:5432/test}"
answers() { "$1" -d "$2" -t 3 >/dev/null 2>&1; }

isready=$(command -v pg_isready || ls /usr/lib/postgresql/*/bin/pg_isready 2>/dev/null | tail -n1 || true)
if [ -n "$isready" ] && answers "$isready" "$dsn"; then
  export SWARM_TEST_PG_DSN="$dsn"
  exec "$@"
fi

find_bin() {
  ls /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n1 || true
}
initdb=$(find_bin initdb)
if [ -z "$initdb" ]; then
  echo "with-postgres: no server at $dsn and no PostgreSQL binaries; installing postgresql" >&2
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  initdb=$(find_bin initdb)
  if [ -z "$initdb" ]; then
    echo "with-postgres: cannot get a PostgreSQL server: set SWARM_TEST_PG_DSN to one" >&2
    exit 1
  fi
fi
bindir=$(dirname "$initdb")
port="${SWARM_TEST_PG_PORT:-55432}"
dir=$(mktemp -d /tmp/swarmsh-pg.XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi; }
if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
chmod 700 "$dir"
echo "with-postgres: starting a throwaway cluster in $dir on port $port" >&2
as_pg "'$initdb' -D '$dir/data' -U postgres -A trust >'$dir/initdb.log' 2>&1"
as_pg "'$bindir/pg_ctl' -D '$dir/data' -l '$dir/log' -o \"-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300\" -w start >/dev/null"
stop() { as_pg "'$bindir/pg_ctl' -D '$dir/data' -m fast -w stop >/dev/null" || true; rm -rf "$dir"; }
trap stop EXIT
as_pg "'$bindir/createdb' -h 127.0.0.1 -p $port -U postgres test"
export SWARM_TEST_PG_DSN="postgresql://postgres@127.0.0.1:$port/test"
"$@"
