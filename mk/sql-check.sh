#!/bin/sh
# sql-check: no SQL text is built from input.
#
# The rule (docs/security.md): every statement sent to PostgreSQL is a
# constant; values travel only as parameters ($1, $2, ...). Two patterns
# are refused in C files:
#
#   1. a printf-family or strcat-family call whose string literals hold SQL
#      (an upper-case SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP,
#      GRANT, TRUNCATE or COPY followed by a blank): SQL built by formatting;
#   2. a query call (PQexec, PQexecParams, PQprepare, PQsendQuery,
#      PQsendQueryParams, pond_pq_exec, pond_pq_query, pond_pq_query_bin)
#      whose SQL argument is an expression: it must be a string literal, an
#      UPPER_CASE macro, or a plain variable or field (which holds one of
#      those, or what pattern 1 vetted).
#
# A place that really needs pattern 1 (a table name from the service's own
# config, column lists from a constant table) carries a comment with
# "sql-check: ok" and why, in or just before the statement, or -- in files
# whose owners have not marked them yet -- a line in mk/sql-check.allow:
# "path|a fragment of the statement's SQL|why". Either way a reviewer finds
# every such place with grep.
#
# Production code is checked (common/ services/ cli/); tests build SQL from
# their own constants and are not.
#
#   sh mk/sql-check.sh [FILE...]     (default: the tracked .c files there)
#   sh mk/sql-check.sh --self-test   (the checker catches what it should)
set -eu

