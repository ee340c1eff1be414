#!/bin/sh
# tests/compose/run.sh - `make test-compose`: the stack as containers.
#
# Brings docker-compose.yml up under its own project name and host ports,
# scaled: two tagging and two scheduler replicas, which split each stream's
# partitions. Defines a welcome campaign (a touch on every contact_added),
# publishes events from the host over NNG (`pond send`, retrying a batch
# until it is acked, as a publisher must) and over HTTP (curl), and while
# they flow SIGKILLs one tagging replica, one scheduler replica and ingest.
# Once all are back and caught up it checks that every event sent is stored
# exactly once and applied exactly once by tagging (its cursors at the heads,
# each order counted once in the profiles), that every contact_added made
# exactly one touch, none sent twice (the scheduler's records and the
# gateway's own ledger) and none over the frequency cap, and that
# reporting's answers equal counts taken straight from the tables. Prints
# the counts; tears the stack down (volumes included) on every way out.
# Targets only 127.0.0.1.
#
#   sh tests/compose/run.sh BUILDDIR      (images must exist: make images)
set -eu

die() {
	echo "compose-test: $*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: sh tests/compose/run.sh BUILDDIR"
root=$(cd "$(dirname "$0")/../.." && pwd -P)
pond=$(cd "$1/bin" && pwd -P)/pond
[ -x "$pond" ] || die "$pond not found"
cd "$root"

project=pondct$$
work=$(mktemp -d "${TMPDIR:-/tmp}/pond-compose.XXXXXX")
compose() {
	docker-compose -p "$project" "$@"
}

teardown() {
	trap - EXIT INT TERM
	compose logs --no-color >"$work/stack.log" 2>&1 || true
	mkdir -p build/test-artifacts
	cp "$work/stack.log" build/test-artifacts/compose-stack.log 2>/dev/null || true
	compose down -v --remove-orphans >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# shellcheck source=mk/ports.sh
. "$root/mk/ports.sh"
free_port
nng_port=$port
free_port
http_port=$port
free_port
reporting_port=$port
free_port
export POND_HOST_INGEST_NNG=127.0.0.1:$nng_port
export POND_HOST_INGEST_HTTP=127.0.0.1:$http_port
export POND_HOST_REPORTING_HTTP=127.0.0.1:$reporting_port
export POND_HOST_REPORTING_NNG=127.0.0.1:$port
# The scaled services take whatever host port is free.
export POND_HOST_TAGGING_HTTP=127.0.0.1:
export POND_HOST_SCHEDULER_HTTP=127.0.0.1:
# No quiet hours: the touches must go out whatever the time of day here.
export POND_QUIET_HOURS=
url=tcp://127.0.0.1:$nng_port

echo "compose-test: bringing the stack up (project $project), tagging and scheduler scaled to 2"
compose up -d --scale tagging=2 --scale scheduler=2 >"$work/up.log" 2>&1 ||
	{ cat "$work/up.log" >&2; die "up failed"; }
# wait_healthy SERVICE: every container of the service reports healthy.
wait_healthy() {
	i=0
	while :; do
		ids=$(compose ps -q "$1")
		n=0
		for id in $ids; do
			[ "$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null)" = healthy ] ||
				n=$((n + 1))
		done
		[ -n "$ids" ] && [ "$n" -eq 0 ] && break
		i=$((i + 1))
		[ "$i" -lt 120 ] || die "$1 did not become healthy"
		sleep 0.5
	done
}
for s in ingest tagging scheduler reporting gateway-sim; do
	wait_healthy "$s"
done
[ "$(compose ps -q tagging | wc -l)" -eq 2 ] || die "not two tagging replicas"
[ "$(compose ps -q scheduler | wc -l)" -eq 2 ] || die "not two scheduler replicas"
# pond runs in the tools image (the setup service's), on the stack's network.
pond_ctl() {
	compose run --rm -T --entrypoint pond setup "$@"
}
token=$(pond_ctl publishers add compose-test 2>/dev/null)
[ -n "$token" ] || die "could not add a publisher"
read_token=$(pond_ctl tokens add compose-read --role read 2>/dev/null)
[ -n "$read_token" ] || die "could not add a read token"
echo '{"id": "welcome", "name": "welcome", "channel": "wecom_message",
	"template": "welcome", "trigger": {"event": "contact_added"},
	"holdout_pct": 10, "cost_per_touch_fen": 10}' |
	pond_ctl campaigns create - >/dev/null 2>"$work/campaign.err" ||
	die "could not create the campaign: $(cat "$work/campaign.err")"
sql() {
	compose exec -T postgres psql -qtAX -U postgres -d pond -c "$1"
}

# make_batch FILE FROM TO: events FROM..TO, a contact, an order or a chat.
make_batch() {
	{
		echo '{"events": ['
		i=$2
		while [ "$i" -le "$3" ]; do
			sep=,
			[ "$i" -eq "$3" ] && sep=
			case $((i % 3)) in
			0) body='"contact_added": {"channel": "package_card"}' ;;
			1) body="\"order_paid\": {\"order_id\": \"o-$i\", \"amount_fen\": $((i % 500 + 100))}" ;;
			*) body='"interaction": {"kind": "message", "seconds": 5}' ;;
			esac
			printf '{"event_id": "ct-%d", "customer_key": "c-%d", "occurred_at": "2026-11-20T10:00:00Z", %s}%s\n' \
				"$i" $((i % 977)) "$body" "$sep"
			i=$((i + 1))
		done
		echo ']}'
	} >"$1"
}

