#!/bin/sh
# mk/run.sh - `make run`: a local PostgreSQL that keeps its data, the schema
# migrated, every Pond service that is built (ingest, tagging, scheduler,
# reporting, the gateway simulator) as local processes, and a simulated
# brand's traffic loaded with `pond demo` through the real bus (NNG).
#
#   sh mk/run.sh BUILDDIR
#
# Environment:
#   POND_RUN_PGPORT     port of the cluster (default 5499)
#   POND_RUN_PGDIR      where it lives (default build/run-pg); the postgres OS
#                       user must be able to reach it
#   POND_RUN_CUSTOMERS  size of the demo (default medium: 2,000 customers,
#                       about 13,000 events over 90 days)
#   POND_RUN_SEED       seed of the demo (default 1)
#
# Running it again is safe: the cluster keeps its data, the tokens are kept
# in build/run/ (only their hashes are in the store), and the demo is sent
# again with the same seed over the same days (the first run's start date
# is kept in build/run/demo.start), so every event comes back "duplicate"
# and nothing is stored twice; tag rules are put again (the same) and
# campaigns the scheduler already has are left alone. Ctrl-C stops the
# services (SIGTERM, they finish what is in flight) and then PostgreSQL.
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
customers=${POND_RUN_CUSTOMERS:-medium}
seed=${POND_RUN_SEED:-1}
psql=/usr/lib/postgresql/15/bin/psql

# halt stops the services (newest first) and then the cluster, keeping its
# data for the next run.
# shellcheck disable=SC2317 # called from traps
halt() {
	trap - INT TERM HUP EXIT
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
	exit "${1:-0}"
}

mkdir -p "$pgdir"
dsn=$(POND_PG_DURABLE=1 sh "$root/tests/pg.sh" start "$pgdir" "$port")
trap 'halt 0' INT TERM HUP
trap 'halt 1' EXIT

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
started=

# start_service NAME HTTP_PORT VAR=VALUE...: starts bin/pond-NAME in the
# background when it is built, its log in build/run/NAME.log (the previous
# run's in NAME.log.1), and waits for it to log event=started.
start_service() {
	name=$1 http=$2
	shift 2
	if [ ! -x "$bin/pond-$name" ]; then
		echo "run: pond-$name is not built (yet): skipped"
		return 0
	fi
	log=$rundir/$name.log
	[ ! -f "$log" ] || mv "$log" "$log.1"
	env POND_HTTP_PORT="$http" "$@" "$bin/pond-$name" >"$log" 2>&1 &
	pid=$!
	i=0
	until grep -q "event=started" "$log" 2>/dev/null; do
		i=$((i + 1))
		if [ "$i" -ge 150 ] || ! kill -0 "$pid" 2>/dev/null; then
			echo "run: pond-$name did not start; the end of $log:" >&2
			tail -n 3 "$log" >&2
			kill -TERM "$pid" 2>/dev/null || true
			return 1
		fi
		sleep 0.1
	done
	service_pids="$pid $service_pids"
	started="$started $name"
}

# token_file FILE KIND NAME [ROLE]: the token in FILE if the store still
# knows it, else a new one (`pond publishers add` or `pond tokens add`)
# written to FILE. A new name each time: names are unique in the store.
token_file() {
	file=$1 kind=$2 name=$3
	if [ -s "$file" ]; then
		table=publishers
		[ "$kind" = publisher ] || table=api_tokens
		known=$("$psql" "$POND_DSN" -tAc "SELECT 1 FROM $table WHERE revoked_at IS NULL AND token_hash = sha256(convert_to('$(cat "$file")', 'UTF8'))")
		[ -z "$known" ] || return 0
	fi
	name=$name-$(date +%Y%m%d%H%M%S)
	if [ "$kind" = publisher ]; then
		"$pond" publishers add "$name" >"$file"
	else
		"$pond" tokens add "$name" --role "$4" >"$file"
	fi
}

token_file "$rundir/demo.token" publisher demo
token_file "$rundir/gateway.token" publisher gateway-sim
token_file "$rundir/read.token" api dashboard read
token_file "$rundir/admin.token" api demo-admin admin

# The bus: ingest announces events on 7410, tagging tag changes on 7411,
# the scheduler touches on 7412; gateways listen on 7420-7424 (one per
# touch channel) and send their receipts back to ingest on 7400.
gateways=wecom_message=tcp://127.0.0.1:7420,sms=tcp://127.0.0.1:7421
gateways=$gateways,call=tcp://127.0.0.1:7422,group_post=tcp://127.0.0.1:7423
gateways=$gateways,coupon=tcp://127.0.0.1:7424

start_service ingest 8400 POND_INGEST_URL=tcp://127.0.0.1:7400 \
	POND_EVENTS_PUB_URL=tcp://127.0.0.1:7410 ||
	die "without ingest there is nothing to run"
