#!/bin/sh
# tests/faults/run.sh - `make test-faults`: faults survived, counted.
#
#   sh tests/faults/run.sh BUILDDIR
#
# Starts a throwaway PostgreSQL and every service as local processes
# (ingest, tagging, scheduler, reporting, the gateway simulator) with two
# campaigns (a welcome touch on every contact_added, with a hold-out; a
# festival offer on every paid order, quota 40). Then, phase by phase,
# events flow at a steady pace from a publisher that resends a batch until
# it is acked, and one fault lands at a random moment of the phase:
#
#   kill ingest | kill tagging | kill scheduler | kill reporting   SIGKILL,
#                   then started again
#   crash gateway   SIGKILL of the gateway simulator, started again
#   stall gateway   the gateway holds its answers for a while (the
#                   scheduler's resend has to bring the touches through)
#   gateway acks twice
#   restart postgres  a fast shutdown and start of the cluster under all of
#                   them
#   cut SUB         tagging's SUB link to ingest's PUB is cut (it reaches it
#                   through a socat relay, which is killed) for the phase,
#                   so it can only catch up from the table
#
# After each phase, once every consumer has caught up and the due queue is
# empty, the checker counts, over everything so far: events acked vs stored
# (once each); every consumer's cursors at the heads; each order counted
# once by tagging and by reporting; tag changes that repeat themselves; one
# touch per trigger; touches sent twice (the scheduler's records, the
# gateway's own ledger); and touches that broke the frequency cap, the
# quota, quiet hours or an opt-out. It prints the table of faults × counts
# and fails on any count that is not what it must be.
#
# Time: the services run on a test clock that starts at 11:59:30 business
# time and runs at the wall clock's pace; quiet hours are 12:00-12:01, so
# touches chosen in that minute must wait for its end.
#
# Environment: POND_FAULTS=short (default, about 4 minutes; .ci/run) or long
# (more and larger batches per phase), POND_FAULTS_SEED (the fault moments;
# default: from the clock, printed), POND_FAULTS_ONLY (a comma-separated
# list of faults to run, e.g. "kill ingest,cut SUB"; default all). The
# publisher's acks and the table stay in build/test-artifacts/faults.
# Targets only 127.0.0.1.
set -eu

die() {
	echo "faults: $*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: sh tests/faults/run.sh BUILDDIR"
root=$(cd "$(dirname "$0")/../.." && pwd -P)
bin=$(cd "$1/bin" && pwd -P)
[ -x "$bin/pond-scheduler" ] || die "$bin/pond-scheduler not found (make all)"
command -v socat >/dev/null || die "socat is missing (make deps)"
mode=${POND_FAULTS:-short}
case $mode in
short) per_phase=6 per=120 pace=0.4 ;;
long) per_phase=30 per=250 pace=0.3 ;;
*) die "POND_FAULTS must be short or long, not '$mode'" ;;
esac
seed=${POND_FAULTS_SEED:-$(date +%s)}
psql=/usr/lib/postgresql/15/bin/psql
pond=$bin/pond

# shellcheck source=mk/ports.sh
. "$root/mk/ports.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pond-faults.XXXXXX")
chmod 755 "$tmp"
pgdir=$tmp/pg
artifacts=$root/build/test-artifacts/faults
rm -rf "$artifacts"
mkdir -p "$artifacts"
clock=$tmp/clock
clock_pid=
relay_pid=

# --- teardown ------------------------------------------------------------------

# shellcheck source=mk/proc.sh
. "$root/mk/proc.sh"

