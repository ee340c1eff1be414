#!/bin/sh
# run.sh - `make bench`: Pond's benchmarks on a throwaway durable cluster,
# each figure measured beside its anchor in the same run, written into
# BENCHMARKS.md (between the "bench:begin" and "bench:end" markers; the
# hand-written notes around them are kept).
#
#   sh bench/run.sh BUILDDIR
#
# What runs, in order (DESIGN.md's goals in BENCHMARKS.md):
#   1. a warm-up of every writer;
#   2. catch-up: the bench consumer catches up and stops, N events arrive,
#      it starts again; records/s from the cursors until it is caught up;
#   3. ROUNDS rounds of, side by side: COPY of the same rows (the store's
#      ceiling), ingest over NNG, PgQ's insert_event; the figure is the
#      median of the rounds, the ratio the median of each round's ratio;
#   4. ingest over HTTP;
#   5. ingest's peak RSS and CPU per million events from /proc; then
#      tagging, the scheduler and reporting, each started catchup_n events
#      behind (events/s, CPU per million, RSS), and the end-to-end run at
#      5,000 events/s (ack -> tag change, ack -> touch, where the CPU and
#      PostgreSQL's time went);
#   6. report latency: a generated history loaded into the reporting fact
#      tables of a database of its own, every report asked over NNG.
#
# The cluster keeps PostgreSQL's durable defaults (fsync on,
# synchronous_commit on), unlike the tests'. Everything listens on
# 127.0.0.1 only. The cluster and every process started here are gone when
# the script ends, however it ends; the logs stay in build/bench-artifacts.
#
# Environment:
#   BENCH               quick (default: within 15 minutes on 2 cores), full
#                       (the large sizes), or smoke (a minute, to check this
#                       script; it writes build/bench-artifacts/BENCHMARKS.md)
#   POND_BENCH_CLIENTS  concurrent publishers / connections (default 4)
#   BENCH_ONLY          "reports": only step 6, rewriting only its table
#                       (bench:reports markers) of BENCHMARKS.md;
#                       "pipeline": every step but 6, rewriting only the
#                       main table; the sizes still follow BENCH
#   POND_BENCH_OUT      the file to rewrite (default BENCHMARKS.md)
set -eu

die() {
	echo "bench: $*" >&2
	exit 1
}

say() {
	echo "bench: $*"
}

[ $# -eq 1 ] || die "usage: sh bench/run.sh BUILDDIR"
root=$(cd "$(dirname "$0")/.." && pwd -P)
[ -x "$1/bin/pond-bench-ingest" ] ||
	die "$1/bin/pond-bench-ingest not found (make BUILD=release bench-build)"
bin=$(cd "$1/bin" && pwd -P)
mode=${BENCH:-quick}
case $mode in
quick) rounds=5 warm=20000 ingest_n=200000 http_n=100000 catchup_n=200000 e2e_s=20
	catchup_limit_s=900
	rpt_customers=100000 rpt_events=2000000 rpt_requests=20 ;;
full) rounds=5 warm=50000 ingest_n=1000000 http_n=500000 catchup_n=1000000 e2e_s=120
	catchup_limit_s=3600
	rpt_customers=1000000 rpt_events=20000000 rpt_requests=20 ;;
smoke) rounds=1 warm=2000 ingest_n=5000 http_n=2000 catchup_n=5000 e2e_s=2
	catchup_limit_s=300
	rpt_customers=2000 rpt_events=40000 rpt_requests=2 ;;
*) die "BENCH must be quick, full or smoke, not '$mode'" ;;
esac
only=${BENCH_ONLY:-}
case $only in
'' | reports | pipeline) ;;
*) die "BENCH_ONLY must be empty, reports or pipeline, not '$only'" ;;
esac
clients=${POND_BENCH_CLIENTS:-4}
e2e_rate=5000
out=${POND_BENCH_OUT:-$root/BENCHMARKS.md}
[ "$mode" != smoke ] || out=${POND_BENCH_OUT:-$root/build/bench-artifacts/BENCHMARKS.md}
psql=/usr/lib/postgresql/15/bin/psql
parts=16
hz=$(getconf CLK_TCK)

# --- ports, directories, teardown -------------------------------------------

# shellcheck source=mk/ports.sh
. "$root/mk/ports.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pond-bench.XXXXXX")
chmod 755 "$tmp" # the postgres user must reach its cluster inside
pgdir=$tmp/pg
artifacts=$root/build/bench-artifacts
rm -rf "$artifacts"
mkdir -p "$artifacts"
ingest_pid=
consumer_pid=
service_pids=

# shellcheck source=mk/proc.sh
. "$root/mk/proc.sh"

