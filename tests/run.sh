#!/bin/sh
# run.sh - run the test binary against a throwaway PostgreSQL.
#
#   sh tests/run.sh BUILDDIR [criterion options...]
#
# Starts a private cluster (tests/pg.sh) on a free port, runs
# BUILDDIR/bin/pond-tests with the environment tests/lib/harness.c reads, and
# removes the cluster afterwards whatever happened: pass, fail, crash, Ctrl-C
# or SIGTERM. Exits with the test binary's status.
#
# Environment:
#   POND_TEST_JOBS      parallel test processes (default 2: the machine's cores)
#   POND_TEST_TIMEOUT   seconds the whole run may take (default 1800; 0: no
#                       limit). Criterion 2.4's own --timeout does nothing;
#                       a test that may hang sets .timeout in its Test().
#
#   POND_TEST_ARTIFACTS where the run's logs go (default: a new directory
#                       BUILDDIR/../test-artifacts/run-DATE-PID, also reached
#                       as test-artifacts/latest; the five newest are kept)
#
# Options after BUILDDIR go to Criterion, e.g. --filter 'harness/*' or
# --verbose.
set -eu

usage() {
	echo "usage: sh tests/run.sh BUILDDIR [criterion options...]" >&2
	exit 2
}

die() {
	echo "run.sh: $*" >&2
	exit 1
}

[ $# -ge 1 ] || usage
builddir=$1
shift
here=$(cd "$(dirname "$0")" && pwd -P)
[ -x "$builddir/bin/pond-tests" ] ||
	die "$builddir/bin/pond-tests not found (build it with: make BUILD=asan test-build)"
builddir=$(cd "$builddir" && pwd -P)
bin=$builddir/bin/pond-tests
jobs=${POND_TEST_JOBS:-2}
timeout=${POND_TEST_TIMEOUT:-1800}
case $jobs$timeout in
*[!0-9]*) die "POND_TEST_JOBS and POND_TEST_TIMEOUT must be numbers" ;;
esac

# shellcheck source=mk/ports.sh
. "$here/../mk/ports.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pond-test.XXXXXX")
# The postgres user must be able to reach its cluster inside.
chmod 755 "$tmp"
pgdir=$tmp/pg
# Each run logs into a directory of its own, so that two runs at once (two
# people, or two flavours) never delete or mix each other's logs.
if [ -n "${POND_TEST_ARTIFACTS:-}" ]; then
	artifacts=$POND_TEST_ARTIFACTS
else
	artifacts_base=$(dirname "$builddir")/test-artifacts
	artifacts=$artifacts_base/run-$(date +%Y%m%d-%H%M%S)-$$
fi
test_pid=

# teardown runs once, on every way out. It is quiet: the last line of a run
# is Criterion's summary. The server log joins the artifacts first.
# Called from traps only, which shellcheck cannot see.
# shellcheck disable=SC2317
teardown() {
	trap - EXIT INT TERM HUP
	if [ -n "$test_pid" ]; then
		stop_tests
	fi
	if [ -f "$pgdir/log" ] && [ -d "$artifacts" ]; then
		# cat, not cp: the copy is the reader's, not postgres's 0600.
		cat "$pgdir/log" >"$artifacts/postgres.log" 2>/dev/null || true
	fi
	sh "$here/pg.sh" stop "$pgdir" >/dev/null || true
	rm -rf "$tmp"
}