# shellcheck disable=SC2317 # called from traps
teardown() {
	trap - EXIT INT TERM HUP
	for name in ingest tagging scheduler reporting gateway-sim; do
		pid=$(cat "$tmp/$name.pid" 2>/dev/null || true)
		[ -z "$pid" ] || stop_proc "$pid" 5
	done
	[ -z "$relay_pid" ] || kill -TERM "-$relay_pid" 2>/dev/null || true
	[ -z "$clock_pid" ] || kill "$clock_pid" 2>/dev/null || true
	stop_cluster "$pgdir" "$artifacts"
	rm -rf "$tmp"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# --- the clock -----------------------------------------------------------------

# 2026-11-20T03:59:30Z is 11:59:30 in Asia/Shanghai.
anchor_us=1795147170000000
start_us=$(($(date +%s%N) / 1000))
(
	while :; do
		echo $((anchor_us + $(date +%s%N) / 1000 - start_us)) >"$clock.new"
		mv "$clock.new" "$clock"
		sleep 0.05
	done
) &
clock_pid=$!
until [ -s "$clock" ]; do sleep 0.05; done
export POND_TEST_CLOCK="$clock"

# --- the store -----------------------------------------------------------------

free_port
pgport=$port
dsn=$(sh "$root/tests/pg.sh" start "$pgdir" "$pgport")
"$psql" "$dsn" -X -q -c "CREATE DATABASE pond"
POND_DSN=$(echo "$dsn" | sed 's/dbname=postgres$/dbname=pond/')
export POND_DSN
"$pond" migrate >/dev/null 2>&1
token=$("$pond" publishers add faults 2>/dev/null)
gateway_token=$("$pond" publishers add gateway 2>/dev/null)

sql() {
	"$psql" "$POND_DSN" -X -q -v ON_ERROR_STOP=1 -tAc "$1"
}

# --- the services ----------------------------------------------------------------

free_port
ingest_url=tcp://127.0.0.1:$port
free_port
events_pub=tcp://127.0.0.1:$port
events_pub_port=$port
free_port
relay_port=$port
free_port
tags_pub=tcp://127.0.0.1:$port
free_port
touches_pub=tcp://127.0.0.1:$port
free_port
gw_wecom=tcp://127.0.0.1:$port
free_port
gw_sms=tcp://127.0.0.1:$port
gateways=wecom_message=$gw_wecom,sms=$gw_sms
free_port
reporting_url=tcp://127.0.0.1:$port
control=$tmp/gateway.control
: >"$control"

# service_env NAME: the service's own settings, one per line.
service_env() {
	case $1 in
	ingest) printf '%s\n' "POND_INGEST_URL=$ingest_url" \
		"POND_EVENTS_PUB_URL=$events_pub" ;;
	tagging) printf '%s\n' \
		"POND_EVENTS_SUB_URLS=tcp://127.0.0.1:$relay_port" \
		"POND_TAG_CHANGES_PUB_URL=$tags_pub" ;;
	scheduler) printf '%s\n' "POND_EVENTS_SUB_URLS=$events_pub" \
		"POND_TAG_CHANGES_SUB_URLS=$tags_pub" \
		"POND_TOUCHES_PUB_URL=$touches_pub" \
		"POND_GATEWAY_URLS=$gateways" "POND_QUIET_HOURS=12:00-12:01" \
		"POND_TOUCH_RESEND_S=2" ;;
	reporting) printf '%s\n' "POND_EVENTS_SUB_URLS=$events_pub" \
		"POND_TAG_CHANGES_SUB_URLS=$tags_pub" \
		"POND_TOUCHES_SUB_URLS=$touches_pub" \
		"POND_REPORTING_URL=$reporting_url" ;;
	gateway-sim) printf '%s\n' "POND_GATEWAY_URLS=$gateways" \
		"POND_INGEST_URL=$ingest_url" "POND_GATEWAY_TOKEN=$gateway_token" \
		"POND_GATEWAY_LEDGER=$tmp/gateway.ledger" \
		"POND_GATEWAY_CONTROL=$control" ;;
	esac
}

# started_in LOG: how many times a service has logged its start in LOG (0
# when there is no LOG yet).
started_in() {
	n=$(grep -c "event=started" "$1" 2>/dev/null || true)
	echo "${n:-0}"
}

