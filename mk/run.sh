#!/bin/sh
# mk/run.sh - `make run`: a local PostgreSQL that keeps its data, the
# schema migrated, the services that exist so far (ingest, tagging) as local
# processes, and demo events published through the real bus (NNG, `pond
# send`). The scheduler, reporting, the gateway simulator and `pond demo`
# join as their issues land.
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
	for pid in ${service_pids:-}; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in ${service_pids:-}; do
		wait "$pid" 2>/dev/null || true
	done
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

bin=$(cd "$1/bin" && pwd -P)
rundir=$root/build/run
mkdir -p "$rundir"
service_pids=

# start_service NAME HTTP_PORT VAR=VALUE...: starts bin/pond-NAME in the
# background, its log in build/run/NAME.log, and waits for its /healthz.
start_service() {
	name=$1 http=$2
	shift 2
	env POND_HTTP_PORT="$http" "$@" "$bin/pond-$name" \
		>>"$rundir/$name.log" 2>&1 &
	service_pids="$service_pids $!"
	i=0
	until grep -q "event=started" "$rundir/$name.log" 2>/dev/null; do
		i=$((i + 1))
		[ "$i" -lt 100 ] || die "pond-$name did not start; see $rundir/$name.log"
		sleep 0.1
	done
}

: >"$rundir/ingest.log"
start_service ingest 8400 POND_INGEST_URL=tcp://127.0.0.1:7400 \
	POND_EVENTS_PUB_URL=tcp://127.0.0.1:7410

: >"$rundir/tagging.log"
start_service tagging 8401 POND_EVENTS_SUB_URLS=tcp://127.0.0.1:7410 \
	POND_TAG_CHANGES_PUB_URL=tcp://127.0.0.1:7411

# The demo publisher's token is kept (only its hash is in the store), so a
# second run re-sends the same events and they come back as duplicates.
if [ ! -s "$rundir/demo.token" ]; then
	"$pond" publishers add demo >"$rundir/demo.token"
fi
echo "run: publishing demo events over NNG (pond send)"
POND_TOKEN=$(cat "$rundir/demo.token") "$pond" send \
	--url tcp://127.0.0.1:7400 "$root/deploy/demo/events.json" || true

cat <<MSG

run: Pond is up (PostgreSQL 15, pond-ingest and pond-tagging, as local processes).
  POND_DSN='$POND_DSN'
  ingest:   NNG tcp://127.0.0.1:7400, HTTP http://127.0.0.1:8400
  tagging:  HTTP http://127.0.0.1:8401 (tag rules: pond rules list; docs/tagging.md)
  health:   curl http://127.0.0.1:8400/healthz; curl http://127.0.0.1:8401/healthz
  metrics:  curl http://127.0.0.1:8400/metrics
  streams:  POND_DSN='$POND_DSN' $pond streams
  publish:  curl -H "Authorization: Bearer \$(cat $rundir/demo.token)" \\
              -d @$root/deploy/demo/events.json http://127.0.0.1:8400/v1/events
  logs:     $rundir/*.log; PostgreSQL in $pgdir
  (the demo file holds one bad event on purpose: see rejected_events)
Press Ctrl-C to stop everything (the data stays for the next \`make run\`).
MSG

# Wait for Ctrl-C. sleep runs in the background so the trap runs at once.
while :; do
	sleep 3600 &
	waiter=$!
	wait "$waiter" || true
done