# stop_tests ends the test binary. Its worker processes die with it (they
# are armed with a parent-death signal) and the services a test started
# die with their worker (PR_SET_PDEATHSIG in the harness). A shell runs
# background jobs with SIGINT ignored, so SIGTERM is what we send first;
# Criterion only winds down when no test hangs, hence the SIGKILL after.
# The group kills reach anything else the binary left in its group.
# (dash's kill takes no "--": a negative pid right after the signal is a
# group.)
# shellcheck disable=SC2317
stop_tests() {
	kill -TERM "-$test_pid" 2>/dev/null || true
	kill -TERM "$test_pid" 2>/dev/null || true
	i=0
	while kill -0 "$test_pid" 2>/dev/null && [ "$i" -lt 20 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "-$test_pid" 2>/dev/null || true
	kill -KILL "$test_pid" 2>/dev/null || true
	wait "$test_pid" 2>/dev/null || true
	test_pid=
}

trap teardown EXIT
trap 'teardown; exit 130' INT
trap 'teardown; exit 143' TERM
trap 'teardown; exit 129' HUP

mkdir -p "$artifacts"
if [ -n "${artifacts_base:-}" ]; then
	ln -sfn "$(basename "$artifacts")" "$artifacts_base/latest"
	# The names sort by date: all but the five newest go.
	find "$artifacts_base" -mindepth 1 -maxdepth 1 -type d -name 'run-*' |
		sort | head -n -5 | while read -r old; do rm -rf "$old"; done
fi

# A port can be taken between the check and the server's bind: try again.
dsn=
for _ in 1 2 3 4 5; do
	free_port
	if dsn=$(sh "$here/pg.sh" start "$pgdir" "$port" 2>"$tmp/pg.err"); then
		break
	fi
	dsn=
	sh "$here/pg.sh" stop "$pgdir" >/dev/null 2>&1 || true
done
if [ -z "$dsn" ]; then
	cat "$tmp/pg.err" >&2 2>/dev/null || true
	die "could not start PostgreSQL"
fi
echo "tests: postgres at $dsn"

export POND_TEST_PGHOST="$pgdir/sock"
export POND_TEST_PGPORT="$port"
export POND_BIN_DIR="$builddir/bin"
export POND_TEST_ARTIFACTS="$artifacts"
# Sanitizer reports must fail the run loudly; the user's own settings come
# last, so they win. ASan and LeakSanitizer reports go to files, one per
# process, because Criterion counts a test that leaks as passing (the report
# comes after the result) and its own runner leaks a few bytes at exit: the
# files are checked below, and only reports that point into our sources fail
# the run. Suppressing libcriterion instead would hide every leak in a test,
# since every test's stack passes through it.
sanitizer_dir=$tmp/sanitizer
mkdir -p "$sanitizer_dir"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:log_path=$sanitizer_dir/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
# A leak does not change a process's exit status (memory errors still
# abort): the report files decide, below.
export LSAN_OPTIONS="exitcode=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

# The binary runs in its own process group (setsid), in the background, so
# that a signal to this script is handled at once (a foreground child would
# delay the trap until it ended) and teardown can end all of its processes.
# timeout(1) ends a run that hangs: SIGTERM, then SIGKILL 10 s later.
if [ "$timeout" -gt 0 ]; then
	setsid timeout --kill-after=10 "$timeout" "$bin" --jobs "$jobs" "$@" &
else
	setsid "$bin" --jobs "$jobs" "$@" &
fi
test_pid=$!
status=0
wait "$test_pid" || status=$?
test_pid=
if [ "$timeout" -gt 0 ] && [ "$status" -eq 124 ]; then
	echo "run.sh: the tests did not finish within $timeout s" \
		"(POND_TEST_TIMEOUT)" >&2
fi

# check_sanitizer_reports keeps every report with the artifacts and fails
# the run on one whose stack names a file of ours.
check_sanitizer_reports() {
	found=0
	for f in "$sanitizer_dir"/asan.*; do
		[ -f "$f" ] || continue
		cp "$f" "$artifacts/" 2>/dev/null || true
		if grep -qE '(common|services|cli|tests)/[A-Za-z0-9_/.-]+\.c:[0-9]+' "$f"; then
			echo "run.sh: sanitizer report ($(basename "$f")):" >&2
			cat "$f" >&2
			found=1
		fi
	done
	return "$found"
}
if ! check_sanitizer_reports && [ "$status" -eq 0 ]; then
	echo "run.sh: FAILED: sanitizer reports above (a leak or memory error" \
		"in a test or a service)" >&2
	status=1
fi
exit "$status"