# start NAME: starts bin/pond-NAME (log appended in the artifacts) and waits
# for its "started" line.
start() {
	log=$artifacts/$1.log
	before=$(started_in "$log")
	# shellcheck disable=SC2046 # one VAR=VALUE a word
	env POND_HTTP_ADDR=127.0.0.1 POND_HTTP_PORT=0 $(service_env "$1") \
		"$bin/pond-$1" >>"$log" 2>&1 &
	echo $! >"$tmp/$1.pid"
	i=0
	until [ "$(started_in "$log")" -gt "$before" ]; do
		kill -0 "$(cat "$tmp/$1.pid")" 2>/dev/null || die "pond-$1 exited; see $log"
		i=$((i + 1))
		[ "$i" -lt 300 ] || die "pond-$1 did not start; see $log"
		sleep 0.1
	done
}

# sigkill NAME: SIGKILL, and start again.
sigkill() {
	pid=$(cat "$tmp/$1.pid")
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	start "$1"
}

# relay_up / relay_down: tagging's way to ingest's PUB.
relay_up() {
	setsid socat "TCP-LISTEN:$relay_port,bind=127.0.0.1,reuseaddr,fork" \
		"TCP:127.0.0.1:$events_pub_port" 2>>"$artifacts/relay.log" &
	relay_pid=$!
}
relay_down() {
	kill -TERM "-$relay_pid" 2>/dev/null || true
	wait "$relay_pid" 2>/dev/null || true
	relay_pid=
}

relay_up
for name in ingest tagging gateway-sim scheduler reporting; do
	start "$name"
done

# The campaigns, through the same code as the scheduler's API.
echo '{"id": "welcome", "name": "welcome", "channel": "wecom_message",
	"template": "welcome", "trigger": {"event": "contact_added"},
	"holdout_pct": 10, "cost_per_touch_fen": 10}' | "$pond" campaigns create - >/dev/null
echo '{"id": "festival", "name": "festival", "channel": "sms",
	"template": "festival", "trigger": {"event": "order_paid"},
	"quota": 40, "cost_per_touch_fen": 5}' | "$pond" campaigns create - >/dev/null

# --- the traffic -------------------------------------------------------------------

# make_batch FILE FROM TO: events FROM..TO of 997 customers: contacts,
# orders, chats. Customers whose number is a multiple of 41 opted out of
# everything beforehand (phase 0).
make_batch() {
	awk -v from="$2" -v to="$3" 'BEGIN {
		print "{\"events\": ["
		for (i = from; i <= to; i++) {
			c = i % 997
			if (i % 3 == 0)
				b = "\"contact_added\": {\"channel\": \"package_card\"}"
			else if (i % 3 == 1)
				b = sprintf("\"order_paid\": {\"order_id\": \"o-%d\", \"amount_fen\": %d}", i, i % 500 + 100)
			else
				b = "\"interaction\": {\"kind\": \"message\", \"seconds\": 5}"
			printf "{\"event_id\": \"f-%d\", \"customer_key\": \"c-%d\", \"occurred_at\": \"2026-11-20T03:59:00Z\", %s}%s\n", i, c, b, (i < to ? "," : "")
		}
		print "]}" }' >"$1"
}

# send_until_acked FILE: a publisher's loop, the batch again until an ack.
send_until_acked() {
	n=0
	until POND_TOKEN=$token "$pond" send --url "$ingest_url" "$1" >"$1.ack" 2>>"$artifacts/send.err"; do
		n=$((n + 1))
		[ "$n" -lt 120 ] || return 1
		sleep 0.5
	done
}

awk 'BEGIN { print "{\"events\": ["
	for (c = 0; c < 997; c += 41)
		printf "{\"event_id\": \"optout-%d\", \"customer_key\": \"c-%d\", \"occurred_at\": \"2026-11-20T03:00:00Z\", \"opt_out\": {\"channel\": \"all\"}}%s\n", c, c, (c + 41 < 997 ? "," : "")
	print "]}" }' >"$tmp/optout.json"
