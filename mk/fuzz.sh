#!/bin/sh
# Runs every libFuzzer target of a BUILD=fuzz tree, one after the other and
# under nice, so that a long run does not starve other work on the machine.
#
#   FUZZ_TIME=600 sh mk/fuzz.sh build/fuzz [TARGET...]
#
# Each target first replays its seeds (fuzz/corpus/NAME) and the inputs of
# past findings (fuzz/regress/NAME, if any): that alone is the regression
# check. It then fuzzes until it has had FUZZ_TIME seconds of CPU (not of
# wall time: under nice on a busy machine the two differ a lot), in rounds
# of at most FUZZ_ROUND seconds that each resume from the corpus so far.
# New inputs are written to build/fuzz/corpus/NAME, a crash to
# build/fuzz/crashes/NAME-*. The exit status is non-zero when any target
# found something. A summary line per target goes to build/fuzz/NAME.stats.
set -eu

tree=$1
shift
budget=${FUZZ_TIME:-600}
round=${FUZZ_ROUND:-120}
targets=${*:-$(cd fuzz && ls fuzz_*.c | sed 's/\.c$//')}
status=0

# cpu_of prints the user+system seconds time(1) wrote to file $1; without
# time(1) the wall time of the round ($2) stands in.
timer=
[ -x /usr/bin/time ] && timer="/usr/bin/time -o $tree/time.out -f %U+%S"
cpu_of() {
	if [ -n "$timer" ]; then
		awk -F+ '{ printf "%d\n", $1 + $2 }' "$1"
	else
		echo "$2"
	fi
}

for t in $targets; do
	bin=$tree/bin/$t
	work=$tree/corpus/$t
	mkdir -p "$work" "$tree/crashes"
	set -- fuzz/corpus/$t
	[ -d fuzz/regress/$t ] && set -- "$@" fuzz/regress/$t
	echo "fuzz: $t: replaying $*"
	if ! "$bin" -runs=0 "$@" >"$tree/$t.replay.log" 2>&1; then
		echo "fuzz: $t: a seed or regression input fails" \
			"(see $tree/$t.replay.log)"
		status=1
		continue
	fi
	dict=
	[ -f fuzz/$t.dict ] && dict=-dict=fuzz/$t.dict
	cpu=0
	execs=0
	n=0
	: >"$tree/$t.log"
	while [ "$cpu" -lt "$budget" ]; do
		left=$((budget - cpu))
		wall=$((left < round ? left : round))
		[ "$wall" -lt 5 ] && wall=5
		n=$((n + 1))
		echo "fuzz: $t: round $n, ${wall}s (cpu so far ${cpu}s of ${budget}s)"
		# -timeout is generous: a starved process under nice is slow.
		# shellcheck disable=SC2086
		if ! nice -n 19 $timer "$bin" -max_total_time="$wall" -timeout=120 \
			-rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
			-artifact_prefix="$tree/crashes/$t-" $dict \
			"$work" "$@" >>"$tree/$t.log" 2>&1; then
			echo "fuzz: $t: FOUND A CRASH (see $tree/$t.log)"
			status=1
			break
		fi
		cpu=$((cpu + $(cpu_of "$tree/time.out" "$wall")))
		e=$(sed -n 's/^stat::number_of_executed_units: *//p' \
			"$tree/$t.log" | tail -1)
		execs=$((execs + ${e:-0}))
	done
	corpus=$(ls "$work" | wc -l)
	seeds=$(ls fuzz/corpus/$t | wc -l)
	echo "fuzz: $t: cpu ${cpu}s, ${execs} executions, corpus ${corpus}" \
		"inputs + ${seeds} seeds" | tee "$tree/$t.stats"
done
exit $status
