#!/bin/sh
# tests/compose/run.sh - `make test-compose`: the stack as containers.
#
# Brings docker-compose.yml up under its own project name and host ports,
# publishes events from the host over NNG (`pond send`, retrying a batch
# until it is acked, as a publisher must) and over HTTP (curl), SIGKILLs the
# ingest container and then the tagging container while events flow, and
# checks once they are back that every event sent is stored exactly once and
# applied by tagging exactly once (its cursors at the heads, and each order
# counted once in the profiles). Prints the counts; tears the stack down
# (volumes included) on every way out. Targets only 127.0.0.1.
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
export POND_HOST_INGEST_NNG=127.0.0.1:$nng_port
export POND_HOST_INGEST_HTTP=127.0.0.1:$http_port
export POND_HOST_TAGGING_HTTP=127.0.0.1:$port
url=tcp://127.0.0.1:$nng_port

echo "compose-test: bringing the stack up (project $project)"
compose up -d >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; die "up failed"; }
wait_healthy() {
	i=0
	until [ "$(docker inspect -f '{{.State.Health.Status}}' "$(compose ps -q "$1")" 2>/dev/null)" = healthy ]; do
		i=$((i + 1))
		[ "$i" -lt 120 ] || die "$1 did not become healthy"
		sleep 0.5
	done
}
wait_healthy ingest
wait_healthy tagging
token=$(compose run --rm -T migrate publishers add compose-test 2>/dev/null)
[ -n "$token" ] || die "could not add a publisher"
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

# kill_and_restart SERVICE: SIGKILL its container and start it again unless
# its restart policy does (without waiting for it: events keep flowing).
# Prints how it came back.
kill_and_restart() {
	id=$(compose ps -q "$1")
	docker kill -s KILL "$id" >/dev/null
	sleep 1
	if [ "$(docker inspect -f '{{.State.Running}}' "$id")" != true ]; then
		compose start "$1" >/dev/null 2>&1
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

echo "compose-test: publishing $((batches * per)) events over NNG; SIGKILL of tagging, then ingest, midway"
(
	b=0
	while [ "$b" -lt "$batches" ]; do
		send_until_acked "$work/batch-$b.json" || exit 1
		b=$((b + 1))
		sleep 0.2 # a steady publisher, so the kills land mid-stream
	done
) &
sender=$!
until [ -s "$work/batch-4.json.ack" ]; do sleep 0.1; done
tagging_killed_at=$(find "$work" -name '*.ack' -size +0 | wc -l)
tagging_how=$(kill_and_restart tagging)
until [ -s "$work/batch-20.json.ack" ]; do sleep 0.1; done
killed_at=$(find "$work" -name '*.ack' -size +0 | wc -l)
how=$(kill_and_restart ingest)
wait "$sender" || die "a batch was never acked"
wait_healthy ingest
wait_healthy tagging

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

# Tagging catches up: its cursors reach the heads of every partition.
lag_sql="SELECT coalesce(sum(h.head - coalesce(c.seq, 0)), -1) FROM stream_heads h
	LEFT JOIN consumer_cursors c ON c.stream = h.stream AND c.partition = h.partition
	AND c.consumer = 'tagging' WHERE h.stream = 'events'"
i=0
until [ "$(sql "$lag_sql")" = 0 ]; do
	i=$((i + 1))
	[ "$i" -lt 240 ] || die "tagging did not catch up (lag $(sql "$lag_sql"))"
	sleep 0.5
done
applied=$(sql "SELECT sum(seq) FROM consumer_cursors WHERE consumer = 'tagging' AND stream = 'events'")
orders_sent=$(sql "SELECT count(*) FROM events WHERE type = 'order_paid'")
orders_counted=$(sql "SELECT coalesce(sum(orders), 0) FROM customer_profiles")
customers=$(sql "SELECT count(DISTINCT customer_key) FROM events WHERE customer_key <> ''")
profiles=$(sql "SELECT count(*) FROM customer_profiles")

printf '\ncompose-test: SIGKILL of ingest after %s of %s NNG batches (%s)\n' \
	"$killed_at" "$batches" "$how"
printf 'compose-test: SIGKILL of tagging after %s of %s NNG batches (%s)\n' \
	"$tagging_killed_at" "$batches" "$tagging_how"
printf '  %-34s %s\n' "events sent (NNG + HTTP)" "$sent" \
	"acked accepted or duplicate" "$acked" \
	"rejected" "$rejected" \
	"stored" "$stored" \
	"stored, distinct event ids" "$distinct" \
	"partitions with a seq gap" "$gaps" \
	"send attempts that failed, retried" "$retries" \
	"records applied by tagging" "$applied" \
	"orders stored / counted by tagging" "$orders_sent / $orders_counted" \
	"customers / tagging profiles" "$customers / $profiles"
[ "$rejected" -eq 0 ] || die "events were rejected"
[ "$acked" -eq "$sent" ] || die "acked $acked of $sent"
[ "$stored" -eq "$sent" ] || die "stored $stored of $sent"
[ "$distinct" -eq "$sent" ] || die "an event was stored twice"
[ "$gaps" -eq 0 ] || die "a partition has a seq gap"
[ "$applied" -eq "$stored" ] || die "tagging applied $applied of $stored"
[ "$orders_counted" -eq "$orders_sent" ] ||
	die "tagging counted $orders_counted orders of $orders_sent"
[ "$profiles" -eq "$customers" ] || die "$profiles profiles for $customers customers"
echo "compose-test: 1 passed, 0 failed"