send_until_acked "$tmp/optout.json" || die "the opt-outs were not acked"

# --- the checker -------------------------------------------------------------------

lag() { # lag CONSUMER STREAM
	sql "SELECT coalesce(sum(h.head - coalesce(c.seq, 0)), -1)
		FROM stream_heads h LEFT JOIN consumer_cursors c
		ON c.stream = h.stream AND c.partition = h.partition
		AND c.consumer = '$1' WHERE h.stream = '$2'"
}

# settle: waits (up to 2 minutes) until every consumer is at the heads, no
# touch is due any more, and nothing new has been written for a second
# (a touch sent makes receipts, which make records, which ...).
settle() {
	i=0
	prev=
	while :; do
		total=$(($(lag tagging events) + $(lag scheduler events) +
			$(lag scheduler tag_changes) + $(lag reporting events) +
			$(lag reporting tag_changes) + $(lag reporting touches)))
		due=$(sql "SELECT count(*) FROM touches WHERE state IN ('scheduled', 'deferred')")
		heads=$(sql "SELECT sum(head) FROM stream_heads")
		if [ "$total" -eq 0 ] && [ "$due" -eq 0 ]; then
			[ "$heads" = "$prev" ] && return 0
			prev=$heads
			sleep 1
			continue
		fi
		prev=
		i=$((i + 1))
		[ "$i" -lt 240 ] || die "not settled: lag $total, $due touches due (logs in $artifacts)"
		sleep 0.5
	done
}

printf '%-18s %7s %7s %5s %5s %5s %5s %5s %5s %5s %5s %5s %5s %5s\n' \
	fault acked stored lost twice lag orders tagdbl touch sent2 ledger cap quota quiet >"$tmp/table"
fails=0