# send_until_acked FILE: a publisher's loop, the batch again until an ack.
send_until_acked() {
	n=0
	until POND_TOKEN=$token "$pond" send --url "$url" "$1" >"$1.ack" 2>>"$work/send.err"; do
		n=$((n + 1))
		[ "$n" -lt 60 ] || return 1
		sleep 1
	done
}

# kill_and_restart SERVICE: SIGKILL its (first) container and start it
# again unless its restart policy does (without waiting for it: events keep
# flowing). Prints how it came back.
kill_and_restart() {
	id=$(compose ps -q "$1" | head -n 1)
	docker kill -s KILL "$id" >/dev/null
	sleep 1
	if [ "$(docker inspect -f '{{.State.Running}}' "$id")" != true ]; then
		docker start "$id" >/dev/null 2>&1
		echo "started again by the test"
	else
		echo "restarted by its restart policy"
	fi
}

batches=40
per=250
b=0
while [ "$b" -lt "$batches" ]; do
	make_batch "$work/batch-$b.json" $((b * per + 1)) $(((b + 1) * per))
	b=$((b + 1))
done

echo "compose-test: publishing $((batches * per)) events over NNG; SIGKILL of a tagging replica, a scheduler replica, then ingest, midway"
(
	b=0
	while [ "$b" -lt "$batches" ]; do
		send_until_acked "$work/batch-$b.json" || exit 1
		b=$((b + 1))
		sleep 0.2 # a steady publisher, so the kills land mid-stream
	done
) &
sender=$!
# The kills run in the background, so that the publisher's pace, not a
# container's restart, decides where in the stream each lands.
until [ -s "$work/batch-4.json.ack" ]; do sleep 0.1; done
tagging_killed_at=$(find "$work" -name '*.ack' -size +0 | wc -l)
kill_and_restart tagging >"$work/tagging.how" &
until [ -s "$work/batch-12.json.ack" ]; do sleep 0.1; done
scheduler_killed_at=$(find "$work" -name '*.ack' -size +0 | wc -l)
kill_and_restart scheduler >"$work/scheduler.how" &
until [ -s "$work/batch-20.json.ack" ]; do sleep 0.1; done
killed_at=$(find "$work" -name '*.ack' -size +0 | wc -l)
kill_and_restart ingest >"$work/ingest.how" &
wait "$sender" || die "a batch was never acked"
wait # the kills
tagging_how=$(cat "$work/tagging.how")
scheduler_how=$(cat "$work/scheduler.how")
how=$(cat "$work/ingest.how")
for s in ingest tagging scheduler; do
	wait_healthy "$s"
done

# HTTP: one more batch with the webhook.
make_batch "$work/http.json" $((batches * per + 1)) $((batches * per + 100))
http_status=$(curl -s -o "$work/http.out" -w '%{http_code}' \
	-H "Authorization: Bearer $token" --data-binary @"$work/http.json" \
	"http://127.0.0.1:$http_port/v1/events")
[ "$http_status" = 200 ] || die "HTTP POST answered $http_status: $(cat "$work/http.out")"
http_accepted=$(grep -o '"status":"accepted"' "$work/http.out" | wc -l)

