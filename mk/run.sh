#!/bin/sh
# mk/run.sh - `make run`, for now: a local PostgreSQL that keeps its data,
# with the schema migrated. The services and demo traffic join it later.
#
#   sh mk/run.sh BUILDDIR
#
# Environment:
#   POND_RUN_PGPORT   port of the cluster (default 5499)
#   POND_RUN_PGDIR    where it lives (default build/run-pg); the postgres OS
#                     user must be able to reach it
#
# The cluster is durable (fsync on) and survives this script: the next run
# starts it again with its data. Ctrl-C stops it cleanly.
set -eu

die() {
	echo "run.sh: $*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: sh mk/run.sh BUILDDIR"
root=$(cd "$(dirname "$0")/.." && pwd -P)
pond=$1/bin/pond
[ -x "$pond" ] || die "$pond not found: build it first (make BUILD=release all)"
port=${POND_RUN_PGPORT:-5499}
pgdir=${POND_RUN_PGDIR:-$root/build/run-pg}
psql=/usr/lib/postgresql/15/bin/psql

# halt stops the cluster cleanly, keeping its data for the next run.
# shellcheck disable=SC2317 # called from traps
halt() {
	trap - INT TERM HUP
	[ -z "${waiter:-}" ] || kill "$waiter" 2>/dev/null || true
	echo
	echo "run: stopping PostgreSQL (data kept in $pgdir)"
	sh "$root/tests/pg.sh" halt "$pgdir"
	exit 0
}

mkdir -p "$pgdir"
dsn=$(POND_PG_DURABLE=1 sh "$root/tests/pg.sh" start "$pgdir" "$port")
trap halt INT TERM HUP

# The store is its own database, not the cluster's maintenance one.
if [ -z "$("$psql" "$dsn" -tAc "SELECT 1 FROM pg_database WHERE datname = 'pond'")" ]; then
	"$psql" "$dsn" -qc "CREATE DATABASE pond"
fi
POND_DSN=$(echo "$dsn" | sed 's/dbname=postgres$/dbname=pond/')
export POND_DSN
"$pond" migrate

cat <<MSG

run: PostgreSQL 15 is up with the schema migrated.
  POND_DSN='$POND_DSN'
  data and server log: $pgdir
  psql:                $psql "$POND_DSN"
Press Ctrl-C to stop it (the data stays for the next \`make run\`).
MSG

# Wait for Ctrl-C. sleep runs in the background so the trap runs at once.
while :; do
	sleep 3600 &
	waiter=$!
	wait "$waiter" || true
done