# check FAULT: one row of the table; counts that must be 0 are 0.
check() {
	acked=$(cat "$tmp"/batch-*.json.ack 2>/dev/null | awk '{ a += $1 + $3 } END { print a + 0 }')
	sent_ids=$(ls "$tmp"/batch-*.json.ack 2>/dev/null | wc -l)
	sent_ids=$((sent_ids * per))
	stored=$(sql "SELECT count(*) FROM events e JOIN publishers p ON p.id = e.publisher_id WHERE p.name = 'faults' AND e.event_id LIKE 'f-%'")
	distinct=$(sql "SELECT count(DISTINCT event_id) FROM events e JOIN publishers p ON p.id = e.publisher_id WHERE p.name = 'faults' AND e.event_id LIKE 'f-%'")
	lost=$((sent_ids - distinct))
	twice=$((stored - distinct))
	lagsum=$(($(lag tagging events) + $(lag scheduler events) +
		$(lag scheduler tag_changes) + $(lag reporting events) +
		$(lag reporting tag_changes) + $(lag reporting touches)))
	# Each paid order counted once by tagging and once by reporting:
	# the difference from the events table, both ways.
	orders=$(sql "SELECT abs((SELECT coalesce(sum(orders), 0) FROM customer_profiles)
		- (SELECT count(*) FROM events WHERE type = 'order_paid'))
		+ abs((SELECT count(*) FROM rpt_orders WHERE paid)
		- (SELECT count(*) FROM events WHERE type = 'order_paid'))")
	# A tag change that repeats the one before it (added twice, or removed
	# twice, for one customer and tag), and lifecycle tags that disagree with
	# the orders in the events table.
	tagdbl=$(sql "SELECT count(*) FROM (SELECT added, lag(added) OVER w AS prev
		FROM tag_changes WINDOW w AS (PARTITION BY customer_key, tag
		ORDER BY partition, seq)) x WHERE added = prev")
	tagdbl=$((tagdbl + $(sql "SELECT count(*) FROM customer_profiles p
		WHERE NOT EXISTS (SELECT 1 FROM customer_tags t WHERE t.customer_key = p.customer_key
		AND t.tag = 'lifecycle:' || CASE (SELECT least(count(*), 3) FROM events e
		WHERE e.customer_key = p.customer_key AND e.type = 'order_paid')
		WHEN 0 THEN 'potential' WHEN 1 THEN 'first_purchase'
		WHEN 2 THEN 'repurchase' ELSE 'loyal' END)")))
	# One touch per trigger: a welcome per contact_added, a festival touch
	# per paid order (sent, held out or suppressed).
	touch=$(sql "SELECT abs((SELECT count(*) FROM touches WHERE campaign_id = 'welcome')
		- (SELECT count(*) FROM events WHERE type = 'contact_added'))
		+ abs((SELECT count(*) FROM touches WHERE campaign_id = 'festival')
		- (SELECT count(*) FROM events WHERE type = 'order_paid'))")
	sent2=$(sql "SELECT count(*) FROM (SELECT touch_id FROM touch_changes
		WHERE state = 'sent' GROUP BY touch_id HAVING count(*) > 1) x")
	went=$(sql "SELECT count(*) FROM touches WHERE sent_at IS NOT NULL")
	lines=$(grep -c . "$tmp/gateway.ledger" 2>/dev/null || true)
	uniq_lines=$(sort "$tmp/gateway.ledger" 2>/dev/null | uniq | grep -c . || true)
	ledger=$((lines - uniq_lines + (lines > went ? lines - went : went - lines)))
	cap=$(sql "SELECT count(*) FROM (SELECT 1 FROM touches
		WHERE sent_at IS NOT NULL AND kind = 'marketing'
		GROUP BY customer_key, (sent_at AT TIME ZONE 'Asia/Shanghai')::date
		HAVING count(*) > 1) x")
	quota=$(sql "SELECT greatest(count(*) - 40, 0) FROM touches
		WHERE campaign_id = 'festival' AND state NOT IN ('held_out', 'suppressed')")
	# sent_at is the gateway's ack: one sent off just before 12:00 may be
	# acked just after, hence the second of grace.
	quiet=$(sql "SELECT count(*) FROM touches WHERE sent_at IS NOT NULL
		AND (sent_at AT TIME ZONE 'Asia/Shanghai')::time >= '12:00:01'
		AND (sent_at AT TIME ZONE 'Asia/Shanghai')::time < '12:01'")
	# Opt-outs: no touch went to a customer who opted out of everything.
	cap=$((cap + $(sql "SELECT count(*) FROM touches t JOIN events e
		ON e.customer_key = t.customer_key AND e.type = 'opt_out'
		WHERE t.sent_at IS NOT NULL")))
	printf '%-18s %7s %7s %5s %5s %5s %5s %5s %5s %5s %5s %5s %5s %5s\n' \
		"$1" "$acked" "$stored" "$lost" "$twice" "$lagsum" "$orders" \
		"$tagdbl" "$touch" "$sent2" "$ledger" "$cap" "$quota" "$quiet" >>"$tmp/table"
	for v in "$lost" "$twice" "$lagsum" "$orders" "$tagdbl" "$touch" \
		"$sent2" "$ledger" "$cap" "$quota" "$quiet"; do
		[ "$v" = 0 ] || fails=$((fails + 1))
	done
	[ "$acked" -eq "$sent_ids" ] || fails=$((fails + 1))
}

# --- the phases ----------------------------------------------------------------------

# fault NAME: inject one fault.
fault() {
	case $1 in
	none) ;;
	"kill "*) sigkill "${1#kill }" ;;
	"crash gateway") sigkill gateway-sim ;;
	"stall gateway")
		echo stall >"$control"
		sleep 4
		: >"$control"
		;;
	"gateway acks twice")
		echo ack_twice >"$control"
		sleep 3
		: >"$control"
		;;
	"restart postgres")
		sh "$root/tests/pg.sh" halt "$pgdir"
		sleep 1
		sh "$root/tests/pg.sh" start "$pgdir" "$pgport" >/dev/null
		;;
	"cut SUB") relay_down ;;
	esac
}

# A fault's moment in its phase: a batch drawn from the seed.
rand_state=$seed
next_rand() {
	rand_state=$(((rand_state * 1103515245 + 12345) % 2147483648))
	echo $((rand_state % $1))
}

echo "faults: mode $mode, seed $seed, $per_phase batches of $per events a phase; logs in $artifacts"
b=0
for f in none "kill ingest" "kill tagging" "kill scheduler" "kill reporting" \
	"crash gateway" "stall gateway" "gateway acks twice" \
	"restart postgres" "cut SUB"; do
	case ",${POND_FAULTS_ONLY:-$f}," in
	*",$f,"*) ;;
	*) continue ;;
	esac
	at=$(($(next_rand "$per_phase") + b))
	last=$((b + per_phase))
	(
		k=$b
		while [ "$k" -lt "$last" ]; do
			make_batch "$tmp/batch-$k.json" $((k * per + 1)) $(((k + 1) * per))
			send_until_acked "$tmp/batch-$k.json" || exit 1
			k=$((k + 1))
			sleep "$pace"
		done
	) &
	sender=$!
	until [ -s "$tmp/batch-$at.json.ack" ] || ! kill -0 "$sender" 2>/dev/null; do
		sleep 0.05
	done
	fault "$f"
	wait "$sender" || die "phase '$f': a batch was never acked"
	[ "$f" != "cut SUB" ] || {
		# Cut for the whole phase: tagging had only the table.
		settle
		relay_up
	}
	settle
	check "$f"
	echo "faults: $f: done"
	b=$last