sent=$((batches * per + 100))
acked=$(cat "$work"/*.ack | awk '{a += $1; d += $3; r += $5} END {print a + d}')
rejected=$(cat "$work"/*.ack | awk '{r += $5} END {print r + 0}')
acked=$((acked + http_accepted))
stored=$(sql "SELECT count(*) FROM events e JOIN publishers p ON p.id = e.publisher_id WHERE p.name = 'compose-test'")
distinct=$(sql "SELECT count(DISTINCT event_id) FROM events e JOIN publishers p ON p.id = e.publisher_id WHERE p.name = 'compose-test'")
gaps=$(sql "SELECT count(*) FROM (SELECT partition, count(*) c, max(seq) m FROM events GROUP BY partition) x WHERE c <> m")
retries=$(grep -c . "$work/send.err" 2>/dev/null || true)

# lag_sql CONSUMER STREAM: records of STREAM that CONSUMER has not applied.
lag_sql() {
	echo "SELECT coalesce(sum(h.head - coalesce(c.seq, 0)), -1) FROM stream_heads h
	LEFT JOIN consumer_cursors c ON c.stream = h.stream AND c.partition = h.partition
	AND c.consumer = '$1' WHERE h.stream = '$2'"
}
# wait_until SQL WHAT: polls SQL (up to 2 minutes) until it answers 0.
wait_until() {
	i=0
	until [ "$(sql "$1")" = 0 ]; do
		i=$((i + 1))
		[ "$i" -lt 240 ] || die "$2 (still $(sql "$1"))"
		sleep 0.5
	done
}
# Every consumer catches up: its cursors reach the heads of every partition
# of every stream it reads; then the due queue empties.
wait_until "$(lag_sql tagging events)" "tagging did not catch up"
wait_until "$(lag_sql scheduler events)" "the scheduler did not catch up on events"
wait_until "$(lag_sql scheduler tag_changes)" "the scheduler did not catch up on tag changes"
wait_until "SELECT count(*) FROM touches WHERE state IN ('scheduled', 'deferred')" \
	"touches are still due"
for st in events tag_changes touches; do
	wait_until "$(lag_sql reporting $st)" "reporting did not catch up on $st"
done
# The events stream also carries the gateway's receipts.
in_stream=$(sql "SELECT sum(head) FROM stream_heads WHERE stream = 'events'")
applied=$(sql "SELECT sum(seq) FROM consumer_cursors WHERE consumer = 'tagging' AND stream = 'events'")
orders_sent=$(sql "SELECT count(*) FROM events WHERE type = 'order_paid'")
orders_counted=$(sql "SELECT coalesce(sum(orders), 0) FROM customer_profiles")
customers=$(sql "SELECT count(DISTINCT customer_key) FROM events WHERE customer_key <> ''")
profiles=$(sql "SELECT count(*) FROM customer_profiles")

# Touches: one per contact_added, whatever its fate; a sent one went out
# once (one `sent` record, one line in the gateway's ledger of the touches
# it took); no customer got two marketing touches on one business day.
adds=$(sql "SELECT count(*) FROM events WHERE type = 'contact_added'")
touches=$(sql "SELECT count(*) FROM touches WHERE campaign_id = 'welcome'")
held_out=$(sql "SELECT count(*) FROM touches WHERE state = 'held_out'")
capped=$(sql "SELECT count(*) FROM touches WHERE reason = 'frequency_cap'")
went_out=$(sql "SELECT count(*) FROM touches WHERE sent_at IS NOT NULL")
sent_twice=$(sql "SELECT count(*) FROM (SELECT touch_id FROM touch_changes
	WHERE state = 'sent' GROUP BY touch_id HAVING count(*) > 1) x")
over_cap=$(sql "SELECT count(*) FROM (SELECT customer_key FROM touches
	WHERE sent_at IS NOT NULL AND kind = 'marketing'
	GROUP BY customer_key, (sent_at AT TIME ZONE 'Asia/Shanghai')::date
	HAVING count(*) > 1) x")
ledger=$(compose exec -T gateway-sim sh -c 'cat /var/lib/pond/gateway.ledger' | sort)
ledger_lines=$(printf '%s\n' "$ledger" | grep -c . || true)
ledger_distinct=$(printf '%s\n' "$ledger" | grep . | uniq | wc -l)

# Reporting, beside the same figures taken from the tables.
report() {
	curl -s -H "Authorization: Bearer $read_token" \
		"http://127.0.0.1:$reporting_port/v1/reports/$1"
}
jnum() { # jnum JSON PATH: a number out of a reply (python3 is on the host)
	printf '%s' "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); print(eval('d' + sys.argv[1]))" "$2"
}
acq=$(report "acquisition?from=2026-11-20&to=2026-11-21")
rep_new=$(jnum "$acq" "['total']['new_customers']")
camp=$(report "campaigns/welcome?from=2026-11-01&to=2027-01-01")
rep_audience=$(jnum "$camp" "['rows'][0]['audience']")
rep_sent=$(jnum "$camp" "['rows'][0]['sent']")
rep_holdout=$(jnum "$camp" "['rows'][0]['holdout_size']")
audience=$(sql "SELECT count(DISTINCT customer_key) FROM touches WHERE campaign_id = 'welcome'")
# holdout_size counts hold-out selections, as sent counts touches.
holdout_customers=$(sql "SELECT count(*) FROM touches WHERE state = 'held_out'")

printf '\ncompose-test: SIGKILL of ingest after %s of %s NNG batches (%s)\n' \
	"$killed_at" "$batches" "$how"
printf 'compose-test: SIGKILL of a tagging replica after %s of %s NNG batches (%s)\n' \
	"$tagging_killed_at" "$batches" "$tagging_how"
printf 'compose-test: SIGKILL of a scheduler replica after %s of %s NNG batches (%s)\n' \
	"$scheduler_killed_at" "$batches" "$scheduler_how"
printf '  %-34s %s\n' "events sent (NNG + HTTP)" "$sent" \
	"acked accepted or duplicate" "$acked" \
	"rejected" "$rejected" \
	"stored" "$stored" \
	"stored, distinct event ids" "$distinct" \
	"partitions with a seq gap" "$gaps" \
	"send attempts that failed, retried" "$retries" \
	"events stream (ours + receipts)" "$in_stream" \
	"records applied by tagging" "$applied" \
	"orders stored / counted by tagging" "$orders_sent / $orders_counted" \
	"customers / tagging profiles" "$customers / $profiles" \
	"contact_added / welcome touches" "$adds / $touches" \
	"held out / capped / sent" "$held_out / $capped / $went_out" \
	"touches with two sent records" "$sent_twice" \
	"gateway ledger lines / distinct" "$ledger_lines / $ledger_distinct" \
	"customers over the cap on a day" "$over_cap" \
	"new customers: reporting / events" "$rep_new / $customers" \
	"campaign audience: reporting / SQL" "$rep_audience / $audience" \
	"campaign sent: reporting / SQL" "$rep_sent / $went_out" \
	"hold-out: reporting / SQL" "$rep_holdout / $holdout_customers"
[ "$rejected" -eq 0 ] || die "events were rejected"
[ "$acked" -eq "$sent" ] || die "acked $acked of $sent"
[ "$stored" -eq "$sent" ] || die "stored $stored of $sent"
[ "$distinct" -eq "$sent" ] || die "an event was stored twice"
[ "$gaps" -eq 0 ] || die "a partition has a seq gap"
[ "$applied" -eq "$in_stream" ] || die "tagging applied $applied of $in_stream"
[ "$orders_counted" -eq "$orders_sent" ] ||
	die "tagging counted $orders_counted orders of $orders_sent"
[ "$profiles" -eq "$customers" ] || die "$profiles profiles for $customers customers"
[ "$touches" -eq "$adds" ] || die "$touches touches for $adds contact_added events"
[ "$sent_twice" -eq 0 ] || die "$sent_twice touches were recorded sent twice"
[ "$ledger_lines" -eq "$ledger_distinct" ] || die "the gateway took a touch twice"
[ "$ledger_lines" -eq "$went_out" ] || die "the gateway took $ledger_lines touches, $went_out were sent"
[ "$over_cap" -eq 0 ] || die "a customer got two touches on one day"
[ "$went_out" -gt 0 ] || die "no touch went out"
[ "$rep_new" = "$customers" ] || die "reporting: $rep_new new customers, not $customers"
[ "$rep_audience" = "$audience" ] || die "reporting: audience $rep_audience, not $audience"
[ "$rep_sent" = "$went_out" ] || die "reporting: sent $rep_sent, not $went_out"
[ "$rep_holdout" = "$holdout_customers" ] || die "reporting: hold-out $rep_holdout, not $holdout_customers"
echo "compose-test: 1 passed, 0 failed"