# teardown runs once, on every way out.
# shellcheck disable=SC2317 # called from traps
teardown() {
	trap - EXIT INT TERM HUP
	[ -z "$consumer_pid" ] || stop_proc "$consumer_pid"
	for pid in $service_pids; do stop_proc "$pid"; done
	[ -z "$ingest_pid" ] || stop_proc "$ingest_pid"
	stop_cluster "$pgdir" "$artifacts"
	rm -rf "$tmp"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# --- small helpers -----------------------------------------------------------

sql() {
	"$psql" "$POND_DSN" -X -q -v ON_ERROR_STOP=1 -tAc "$1"
}

# field KEY LINE prints the value of KEY=VALUE in a generator's result line.
field() {
	echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# cpu_ticks PID prints the process's user + system time in clock ticks.
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# busy_ticks prints the machine's busy CPU ticks, all cores (/proc/stat).
busy_ticks() {
	awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# pg_ticks prints the CPU ticks of the bench cluster: its postmaster and
# every process it has started (backends, WAL writer, checkpointer, ...).
pg_ticks() {
	pm=$(sed -n 1p "$pgdir/data/postmaster.pid")
	for p in $pm $(ps -o pid= --ppid "$pm"); do
		cat "/proc/$p/stat" 2>/dev/null
	done | awk '{ t += $14 + $15 } END { print t + 0 }'
}

# statements_table COLUMNS WHERE LIMIT prints the markdown rows "| `query` |
# COLUMNS | share |" of the pond database's statements in
# pg_stat_statements that satisfy WHERE, most time first: COLUMNS is SQL
# text (cells joined with ' | '), share a statement's part of the time of
# the rows kept.
statements_table() {
	sql "SELECT '| \`' || CASE WHEN length(q) > 60
		THEN left(q, 60) || '…' ELSE q END || '\` | ' || $1 || ' | '
		|| round((100 * total_exec_time / sum(total_exec_time) OVER ())::numeric)
		|| ' % |'
		FROM (SELECT regexp_replace(query, '\s+', ' ', 'g') q, *
			FROM pg_stat_statements) s
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'pond')
		AND $2 ORDER BY total_exec_time DESC LIMIT $3"
}

# hwm_mib PID prints the process's peak resident set (VmHWM) in MiB.
hwm_mib() {
	awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

# median FILE prints the median of the numbers in FILE, one a line.
median() {
	sort -g "$1" | awk '{ v[NR] = $1 } END {
		if (NR % 2) print v[(NR + 1) / 2];
		else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# calc EXPR prints an awk expression's value.
calc() {
	awk "BEGIN { printf \"%s\", $1 }"
}

# fmt EXPR prints a number rounded, with thousands separated by commas.
fmt() {
	calc "$1" | awk '{ s = sprintf("%.0f", $1); o = "";
		while (length(s) > 3) { o = "," substr(s, length(s) - 2) o;
			s = substr(s, 1, length(s) - 3) }
		print s o }'
}

# check_ingest LINE EXPECTED fails the run unless every event was accepted.
check_ingest() {
	if [ "$(field accepted "$1")" != "$2" ] ||
		[ "$(field errors "$1")" != 0 ]; then
		die "not every event was accepted: $1 (see $artifacts)"
	fi
}

# --- the cluster, the schema, the services ----------------------------------

say "mode $mode, $clients clients, $rounds rounds; logs in $artifacts"
free_port
pgport=$port
dsn=$(POND_PG_DURABLE=1 sh "$root/tests/pg.sh" start "$pgdir" "$pgport")
# pg_stat_statements says where ingest's time inside PostgreSQL goes; it
# must be preloaded, hence a restart. Its cost falls on every writer alike.
"$psql" "$dsn" -X -q -c \
	"ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
sh "$root/tests/pg.sh" halt "$pgdir"
POND_PG_DURABLE=1 sh "$root/tests/pg.sh" start "$pgdir" "$pgport" >/dev/null
"$psql" "$dsn" -X -q -c "CREATE DATABASE pond"
POND_DSN=$(echo "$dsn" | sed 's/dbname=postgres$/dbname=pond/')
export POND_DSN
if [ "$(sql 'SHOW fsync')" != on ] ||
	[ "$(sql 'SHOW synchronous_commit')" != on ]; then
	die "the cluster is not durable (fsync, synchronous_commit)"
fi
pg_version=$(sql 'SHOW server_version')
"$bin/pond" migrate --partitions "$parts" >/dev/null
POND_TOKEN=$("$bin/pond" publishers add bench 2>/dev/null)
export POND_TOKEN
sql "CREATE EXTENSION pg_stat_statements"
sql "CREATE EXTENSION pgq" >/dev/null
sql "SELECT pgq.create_queue('bench')" >/dev/null
sql "CREATE TABLE bench_copy (LIKE events INCLUDING ALL)"
sql "CREATE TABLE bench_consumed (partition int PRIMARY KEY,
	records bigint NOT NULL, bytes bigint NOT NULL)"

free_port
nng_url=tcp://127.0.0.1:$port
free_port
pub_url=tcp://127.0.0.1:$port
free_port
http_port=$port
env POND_HTTP_ADDR=127.0.0.1 POND_HTTP_PORT="$http_port" \
	POND_INGEST_URL="$nng_url" POND_EVENTS_PUB_URL="$pub_url" \
	"$bin/pond-ingest" >"$artifacts/ingest.log" 2>&1 &
ingest_pid=$!

# wait_started LOG NAME waits for a service's "event=started" line.
wait_started() {
	i=0
	until grep -q "event=started" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ "$i" -lt 200 ] || die "$2 did not start; see $1"
		sleep 0.1
	done
}
wait_started "$artifacts/ingest.log" pond-ingest

# start_service NAME VAR=VALUE...: bin/pond-NAME on loopback, logging into
# the artifacts; waits until it has started.
start_service() {
	name=$1
	shift
	env POND_HTTP_ADDR=127.0.0.1 POND_HTTP_PORT=0 "$@" "$bin/pond-$name" \
		>"$artifacts/$name.log" 2>&1 &
	service_pids="$service_pids $!"
	last_pid=$!
	wait_started "$artifacts/$name.log" "pond-$name"
}

# Steps 1-5 and the end-to-end run; BENCH_ONLY=reports skips to step 6.
if [ "$only" != reports ]; then

# --- the generators ----------------------------------------------------------

# ingest N RUN: N events over NNG; prints the result line.
ingest() {
	"$bin/pond-bench-ingest" --url "$nng_url" --clients "$clients" \
		--events "$1" --run "$2"
}

# store MODE N RUN SEQBASE: N events by COPY or PgQ; prints the result line.
store() {
	"$bin/pond-bench-store" --mode "$1" --clients "$clients" \
		--events "$2" --run "$3" --seq-base "$4" --partitions "$parts"
}

say "warm-up: $warm events through each writer"
line=$(ingest "$warm" w)
check_ingest "$line" "$warm"
for m in copy pgq; do
	line=$(store "$m" "$warm" w 0)
	[ "$(field errors "$line")" = 0 ] || die "$m failed: $line"
done

# --- catch-up ----------------------------------------------------------------

# lag_of CONSUMER STREAM: the SQL for the records CONSUMER has not applied.
lag_of() {
	echo "SELECT coalesce(sum(h.head - coalesce(c.seq, 0)), 0)
	FROM stream_heads h LEFT JOIN consumer_cursors c
	ON c.consumer = '$1' AND c.stream = h.stream
	AND c.partition = h.partition WHERE h.stream = '$2'"
}
lag_sql=$(lag_of bench events)

start_consumer() {
	env POND_HTTP_ADDR=127.0.0.1 POND_HTTP_PORT=0 \
		POND_BENCH_SUB_URLS="$pub_url" \
		"$bin/pond-bench-consumer" >>"$artifacts/consumer.log" 2>&1 &
	consumer_pid=$!
}

# wait_caught_up FILE [LAG_SQL]: samples "time lag" into FILE every 0.1 s
# until the lag is 0 (at most catchup_limit_s seconds).
wait_caught_up() {
	: >"$1"
	deadline=$(($(date +%s) + catchup_limit_s))
	while :; do
		lag=$(sql "${2:-$lag_sql}")
		echo "$(date +%s.%N) $lag" >>"$1"
		[ "$lag" -gt 0 ] || break
		[ "$(date +%s)" -lt "$deadline" ] ||
			die "the consumer did not catch up (lag $lag)"
		sleep 0.1
	done
}

say "catch-up: the consumer catches up on the warm-up, stops, $catchup_n events arrive"
start_consumer
wait_caught_up "$tmp/lag0"
stop_proc "$consumer_pid"
consumer_pid=
line=$(ingest "$catchup_n" k)
check_ingest "$line" "$catchup_n"
say "catch-up: consumer started with $(sql "$lag_sql") records behind"
t_start=$(date +%s.%N)
start_consumer
wait_caught_up "$tmp/lag"
consumer_ticks=$(cpu_ticks "$consumer_pid")
stop_proc "$consumer_pid"
consumer_pid=
consumed=$(sql "SELECT sum(records) FROM bench_consumed")
[ "$consumed" -eq $((warm + catchup_n)) ] ||
	die "the consumer applied $consumed records, not $((warm + catchup_n))"
# From the samples: the first one that shows progress, and the last (lag 0).
catchup=$(awk -v n="$catchup_n" -v t0="$t_start" '
	first == "" && $2 < n { first = $1; lag = $2 }
	{ last = $1 }
	END { wall = n / (last - t0)
		# Too quick to see two samples: the wall rate is all there is.
		rate = last > first ? lag / (last - first) : wall
		printf "%.0f %.0f %.2f", wall, rate, last - t0 }' "$tmp/lag")
catchup_wall=$(echo "$catchup" | cut -d' ' -f1)
catchup_rate=$(echo "$catchup" | cut -d' ' -f2)
catchup_secs=$(echo "$catchup" | cut -d' ' -f3)
consumer_cpu=$(calc "$consumer_ticks / $hz / $catchup_n * 1e6")
say "catch-up: ${catchup_rate} records/s applied (${catchup_wall}/s from start, ${catchup_secs} s)"

# --- ingest beside COPY and PgQ ----------------------------------------------

: >"$tmp/copy"
: >"$tmp/ingest"
: >"$tmp/pgq"
: >"$tmp/ratio"
ingest_ticks=0
sql "SELECT pg_stat_statements_reset()" >/dev/null
for r in $(seq 1 "$rounds"); do
	cl=$(store copy "$ingest_n" "r$r" $((r * 1000000000)))
	t0=$(cpu_ticks "$ingest_pid")
	il=$(ingest "$ingest_n" "r$r")
	ingest_ticks=$((ingest_ticks + $(cpu_ticks "$ingest_pid") - t0))
	check_ingest "$il" "$ingest_n"
	pl=$(store pgq "$ingest_n" "r$r" 0)
	if [ "$(field errors "$cl")" != 0 ] || [ "$(field errors "$pl")" != 0 ]; then
		die "COPY or PgQ failed: $cl / $pl"
	fi
	field rate "$cl" >>"$tmp/copy"
	field rate "$il" >>"$tmp/ingest"
	field rate "$pl" >>"$tmp/pgq"
	calc "$(field rate "$il") / $(field rate "$cl")" |
		awk '{ printf "%.2f\n", $1 }' >>"$tmp/ratio"
	echo "$(field p50_ms "$il") $(field p99_ms "$il")" >>"$tmp/ingest_lat"
	echo "$(field p50_ms "$cl") $(field p99_ms "$cl")" >>"$tmp/copy_lat"
	say "round $r: COPY $(field rate "$cl")/s, ingest $(field rate "$il")/s, PgQ $(field rate "$pl")/s"
done
rss_nng=$(hwm_mib "$ingest_pid")
# Ingest's statements are the ones that are neither COPY's nor PgQ's (nor
# this script's); per batch, in the order of the time they took in all.
batches=$((rounds * ingest_n / 500))
statements=$(statements_table \
	"round((total_exec_time / $batches)::numeric, 1)" \
	"query !~ '(bench_copy|pgq|pg_stat|pg_database|stream_heads h LEFT)'
	AND calls >= $batches / 2" 8)
ingest_cpu=$(calc "$ingest_ticks / $hz / ($rounds * $ingest_n) * 1e6")
copy_rate=$(median "$tmp/copy")
ingest_rate=$(median "$tmp/ingest")
pgq_rate=$(median "$tmp/pgq")
ratio=$(median "$tmp/ratio")
all_ingest=$(tr '\n' ' ' <"$tmp/ingest" | sed 's/ $//; s/ /, /g')
all_copy=$(tr '\n' ' ' <"$tmp/copy" | sed 's/ $//; s/ /, /g')
all_pgq=$(tr '\n' ' ' <"$tmp/pgq" | sed 's/ $//; s/ /, /g')
ingest_lat=$(sort -g "$tmp/ingest_lat" | sed -n "$(((rounds + 1) / 2))p")
copy_lat=$(sort -g "$tmp/copy_lat" | sed -n "$(((rounds + 1) / 2))p")

# --- HTTP ---------------------------------------------------------------------

say "HTTP: $http_n events in bodies of 100"
t0=$(cpu_ticks "$ingest_pid")
hl=$("$bin/pond-bench-http" --port "$http_port" --clients "$clients" \
	--events "$http_n" --run h)
http_ticks=$(($(cpu_ticks "$ingest_pid") - t0))
if [ "$(field accepted "$hl")" != "$http_n" ] ||
	[ "$(field non_200 "$hl")" != 0 ]; then
	die "not every HTTP event was accepted: $hl"
fi
http_rate=$(field rate "$hl")
http_cpu=$(calc "$http_ticks / $hz / $http_n * 1e6")
rss_all=$(hwm_mib "$ingest_pid")
say "HTTP: $http_rate events/s"

# --- end to end ----------------------------------------------------------------

# The consumers start now, one after the other, each catchup_n events
# behind: how fast each catches up is its throughput, its CPU over that its
# cost per event. Whatever ran before, each starts the same distance behind:
# its cursors are put ceil(catchup_n / parts) records before each head of
# the streams it reads (the records before are skipped; the store is the
# bench's own). catch_up NAME STREAMS VAR=VALUE...: starts pond-NAME and
# waits until it has applied every record of STREAMS (comma-separated);
# sets NAME_behind (events), NAME_rate, NAME_cpu (CPU-s per million
# events) and NAME_pid.
catch_up() {
	name=$1 streams=$2
	shift 2
	in_list=$(echo "$streams" | sed "s/^/'/; s/,/', '/g; s/\$/'/")
	sql "INSERT INTO consumer_cursors (consumer, stream, partition, seq)
		SELECT '$name', stream, partition,
		greatest(head - ceil($catchup_n / $parts.0)::bigint, 0)
		FROM stream_heads WHERE stream IN ($in_list)
		ON CONFLICT (consumer, stream, partition)
		DO UPDATE SET seq = EXCLUDED.seq"
	behind=$(sql "SELECT sum(h.head - c.seq) FROM stream_heads h
		JOIN consumer_cursors c ON c.consumer = '$name'
		AND c.stream = h.stream AND c.partition = h.partition
		WHERE h.stream = 'events'")
	say "$name: catching up on $behind events"
	t0=$(date +%s.%N)
	start_service "$name" "$@"
	lag_all=$(for st in $(echo "$streams" | tr , ' '); do
		printf '(%s) + ' "$(lag_of "$name" "$st")"
	done)
	wait_caught_up "$tmp/${name}_lag" "SELECT $lag_all 0"
	secs=$(calc "$(date +%s.%N) - $t0")
	eval "${name}_pid=$last_pid"
	eval "${name}_behind=$behind"
	eval "${name}_rate=$(calc "$behind / $secs")"
	eval "${name}_cpu=$(calc "$(cpu_ticks "$last_pid") / $hz / $behind * 1e6")"
	say "$name: $(fmt "$behind / $secs") events/s"
}
free_port
tags_pub=tcp://127.0.0.1:$port
free_port
touches_pub=tcp://127.0.0.1:$port
free_port
gateway_url=tcp://127.0.0.1:$port
free_port
reporting_url=tcp://127.0.0.1:$port
catch_up tagging events POND_EVENTS_SUB_URLS="$pub_url" \
	POND_TAG_CHANGES_PUB_URL="$tags_pub"
catch_up scheduler events,tag_changes POND_EVENTS_SUB_URLS="$pub_url" \
	POND_TAG_CHANGES_SUB_URLS="$tags_pub" POND_TOUCHES_PUB_URL="$touches_pub" \
	POND_GATEWAY_URLS="wecom_message=$gateway_url" POND_QUIET_HOURS=
catch_up reporting events,tag_changes,touches POND_EVENTS_SUB_URLS="$pub_url" \
	POND_TAG_CHANGES_SUB_URLS="$tags_pub" POND_TOUCHES_SUB_URLS="$touches_pub" \
	POND_REPORTING_URL="$reporting_url"
gateway_token=$("$bin/pond" publishers add bench-gateway 2>/dev/null)
start_service gateway-sim POND_GATEWAY_URLS="wecom_message=$gateway_url" \
	POND_INGEST_URL="$nng_url" POND_GATEWAY_TOKEN="$gateway_token"
gateway_pid=$last_pid

# A welcome touch for every new customer, defined after the catch-up so that
# only the end-to-end run's customers are touched.
echo '{"id": "bench-welcome", "name": "welcome", "channel": "wecom_message",
	"template": "welcome", "trigger": {"event": "contact_added"},
	"cost_per_touch_fen": 1}' | "$bin/pond" campaigns create - >/dev/null

say "end to end: $e2e_rate events/s for $e2e_s s, ack -> tag change, ack -> touch"
# Where the machine's CPU goes during the run: every process's ticks
# before and after (the generator is what the machine spent beyond them).
e2e_procs="ingest:$ingest_pid tagging:$tagging_pid scheduler:$scheduler_pid reporting:$reporting_pid gateway:$gateway_pid"
e2e_ticks() {
	echo "busy:$(busy_ticks) postgres:$(pg_ticks)"
	for np in $e2e_procs; do echo "${np%%:*}:$(cpu_ticks "${np#*:}")"; done
}
sql "SELECT pg_stat_statements_reset()" >/dev/null
e2e_t0=$(date +%s.%N)
e2e_ticks >"$tmp/e2e_cpu0"
el=$("$bin/pond-bench-e2e" --url "$nng_url" --rate "$e2e_rate" \
	--seconds "$e2e_s" --tags-sub "$tags_pub" --touches-sub "$touches_pub" \
	--run e2e)
e2e_ticks >"$tmp/e2e_cpu1"
e2e_secs=$(calc "$(date +%s.%N) - $e2e_t0")
# e2e_cpu: "name cores" per process (CPU-s per second of the run), then
# the rest (the generator, the kernel, everything else on the machine).
e2e_cpu=$(cat "$tmp/e2e_cpu0" "$tmp/e2e_cpu1" | tr ' ' '\n' | awk -F: \
	-v hz="$hz" -v secs="$e2e_secs" '
	!($1 in a) { a[$1] = $2; order[n++] = $1; next }
	{ d[$1] = $2 - a[$1] }
	END {
		rest = d["busy"]
		for (i = 1; i < n; i++) rest -= d[order[i]]
		printf "all %.2f", d["busy"] / hz / secs
		for (i = 1; i < n; i++)
			printf ", %s %.2f", order[i], d[order[i]] / hz / secs
		printf ", generator and the rest %.2f\n", rest / hz / secs
	}')
e2e_n=$((e2e_rate * e2e_s))
if [ "$(field acked "$el")" != "$e2e_n" ] ||
	[ "$(field tag_changes "$el")" != "$e2e_n" ] ||
	[ "$(field touchs "$el")" != "$e2e_n" ]; then
	die "end to end: not every event was acked, tagged and touched: $el"
fi
for name in tagging scheduler reporting; do
	eval "rss_$name=$(hwm_mib "$(eval echo "\$${name}_pid")")"
done
# The statements that took PostgreSQL's time during the run, per event.
e2e_statements=$(statements_table \
	"round((calls / $e2e_secs)::numeric) || ' | '
	|| round((1000 * total_exec_time / $e2e_n)::numeric, 1)" \
	"query !~ '(pg_stat|pg_database)'" 10)
say "end to end: cores busy: $e2e_cpu"
say "end to end: tag change p50 $(field tag_change_p50_ms "$el") ms, p99 $(field tag_change_p99_ms "$el") ms; touch p50 $(field touch_p50_ms "$el") ms, p99 $(field touch_p99_ms "$el") ms"

fi # steps 1-5

# --- reports ---------------------------------------------------------------------

# bench_reports: a generated history of rpt_customers customers and about
# rpt_events events straight into the reporting fact tables of a database
# of its own (the rows pond-reporting's consumers would have built; its
# rollups kept by their triggers as for the consumers), then every report
# rpt_requests times, one at a time, over NNG. Sets reports_rows (the
# table rows) and reports_load.
bench_reports() {
	"$psql" "$dsn" -X -q -c "CREATE DATABASE reports"
	rdsn=$(echo "$dsn" | sed 's/dbname=postgres$/dbname=reports/')
	POND_DSN=$rdsn "$bin/pond" migrate --partitions "$parts" >/dev/null
	rtoken=$(POND_DSN=$rdsn "$bin/pond" tokens add bench --role read 2>/dev/null)
	end=$(($(date +%s) / 86400 * 86400))
	say "reports: loading $rpt_customers customers, about $rpt_events events"
	rl=$(POND_DSN=$rdsn "$bin/pond-bench-reports" --load 1 \
		--customers "$rpt_customers" --events "$rpt_events" --end "$end")
	reports_load="$(fmt "$(field facts "$rl")") facts in $(field load_s "$rl") s"
	free_port
	rurl=tcp://127.0.0.1:$port
	free_port
	nowhere=tcp://127.0.0.1:$port
	start_service reporting POND_DSN="$rdsn" POND_REPORTING_URL="$rurl" \
		POND_EVENTS_SUB_URLS="$nowhere" POND_TAG_CHANGES_SUB_URLS="$nowhere" \
		POND_TOUCHES_SUB_URLS="$nowhere"
	rss_reporting_pid=$last_pid
	"$bin/pond-bench-reports" --url "$rurl" --token "$rtoken" \
		--requests "$rpt_requests" --end "$end" >"$tmp/reports" ||
		die "reports: a report failed (see $artifacts/reporting.log)"
	rss_reporting=$(hwm_mib "$rss_reporting_pid")
	reports_rows=$(awk -F' [a-z0-9_]+=' '{
		sub(/^report=/, "", $1)
		ok = ($3 + 0 <= 50) ? "yes" : "**no**"
		printf "| %s | %s | **%s** | %s | %s |\n", $1, $2, $3, $4, ok
	}' "$tmp/reports")
	cat "$tmp/reports"
}
[ "$only" = pipeline ] || bench_reports

# --- BENCHMARKS.md -------------------------------------------------------------

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mem_gib=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
commit=$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)
command="make bench"
[ "$mode" = quick ] || command="make bench BENCH=$mode"
[ -z "$only" ] || command="$command BENCH_ONLY=$only"

# verdict OK: "yes" or "**no**".
verdict() {
	if [ "$1" = 1 ]; then echo yes; else echo "**no**"; fi
}
if [ "$only" != reports ]; then
	ok_rate=$(calc "($ingest_rate >= 40000) ? 1 : 0")
	ok_ratio=$(calc "($ratio >= 0.6) ? 1 : 0")
	ok_catchup=$(calc "($catchup_rate >= 50000) ? 1 : 0")
	ok_rss=$(calc "($rss_all <= 64 && $rss_tagging <= 64 && $rss_scheduler <= 64 && $rss_reporting <= 64) ? 1 : 0")
	ok_e2e=$(calc "($(field tag_change_p99_ms "$el") <= 50) ? 1 : 0")

cat >"$tmp/block" <<EOF
<!-- bench:begin (written by bench/run.sh; edits here are lost) -->
Command: \`$command\` ($rounds rounds, $clients concurrent clients,
batches of 500, 16 partitions) at commit \`$commit\`, $(date -u '+%Y-%m-%d %H:%M UTC').
Machine: $(nproc) cores, $mem_gib GiB, $cpu_model; PostgreSQL $pg_version with
\`fsync=on\`, \`synchronous_commit=on\` (durable defaults), generators, service and
database on the same machine.

| # | what | figure | beside it, same run | ratio | goal | met |
|---|---|---|---|---|---|---|
| 1 | ingest, NNG REQ/REP, $clients publishers × 500-event batches, acked after commit | **$(fmt "$ingest_rate") events/s** (rounds: $all_ingest; batch p50/p99 $(echo "$ingest_lat" | sed 's/ / \/ /') ms) | COPY, same rows, same indexes, 500-row transactions: $(fmt "$copy_rate") events/s (rounds: $all_copy; p50/p99 $(echo "$copy_lat" | sed 's/ / \/ /') ms) | **$ratio** × COPY | ≥ 40,000/s and ≥ 0.6 × COPY | $(verdict "$ok_rate") / $(verdict "$ok_ratio") |
| 1 | PgQ \`pgq.insert_event\`, 500 events a transaction | $(fmt "$pgq_rate") events/s (rounds: $all_pgq) | ingest: $(fmt "$ingest_rate") events/s | ingest = $(calc "$ingest_rate / $pgq_rate" | awk '{ printf "%.2f", $1 }') × PgQ | — | — |
| 2 | ingest, HTTP \`POST /v1/events\`, $clients keep-alive connections × 100-event JSON bodies | **$(fmt "$http_rate") events/s** ($http_n events) | ingest over NNG: $(fmt "$ingest_rate") events/s | $(calc "$http_rate / $ingest_rate" | awk '{ printf "%.2f", $1 }') × NNG | — | — |
| 3 | end to end at a steady $(fmt "$e2e_rate") events/s for $e2e_s s: event acked → tag change committed (each event a new customer's \`contact_added\`) | **p50 $(field tag_change_p50_ms "$el") ms, p99 $(field tag_change_p99_ms "$el") ms**, max $(field tag_change_max_ms "$el") ms ($(fmt "$(field tag_changes "$el")") events) | ingest's own batch round trip, NNG rounds: p50/p99 $(echo "$ingest_lat" | sed 's/ / \/ /') ms | — | p99 ≤ 50 ms | $(verdict "$ok_e2e") |
| 3 | the same run: event acked → touch committed by the scheduler (a welcome campaign on \`contact_added\`) | **p50 $(field touch_p50_ms "$el") ms, p99 $(field touch_p99_ms "$el") ms**, max $(field touch_max_ms "$el") ms ($(fmt "$(field touchs "$el")") touches) | ack → tag change above | — | — | — |
| 3 | the same run: where the CPU went, in cores (CPU-s per second of the run, $(nproc) cores in all) | **$e2e_cpu** | — | — | — | — |
| 4 | catch-up: consumer stopped while $(fmt "$catchup_n") events arrive, then started | **$(fmt "$catchup_rate") records/s** applied (from the cursors, first move to caught up) | $(fmt "$catchup_wall") records/s counting start-up ($catchup_secs s in all) | — | ≥ 50,000/s | $(verdict "$ok_catchup") |
| 4 | catch-up of pond-tagging, started $(fmt "$tagging_behind") events behind | **$(fmt "$tagging_rate") events/s** applied (profiles, tags, tag changes) | the bench consumer: $(fmt "$catchup_rate") records/s | — | — | — |
| 4 | catch-up of pond-scheduler (events and tag changes; no campaign yet), started $(fmt "$scheduler_behind") events behind | **$(fmt "$scheduler_rate") events/s** | the bench consumer: $(fmt "$catchup_rate") records/s | — | — | — |
| 4 | catch-up of pond-reporting (all three streams into its fact tables), started $(fmt "$reporting_behind") events behind | **$(fmt "$reporting_rate") events/s** | the bench consumer: $(fmt "$catchup_rate") records/s | — | — | — |
| 6 | peak RSS (VmHWM) of pond-ingest | **$rss_all MiB** after NNG and HTTP ($rss_nng MiB after the NNG rounds) | — | — | ≤ 64 MiB | $(verdict "$ok_rss") |
| 6 | peak RSS (VmHWM) of pond-tagging, pond-scheduler, pond-reporting after their catch-up and the end-to-end run | **$rss_tagging / $rss_scheduler / $rss_reporting MiB** | — | — | ≤ 64 MiB | $(verdict "$ok_rss") |
| 7 | CPU per 1M events, pond-ingest (user + system) | **$(calc "$ingest_cpu" | awk '{ printf "%.1f", $1 }') CPU-s** over NNG; $(calc "$http_cpu" | awk '{ printf "%.1f", $1 }') CPU-s over HTTP | — | — | — | — |
| 7 | CPU per 1M events during catch-up (start-up included): pond-tagging, pond-scheduler, pond-reporting | **$(calc "$tagging_cpu" | awk '{ printf "%.1f", $1 }') / $(calc "$scheduler_cpu" | awk '{ printf "%.1f", $1 }') / $(calc "$reporting_cpu" | awk '{ printf "%.1f", $1 }') CPU-s** | — | — | — | — |
| 7 | CPU per 1M records, bench consumer during catch-up | **$(calc "$consumer_cpu" | awk '{ printf "%.1f", $1 }') CPU-s** (decode + one row per batch; start-up included) | — | — | — | — |

Where ingest's batches spend their time inside PostgreSQL in the NNG rounds
(\`pg_stat_statements\`, execution time per 500-event batch, summed over the
store workers running at once; a COMMIT's WAL flush is not counted there):

| statement | ms per batch | share |
|---|---|---|
$statements

Where PostgreSQL's time goes during the end-to-end run (item 3;
\`pg_stat_statements\` over the run, every service's statements, execution
time per event of the run; a COMMIT's WAL flush is not counted there):

| statement | calls/s | µs per event | share |
|---|---|---|---|
$e2e_statements

Report latency (item 5): the table between the bench:reports markers below.
<!-- bench:end -->
EOF
fi

if [ "$only" != pipeline ]; then
	cat >"$tmp/reports_block" <<EOF
<!-- bench:reports:begin (written by bench/run.sh; edits here are lost) -->
Command: \`$command\` at commit \`$commit\`, $(date -u '+%Y-%m-%d %H:%M UTC'),
on $(nproc) cores, $mem_gib GiB. $(fmt "$rpt_customers") customers,
$reports_load, loaded straight into the reporting fact tables; the period is
the last 30 days, as_of the end of the history; $rpt_requests requests a
report, one at a time over NNG REQ/REP, after one unmeasured;
pond-reporting's peak RSS $rss_reporting MiB.

| report | p50 ms | p95 ms | max ms | p95 ≤ 50 ms |
|---|---|---|---|---|
$reports_rows
<!-- bench:reports:end -->
EOF
fi

# replace_block NAME FILE: the text between the NAME markers of $out
# becomes FILE (markers included), or FILE is appended without them.
replace_block() {
	if [ -f "$out" ] && grep -q "^<!-- $1:begin" "$out"; then
		awk -v block="$2" -v name="$1" '
			index($0, "<!-- " name ":begin") == 1 {
				while ((getline l < block) > 0) print l
				skip = 1
				next
			}
			index($0, "<!-- " name ":end") == 1 { skip = 0; next }
			!skip { print }' "$out" >"$tmp/out"
		cat "$tmp/out" >"$out"
	else
		cat "$2" >>"$out"
	fi
}
[ "$only" = reports ] || replace_block bench "$tmp/block"
[ "$only" = pipeline ] || replace_block bench:reports "$tmp/reports_block"
say "done; $out rewritten:"
if [ "$only" != reports ]; then
	sed -n '/^| # /,/^<!-- bench:end/p' "$out" | sed '$d'
fi
if [ "$only" != pipeline ]; then
	sed -n '/^| report /,/^<!-- bench:reports:end/p' "$out" | sed '$d'
fi