check() {
	awk -v allowfile="${SQL_CHECK_ALLOW:-mk/sql-check.allow}" '
	function allowed(lit,   k) {
		for (k = 1; k <= nallow; k++) {
			if (FILENAME == allow_path[k] && index(lit, allow_frag[k]) > 0) {
				return 1
			}
		}
		return 0
	}
	function flush(   s, lit, name, arg, i, n, depth, c, instr, start) {
		s = stmt
		lit = lits
		if (s ~ /[^A-Za-z0-9_](v?s?n?printf|v?asprintf|strn?cat|stpn?cpy)[ \t\n]*\(/ &&
		    lit ~ /(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|GRANT|TRUNCATE|COPY)[ \t]/ &&
		    !ok && !allowed(lit)) {
			report("SQL built by formatting")
		}
		if (match(s, /[^A-Za-z0-9_](PQexec|PQexecParams|PQprepare|PQsendQuery|PQsendQueryParams|pond_pq_exec|pond_pq_query|pond_pq_query_bin)[ \t\n]*\(/)) {
			name = substr(s, RSTART + 1, RLENGTH - 1)
			sub(/[ \t\n]*\($/, "", name)
			n = (name == "PQprepare" || name == "pond_pq_query" || name == "pond_pq_query_bin") ? 3 : 2
			# Find argument n of the call: split on commas at depth 0.
			start = RSTART + RLENGTH
			depth = 0; instr = 0; i = start; arg = 1; argtext = ""
			for (; i <= length(s); i++) {
				c = substr(s, i, 1)
				if (instr) {
					if (c == "\\") { if (arg == n) argtext = argtext c substr(s, i + 1, 1); i++; continue }
					if (c == "\"") instr = 0
				} else if (c == "\"") {
					instr = 1
				} else if (c == "(") {
					depth++
				} else if (c == ")") {
					if (depth == 0) break
					depth--
				} else if (c == "," && depth == 0) {
					arg++
					if (arg > n) break
					continue
				}
				if (arg == n) argtext = argtext c
			}
			if (arg >= n && argtext !~ /^[ \t\n]*("|[A-Z][A-Z0-9_]*([ \t\n]*\(|[ \t\n]*$|[ \t\n]+"))/ &&
			    argtext !~ /^[ \t\n]*[A-Za-z_][A-Za-z0-9_]*((->|\.)[A-Za-z_][A-Za-z0-9_]*)*[ \t\n]*$/ &&
			    argtext !~ /(^|[^A-Za-z0-9_])char[ \t\n]*\*/ && !ok) {
				report("SQL argument of " name " is not a constant")
			}
		}
		stmt = ""; lits = ""; ok = 0; first = 0
	}
	function report(why) {
		printf "%s:%d: %s\n", FILENAME, first, why
		bad++
	}
	BEGIN {
		while ((getline l < allowfile) > 0) {
			if (l ~ /^#/ || l !~ /\|/) continue
			split(l, f, "|")
			nallow++
			allow_path[nallow] = f[1]
			allow_frag[nallow] = f[2]
		}
	}
	FNR == 1 { stmt = ""; lits = ""; incomment = 0; instr = 0; ok = 0; first = 0 }
	{
		line = $0
		if (line ~ /^[ \t]*#/ && !incomment) next  # preprocessor lines
		for (i = 1; i <= length(line); i++) {
			c = substr(line, i, 1)
			if (incomment) {
				ctext = ctext c
				if (c == "*" && substr(line, i + 1, 1) == "/") {
					incomment = 0; i++
					if (ctext ~ /sql-check: ok/) ok = 1
				}
				continue
			}
			if (instr) {
				stmt = stmt c
				if (c == "\\") { stmt = stmt substr(line, i + 1, 1); lits = lits substr(line, i + 1, 1); i++; continue }
				if (c == "\"") { instr = 0; continue }
				lits = lits c
				continue
			}
			if (c == "/" && substr(line, i + 1, 1) == "*") { incomment = 1; ctext = ""; i++; continue }
			if (c == "/" && substr(line, i + 1, 1) == "/") {
				if (substr(line, i) ~ /sql-check: ok/) ok = 1
				break
			}
			if (c == "\x27") {  # a char literal: copy it whole
				j = index(substr(line, i + 1), "\x27")
				if (substr(line, i + 1, 1) == "\\") j = index(substr(line, i + 3), "\x27") + 2
				stmt = stmt substr(line, i, j + 1); i += j; continue
			}
			if (c == "\"") { instr = 1; stmt = stmt c; lits = lits " "; continue }
			if (first == 0 && c !~ /[ \t]/) first = FNR
			stmt = stmt c
			if (c == ";" || c == "{" || c == "}") flush()
		}
		stmt = stmt "\n"
	}
	END { exit(bad > 0) }
	' "$@"
}

if [ "${1:-}" = "--self-test" ]; then
	dir=$(mktemp -d)
	trap 'rm -rf "$dir"' EXIT
	cat >"$dir/bad.c" <<'EOF'
void f(PGconn *conn, const char *name, char *sql, size_t len) {
	snprintf(sql, len, "SELECT * FROM t WHERE name = '%s'", name);
	PQexec(conn, sql + 1);
	if ((rv = pond_pq_query(conn, &res,
	                        build(name), 1, params)) != 0) {
		return;
	}
	strcat(sql, "DELETE FROM t");
}
EOF
	cat >"$dir/good.c" <<'EOF'
#define TABLE_SQL "SELECT 1"
void f(PGconn *conn, const char **params) {
	char msg[64];
	snprintf(msg, sizeof(msg), "event %d; select nothing", 1);
	PQexec(conn, "BEGIN; SELECT ';' /* ( */");
	PQexec(conn, TABLE_SQL);
	if ((rv = pond_pq_query(conn, &res,
	                        "SELECT name FROM t WHERE id = $1 "
	                        "AND x = ','", 1, params)) != 0) {
		return;
	}
	/* sql-check: ok: the table name is the service's own constant. */
	snprintf(sql, sizeof(sql), "SELECT seq FROM %s", table);
	res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 1);
	pond_pq_exec(conn, POND_TOKEN_HASH_SQL("$1"));
	pond_pq_query(conn, NULL, "UPDATE x SET " "y = 1", 0, NULL);
}
EOF
	export SQL_CHECK_ALLOW=/dev/null
	out=$(check "$dir/bad.c" || true)
	n=$(printf '%s\n' "$out" | grep -c ': ' || true)
	if [ "$n" -ne 4 ]; then
		echo "sql-check self-test: expected 4 findings in bad.c, got $n:"
		printf '%s\n' "$out"
		exit 1
	fi
	if ! out=$(check "$dir/good.c"); then
		echo "sql-check self-test: false findings in good.c:"
		printf '%s\n' "$out"
		exit 1
	fi
	echo "sql-check: self-test ok"
	exit 0
fi

if [ $# -eq 0 ]; then
	# shellcheck disable=SC2046
	set -- $(git ls-files 'common/*.c' 'services/*.c' 'cli/*.c' 2>/dev/null ||
		find common services cli -name '*.c')
fi
if check "$@"; then
	echo "sql-check: ok ($# files)"
else
	echo "sql-check: SQL built from text above; use parameters, or mark" \
		"a reviewed constant with a 'sql-check: ok' comment"
	exit 1
fi