done

echo
cat "$tmp/table"
# What the zeros are made of.
echo
sql "SELECT 'records: events ' || (SELECT sum(head) FROM stream_heads WHERE stream = 'events')
	|| ' (the publisher''s and the gateway''s receipts), tag changes '
	|| (SELECT sum(head) FROM stream_heads WHERE stream = 'tag_changes')
	|| ', touch changes ' || (SELECT sum(head) FROM stream_heads WHERE stream = 'touches')"
sql "SELECT 'touches: ' || count(*) || ' (sent ' || count(sent_at)
	|| ', held out ' || count(*) FILTER (WHERE state = 'held_out')
	|| ', capped ' || count(*) FILTER (WHERE reason = 'frequency_cap')
	|| ', over quota ' || count(*) FILTER (WHERE reason = 'quota')
	|| ', opted out ' || count(*) FILTER (WHERE reason = 'opt_out')
	|| '); deferred by quiet hours ' || (SELECT count(DISTINCT touch_id)
	FROM touch_changes WHERE state = 'deferred')
	|| '; gateway ledger ' || $(grep -c . "$tmp/gateway.ledger" 2>/dev/null || echo 0)
	|| ' touches' FROM touches"
cp "$tmp/table" "$artifacts/table"
mkdir -p "$artifacts/acks"
cp "$tmp"/batch-*.ack "$artifacts/acks/" 2>/dev/null || true
echo "(acked/stored: events of the publisher; lost, twice: acked but not stored,"
echo " stored twice; lag: records not applied, all consumers and streams; orders:"
echo " orders miscounted by tagging + reporting; tagdbl: tag changes that repeat"
echo " or lifecycle tags that disagree with the orders; touch: triggers without"
echo " exactly one touch; sent2: touches recorded sent twice; ledger: gateway"
echo " ledger lines doubled or not matching the sent touches; cap: customers over"
echo " the cap on a day, or touched after opting out; quota: festival touches"
echo " over 40; quiet: touches sent in quiet hours)"
[ "$fails" -eq 0 ] || die "$fails counts are wrong (logs in $artifacts)"
echo "faults: passed"
