# mk/proc.sh - sourced by the scripts that start and stop Pond's processes
# (bench/run.sh, tests/faults/run.sh), which set root (the repository).

# stop_proc PID [SECONDS]: SIGTERM, up to SECONDS (default 10) for a clean
# exit, then SIGKILL; returns at once when PID is gone already.
stop_proc() {
	kill -TERM "$1" 2>/dev/null || return 0
	i=0
	while kill -0 "$1" 2>/dev/null && [ "$i" -lt $((${2:-10} * 10)) ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# stop_cluster PGDIR ARTIFACTS: keeps the log of the cluster in PGDIR (one
# of tests/pg.sh) as ARTIFACTS/postgres.log and stops it, whatever state it
# is in.
stop_cluster() {
	if [ -f "$1/log" ]; then
		cat "$1/log" >"$2/postgres.log" 2>/dev/null || true
	fi
	sh "$root/tests/pg.sh" stop "$1" >/dev/null 2>&1 || true
}
