#!/bin/sh
# Runs every libFuzzer target of a BUILD=fuzz tree, one after the other and
# under nice, so that a long run does not starve other work on the machine.
#
#   FUZZ_TIME=600 sh mk/fuzz.sh build/fuzz [TARGET...]
#
# Each target first replays its seeds (fuzz/corpus/NAME) and the inputs of
# past findings (fuzz/regress/NAME, if any): that alone is the regression
# check. It then fuzzes for FUZZ_TIME seconds; new inputs are written to
# build/fuzz/corpus/NAME, a crash to build/fuzz/crashes/NAME-*. The exit
# status is non-zero when any target found something.
set -eu

tree=$1
shift
time=${FUZZ_TIME:-600}
targets=${*:-$(cd fuzz && ls fuzz_*.c | sed 's/\.c$//')}
status=0

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
	echo "fuzz: $t: fuzzing for ${time}s"
	dict=
	[ -f fuzz/$t.dict ] && dict=-dict=fuzz/$t.dict
	# CPU time, not wall time, is what a run is worth: time(1) records it.
	timer=
	[ -x /usr/bin/time ] && timer="/usr/bin/time -o $tree/$t.time -f %U+%S"
	# shellcheck disable=SC2086
	if ! nice -n 19 $timer "$bin" -max_total_time="$time" -timeout=10 \
		-rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
		-artifact_prefix="$tree/crashes/$t-" $dict \
		"$work" "$@" >"$tree/$t.log" 2>&1; then
		echo "fuzz: $t: FOUND A CRASH (see $tree/$t.log)"
		status=1
	fi
	grep -E '^stat::(number_of_executed_units|peak_rss_mb)' \
		"$tree/$t.log" | sed "s/^/fuzz: $t: /"
	[ -f "$tree/$t.time" ] &&
		echo "fuzz: $t: cpu seconds $(tail -1 "$tree/$t.time" | bc)"
	echo "fuzz: $t: corpus $(ls "$work" | wc -l) new inputs +" \
		"$(ls fuzz/corpus/$t | wc -l) seeds"
done
exit $status