start_service tagging 8401 POND_EVENTS_SUB_URLS=tcp://127.0.0.1:7410 \
	POND_TAG_CHANGES_PUB_URL=tcp://127.0.0.1:7411 \
	POND_REPURCHASE_CYCLES=default:30,tea:20,skincare:30,snacks:15,household:45 ||
	true
start_service gateway-sim 8420 POND_GATEWAY_URLS="$gateways" \
	POND_INGEST_URL=tcp://127.0.0.1:7400 \
	POND_GATEWAY_TOKEN="$(cat "$rundir/gateway.token")" \
	POND_GATEWAY_LEDGER="$rundir/gateway.ledger" || true
start_service scheduler 8402 POND_EVENTS_SUB_URLS=tcp://127.0.0.1:7410 \
	POND_TAG_CHANGES_SUB_URLS=tcp://127.0.0.1:7411 \
	POND_TOUCHES_PUB_URL=tcp://127.0.0.1:7412 \
	POND_GATEWAY_URLS="$gateways" || true
start_service reporting 8403 POND_REPORTING_URL=tcp://127.0.0.1:7403 \
	POND_EVENTS_SUB_URLS=tcp://127.0.0.1:7410 \
	POND_TAG_CHANGES_SUB_URLS=tcp://127.0.0.1:7411 \
	POND_TOUCHES_SUB_URLS=tcp://127.0.0.1:7412 || true

# The demo's days are fixed by the first run, so a later run (another day)
# sends the very same events again.
if [ ! -s "$rundir/demo.start" ]; then
	TZ=Asia/Shanghai date -d "today -90 days" +%F >"$rundir/demo.start"
fi
start=$(cat "$rundir/demo.start")
echo "run: loading the demo brand (pond demo --seed $seed --customers $customers --start $start)"
"$pond" demo --seed "$seed" --customers "$customers" --start "$start" \
	--days 90 --url tcp://127.0.0.1:7400 \
	--token "$(cat "$rundir/demo.token")" \
	--admin-token "$(cat "$rundir/admin.token")" ||
	echo "run: pond demo did not finish cleanly (see above); the services keep running"

# The consumers (tagging, scheduler, reporting) work through the demo on
# their own; wait a little for them so the first look shows everything.
lag_sql="SELECT coalesce(sum(h.head - c.seq), 0) FROM consumer_cursors c
	JOIN stream_heads h USING (stream, partition)"
i=0
while lag=$("$psql" "$POND_DSN" -tAc "$lag_sql") && [ "$lag" -gt 0 ] && [ "$i" -lt 60 ]; do
	[ $((i % 10)) -ne 0 ] || echo "run: the consumers are $lag records behind; waiting"
	i=$((i + 1))
	sleep 1
done
[ "${lag:-0}" -eq 0 ] || echo "run: still $lag records behind; they catch up on their own (pond streams)"

read_token=$(cat "$rundir/read.token")
to=$(TZ=Asia/Shanghai date +%F)
cat <<MSG

run: Pond is up:$started (PostgreSQL 15 on port $port; local processes).
  POND_DSN='$POND_DSN'
  dashboard:  http://localhost:8403/   (read token: $read_token)
  reports:    curl -H "Authorization: Bearer $read_token" \\
                'http://127.0.0.1:8403/v1/reports/acquisition?from=$start&to=$to'
              curl -H "Authorization: Bearer $read_token" \\
                'http://127.0.0.1:8403/v1/reports/repurchase?from=$start&to=$to'
              POND_DSN='$POND_DSN' $pond report acquisition --from $start --to $to
  campaigns:  curl -H "Authorization: Bearer $read_token" http://127.0.0.1:8402/v1/campaigns
  tag rules:  curl -H "Authorization: Bearer $read_token" http://127.0.0.1:8401/v1/tag-rules
  a customer: curl -H "Authorization: Bearer $read_token" http://127.0.0.1:8403/v1/customers/s$seed-c00042
  health:     curl http://127.0.0.1:8400/healthz   (8401 tagging, 8402 scheduler, 8403 reporting,
              8420 gateway simulator)
  metrics:    curl http://127.0.0.1:8400/metrics
  stream lag: POND_DSN='$POND_DSN' $pond streams
  publish:    POND_TOKEN=\$(cat $rundir/demo.token) $pond send --url tcp://127.0.0.1:7400 FILE.json
  tokens:     $rundir/*.token (admin token for campaigns and tag rules: admin.token)
  logs:       $rundir/NAME.log (the previous run's in NAME.log.1); PostgreSQL in $pgdir/log
  docs:       docs/operators.md (what to look at), docs/runbook.md (when something is wrong)
Press Ctrl-C to stop everything (the data stays for the next \`make run\`).
MSG

# Wait for Ctrl-C. sleep runs in the background so the trap runs at once.
trap - EXIT
while :; do
	sleep 3600 &
	waiter=$!
	wait "$waiter" || true
done
