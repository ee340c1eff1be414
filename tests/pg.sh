#!/bin/sh
# pg.sh - a private PostgreSQL cluster for tests (and for `make run`).
#
#   pg.sh start DIR PORT   create (if new) and start a cluster in DIR, listening
#                          on 127.0.0.1:PORT and on the unix socket dir DIR/sock;
#                          prints its libpq DSN on stdout
#   pg.sh stop DIR         stop it at once and remove DIR
#   pg.sh halt DIR         stop it cleanly and keep DIR (persistent clusters)
#
# DIR holds data/ (PGDATA), sock/ (the socket) and log (the server log).
# By default the cluster is tuned to be fast and disposable: no fsync, no
# full-page writes. POND_PG_DURABLE=1 keeps the durable defaults instead, for
# a cluster that must survive a crash of the machine (`make run`).
#
# PostgreSQL refuses to run as root, so as root every server command runs as
# the `postgres` OS user; any other user runs them directly.
set -eu

PGBIN=${POND_PGBIN:-/usr/lib/postgresql/15/bin}
[ -x "$PGBIN/initdb" ] || {
	echo "pg.sh: no PostgreSQL 15 in $PGBIN (make deps installs it)" >&2
	exit 1
}

usage() {
	echo "usage: pg.sh start DIR PORT | pg.sh stop DIR | pg.sh halt DIR" >&2
	exit 2
}

die() {
	echo "pg.sh: $*" >&2
	exit 1
}

# as_pg runs a command as the cluster's owner.
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# abspath prints DIR as an absolute path; DIR must exist.
abspath() {
	(cd "$1" && pwd -P)
}

# conf_quote quotes a value for postgresql.conf (a ' is written twice).
conf_quote() {
	printf "'%s'" "$(printf '%s' "$1" | sed "s/'/''/g")"
}

# pick_locale prefers C.UTF-8 (sorts like C, knows UTF-8 character classes)
# and falls back to plain C where that locale is not installed.
pick_locale() {
	if locale -a 2>/dev/null | grep -qix 'c\.utf-\{0,1\}8'; then
		echo C.UTF-8
	else
		echo C
	fi
}

# write_settings rewrites DIR/data/pond.conf, which postgresql.conf includes,
# so that every start applies the current port, socket and mode.
write_settings() {
	dir=$1
	port=$2
	conf=$dir/data/pond.conf
	{
		echo "# Written by tests/pg.sh on every start; edits are lost."
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $port"
		echo "unix_socket_directories = $(conf_quote "$dir/sock")"
		echo "max_connections = 300"
		echo "shared_buffers = 128MB"
		echo "log_line_prefix = '%m [%p] %q%d '"
		if [ "${POND_PG_DURABLE:-0}" != 1 ]; then
			# Losing the data on a crash is fine for a throwaway
			# cluster; waiting for the disk on every commit is not.
			echo "fsync = off"
			echo "synchronous_commit = off"
			echo "full_page_writes = off"
			# Tests are many small queries on two cores; parallel
			# workers would only compete with the services and need
			# /dev/shm, which containers keep small.
			echo "max_parallel_workers_per_gather = 0"
		fi
	} >"$conf.tmp"
	mv "$conf.tmp" "$conf"
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres: "$conf"
	fi
}

cmd_start() {
	[ $# -eq 2 ] || usage
	dir=$1
	port=$2
	case $port in
	'' | *[!0-9]*) die "bad port: $port" ;;
	esac

	mkdir -p "$dir"
	dir=$(abspath "$dir")
	# The marker lets `stop` refuse to remove a directory that is not one
	# of our clusters, whatever path it is given.
	touch "$dir/.pond-pg"
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres: "$dir" "$dir/.pond-pg"
	fi
	chmod 700 "$dir"
	as_pg test -w "$dir" ||
		die "$dir: not writable by the postgres user (is a parent directory private?)"
	# Server commands run from DIR so that a private working directory
	# never makes them complain.
	cd "$dir"

	# Already running (a persistent cluster): say where, which is the
	# port it was started with (line 4 of postmaster.pid).
	if [ -f "$dir/data/PG_VERSION" ] &&
		as_pg "$PGBIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		port=$(sed -n 4p "$dir/data/postmaster.pid")
		echo "host=$dir/sock port=$port user=postgres dbname=postgres"
		return 0
	fi

	if [ ! -f "$dir/data/PG_VERSION" ]; then
		nosync=--no-sync
		if [ "${POND_PG_DURABLE:-0}" = 1 ]; then
			nosync=
		fi
		# $nosync is one word or none.
		# shellcheck disable=SC2086
		if ! as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres \
			--auth=trust -E UTF8 --locale="$(pick_locale)" \
			$nosync >"$dir/initdb.log" 2>&1; then
			cat "$dir/initdb.log" >&2
			die "initdb failed in $dir"
		fi
		echo "include_if_exists = 'pond.conf'" >>"$dir/data/postgresql.conf"
	fi
	as_pg mkdir -p "$dir/sock"
	write_settings "$dir" "$port"

	if ! as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 -s \
		start >/dev/null 2>&1; then
		tail -n 20 "$dir/log" >&2 2>/dev/null || true
		die "could not start PostgreSQL in $dir on port $port"
	fi
	echo "host=$dir/sock port=$port user=postgres dbname=postgres"
}

# stop_server stops the cluster in DIR with the given pg_ctl mode; if pg_ctl
# cannot (a half-started or wedged server), the postmaster is killed.
stop_server() {
	dir=$1
	mode=$2
	pidfile=$dir/data/postmaster.pid
	[ -f "$pidfile" ] || return 0
	if as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 -s \
		stop >/dev/null 2>&1; then
		return 0
	fi
	pid=$(head -n 1 "$pidfile" 2>/dev/null || true)
	case $pid in
	'' | *[!0-9]*) return 0 ;;
	esac
	kill -KILL "$pid" 2>/dev/null || true
}

cmd_stop() {
	[ $# -eq 1 ] || usage
	[ -d "$1" ] || return 0
	dir=$(abspath "$1")
	[ -f "$dir/.pond-pg" ] || die "$dir is not a pg.sh cluster; not removing it"
	cd /
	# Immediate mode: the data is about to be deleted, so there is nothing
	# to checkpoint.
	stop_server "$dir" immediate
	rm -rf "$dir"
}

cmd_halt() {
	[ $# -eq 1 ] || usage
	[ -d "$1" ] || return 0
	dir=$(abspath "$1")
	[ -f "$dir/.pond-pg" ] || die "$dir is not a pg.sh cluster"
	cd "$dir"
	stop_server "$dir" fast
}

[ $# -ge 1 ] || usage
action=$1
shift
case $action in
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
halt) cmd_halt "$@" ;;
*) usage ;;
esac
