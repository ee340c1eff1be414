/*
 * test_cli.c - the `pond` ops CLI as operators run it: a subprocess
 * (POND_BIN_DIR/pond) against a real database.
 *
 * - exit statuses: 0 done, 1 runtime error, 2 usage error;
 * - migrate prints what it applied and the schema version, and refuses a
 *   different partition count;
 * - publishers and API tokens: the token is printed once, works with the
 *   lookups the services use, and only its sha256 is stored: the plain
 *   token appears nowhere in the database nor in the CLI's log;
 * - streams shows heads, cursors and lag worked out here from the rows the
 *   test wrote.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "migrate.h"
#include "token.h"

#define MAX_ARGS 16

/* cli_run runs `pond ARGS...` (NULL-terminated) with POND_DSN=dsn and the
 * other POND_ variables unset; stdout goes to *out (the caller frees),
 * stderr to the log log_name. Returns the exit status. */
static int
cli_run(const char *dsn, const char *log_name, char **out, ...)
{
	const char *argv[MAX_ARGS + 2] = {"pond"};
	char dsn_kv[POND_TEST_DSN_LEN + 16];
	const char *env[] = {dsn_kv, "POND_PARTITIONS", "POND_LOG_LEVEL",
	                     NULL};
	char *ignored = NULL;
	va_list ap;
	int n = 1, status;

	snprintf(dsn_kv, sizeof(dsn_kv), "POND_DSN=%s", dsn);
	va_start(ap, out);
	for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
		cr_assert_lt(n, MAX_ARGS + 1);
		argv[n++] = a;
	}
	va_end(ap);
	argv[n] = NULL;
	status = pond_test_run(argv, env, log_name,
	                       out != NULL ? out : &ignored);
	free(ignored);
	return (status);
}

/* read_log returns the text of log log_name (the caller frees). */
static char *
read_log(const char *log_name)
{
	char path[512];
	FILE *f;
	char *text;
	long len;

	pond_test_log_path(log_name, path, sizeof(path));
	if ((f = fopen(path, "r")) == NULL) {
		return (strdup(""));
	}
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	text = calloc(1, (size_t)len + 1);
	cr_assert_not_null(text);
	cr_assert_eq(fread(text, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	return (text);
}

/* squeeze collapses runs of blanks into one space, in place, so table rows
 * can be matched without knowing the column widths. */
static char *
squeeze(char *s)
{
	char *w = s;

	for (char *r = s; *r != '\0'; r++) {
		if (*r == ' ' && (w == s || w[-1] == ' ' || w[-1] == '\n')) {
			continue;
		}
		if (*r == '\n' && w > s && w[-1] == ' ') {
			w--;
		}
		*w++ = *r;
	}
	*w = '\0';
	return (s);
}

static bool
is_token(const char *s, const char *prefix)
{
	size_t plen = strlen(prefix);

	if (strncmp(s, prefix, plen) != 0 || strlen(s) != plen + 64) {
		return (false);
	}
	return (strspn(s + plen, "0123456789abcdef") == 64);
}

/* trim_line strips the one trailing newline of a single-line output. */
static char *
trim_line(char *s)
{
	size_t n = strlen(s);

	cr_assert(n > 0 && s[n - 1] == '\n', "output '%s'", s);
	s[n - 1] = '\0';
	cr_assert_null(strchr(s, '\n'), "one line expected: '%s'", s);
	return (s);
}

/* param_int runs sql with one text parameter on its own connection. */
static long long
param_int(const char *dsn, const char *sql, const char *param)
{
	PGconn *conn = pond_test_pg_connect(dsn);
	const char *params[] = {param};
	PGresult *res =
	        PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
	long long v;

	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s: %s", sql,
	             PQerrorMessage(conn));
	cr_assert_eq(PQntuples(res), 1);
	v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	PQfinish(conn);
	return (v);
}

/* assert_token_only_hashed checks that the database holds sha256(token)
 * and neither the token nor its bytes anywhere: database_to_xml renders
 * every row of every table, bytea in hex. */
static void
assert_token_only_hashed(const char *dsn, const char *token)
{
	PGconn *conn = pond_test_pg_connect(dsn);
	const char *params[] = {token};
	PGresult *res;

	res = PQexec(conn, "SET xmlbinary = hex");
	cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	res = PQexecParams(
	        conn,
	        "WITH doc AS (SELECT lower(database_to_xml(true, false, "
	        "'')::text)"
	        " AS t) "
	        "SELECT strpos(t, $1), "
	        " strpos(t, encode(convert_to($1, 'UTF8'), 'hex')), "
	        " strpos(t, encode(sha256(convert_to($1, 'UTF8')), 'hex')) "
	        "FROM doc",
	        1, NULL, params, NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s",
	             PQerrorMessage(conn));
	cr_assert_str_eq(PQgetvalue(res, 0, 0), "0", "plain token stored");
	cr_assert_str_eq(PQgetvalue(res, 0, 1), "0", "token bytes stored");
	cr_assert_str_neq(PQgetvalue(res, 0, 2), "0", "no sha256 of it");
	PQclear(res);
	PQfinish(conn);
}

static void
assert_not_in_log(const char *log_name, const char *secret)
{
	char *log = read_log(log_name);

	cr_assert_null(strstr(log, secret), "the token is in log %s",
	               log_name);
	free(log);
}

/* --- usage and exit statuses ------------------------------------------------
 */

Test(cli, help_lists_commands_and_environment)
{
	char *out = NULL;

	cr_assert_eq(cli_run("dbname=none", "cli-help", &out, "--help", NULL),
	             0);
	const char *want[] = {"migrate [--partitions N]",
	                      "publishers add NAME",
	                      "publishers list",
	                      "publishers revoke NAME",
	                      "tokens add NAME --role read|admin",
	                      "tokens list",
	                      "tokens revoke NAME",
	                      "streams [--json]",
	                      "POND_DSN",
	                      "POND_PARTITIONS",
	                      "POND_LOG_LEVEL"};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		cr_assert_not_null(strstr(out, want[i]),
		                   "missing '%s' in:\n%s", want[i], out);
	}
	free(out);
	cr_assert_eq(cli_run("dbname=none", "cli-help", &out, "tokens", "add",
	                     "--help", NULL),
	             0);
	cr_assert_not_null(strstr(out, "usage: pond tokens add NAME --role"));
	free(out);
}

Test(cli, usage_errors_exit_2)
{
	/* None of these gets as far as the store, which does not exist. */
	const char *dsn = "host=/nonexistent dbname=none";
	const char *log = "cli-usage";

	cr_assert_eq(cli_run(dsn, log, NULL, NULL), 2);
	cr_assert_eq(cli_run(dsn, log, NULL, "frobnicate", NULL), 2);
	cr_assert_eq(cli_run(dsn, log, NULL, "publishers", NULL), 2);
	cr_assert_eq(cli_run(dsn, log, NULL, "publishers", "frob", NULL), 2);
	cr_assert_eq(cli_run(dsn, log, NULL, "publishers", "add", NULL), 2);
	cr_assert_eq(
	        cli_run(dsn, log, NULL, "publishers", "add", "a", "b", NULL),
	        2);
	cr_assert_eq(
	        cli_run(dsn, log, NULL, "publishers", "add", "bad name", NULL),
	        2);
	cr_assert_eq(cli_run(dsn, log, NULL, "tokens", "add", "ops", NULL), 2);
	cr_assert_eq(cli_run(dsn, log, NULL, "tokens", "add", "ops", "--role",
	                     "root", NULL),
	             2);
	cr_assert_eq(cli_run(dsn, log, NULL, "tokens", "add", "ops",
	                     "--role=superuser", NULL),
	             2);
	cr_assert_eq(cli_run(dsn, log, NULL, "tokens", "add", "ops", "--role",
	                     NULL),
	             2);
	cr_assert_eq(
	        cli_run(dsn, log, NULL, "migrate", "--partitions", "0", NULL),
	        2);
	cr_assert_eq(cli_run(dsn, log, NULL, "migrate", "--partitions", "257",
	                     NULL),
	             2);
	cr_assert_eq(cli_run(dsn, log, NULL, "migrate", "--frob", NULL), 2);
	cr_assert_eq(cli_run(dsn, log, NULL, "streams", "--json=1", NULL), 2);

	char *text = read_log(log);
	cr_assert_not_null(strstr(text, "not read or admin"), "%s", text);
	cr_assert_not_null(strstr(text, "usage: pond tokens add"), "%s", text);
	free(text);
}

Test(cli, unreachable_store_exits_1)
{
	const char *dsn = "host=/nonexistent dbname=none";
	char *text;

	cr_assert_eq(cli_run(dsn, "cli-unreachable", NULL, "publishers",
	                     "list", NULL),
	             1);
	cr_assert_eq(cli_run(dsn, "cli-unreachable", NULL, "migrate", NULL),
	             1);
	text = read_log("cli-unreachable");
	cr_assert_not_null(strstr(text, "cannot connect to the store"), "%s",
	                   text);
	free(text);
}

/* --- migrate
 * -------------------------------------------------------------------- */

Test(cli, migrate_prints_what_it_applied)
{
	char dsn[POND_TEST_DSN_LEN];
	char line[128];
	char *out = NULL;
	char *text;

	pond_test_require_pg();
	pond_test_db_create(dsn, sizeof(dsn));
	int last = pond_migrations[pond_migrations_count - 1].version;

	cr_assert_eq(cli_run(dsn, "cli-migrate", &out, "migrate",
	                     "--partitions", "4", NULL),
	             0);
	for (int i = 0; i < pond_migrations_count; i++) {
		snprintf(line, sizeof(line), "applied %s\n",
		         pond_migrations[i].name);
		cr_assert_not_null(strstr(out, line), "'%s' in:\n%s", line,
		                   out);
	}
	snprintf(line, sizeof(line),
	         "schema version %d, %d migration%s applied, 4 partitions",
	         last, pond_migrations_count,
	         pond_migrations_count == 1 ? "" : "s");
	cr_assert_not_null(strstr(out, line), "'%s' in:\n%s", line, out);
	free(out);
	cr_assert_eq(
	        pond_test_sql_int(dsn, "SELECT count(*) FROM stream_heads"),
	        12);

	/* Again, without a count: nothing to do, and the installed count is
	 * kept rather than the default 16. */
	cr_assert_eq(cli_run(dsn, "cli-migrate", &out, "migrate", NULL), 0);
	cr_assert_null(strstr(out, "applied 0"), "%s", out);
	snprintf(line, sizeof(line),
	         "schema version %d, 0 migrations applied, 4 partitions",
	         last);
	cr_assert_not_null(strstr(out, line), "'%s' in:\n%s", line, out);
	free(out);

	cr_assert_eq(cli_run(dsn, "cli-migrate", &out, "migrate",
	                     "--partitions", "8", NULL),
	             1);
	free(out);
	text = read_log("cli-migrate");
	cr_assert_not_null(strstr(text, "installed with 4 partitions"), "%s",
	                   text);
	free(text);
	cr_assert_eq(
	        pond_test_sql_int(dsn, "SELECT count(*) FROM stream_heads"),
	        12);
}

/* --- publishers and tokens
 * --------------------------------------------------- */

Test(cli, publisher_token_is_shown_once_and_only_hashed)
{
	char dsn[POND_TEST_DSN_LEN];
	const char *log = "cli-publishers";
	char *token = NULL, *out = NULL;
	char name[64];
	int64_t id = -1;

	pond_test_require_pg();
	pond_test_db_create_migrated(dsn, sizeof(dsn), 4);
	cr_assert_eq(
	        cli_run(dsn, log, &token, "publishers", "add", "shop-1", NULL),
	        0);
	trim_line(token);
	cr_assert(is_token(token, "pub_"), "token '%s'", token);

	PGconn *conn = pond_test_pg_connect(dsn);
	cr_assert_eq(
	        pond_publisher_lookup(conn, token, &id, name, sizeof(name)),
	        0);
	cr_assert_str_eq(name, "shop-1");
	cr_assert_eq(id, pond_test_sql_int(dsn, "SELECT id FROM publishers "
	                                        "WHERE name = 'shop-1'"));
	cr_assert_eq(pond_api_token_role(conn, token), POND_ROLE_NONE,
	             "a publisher token is no API token");
	cr_assert_eq(
	        param_int(dsn,
	                  "SELECT count(*) FROM publishers WHERE name = "
	                  "'shop-1' AND token_hash = sha256(convert_to($1, "
	                  "'UTF8'))",
	                  token),
	        1);
	assert_token_only_hashed(dsn, token);

	/* A second publisher gets a different token. */
	cr_assert_eq(
	        cli_run(dsn, log, &out, "publishers", "add", "shop-2", NULL),
	        0);
	trim_line(out);
	cr_assert(is_token(out, "pub_"));
	cr_assert_str_neq(out, token);
	assert_token_only_hashed(dsn, out);
	assert_not_in_log(log, out);
	free(out);

	cr_assert_eq(cli_run(dsn, log, &out, "publishers", "list", NULL), 0);
	squeeze(out);
	cr_assert_not_null(strstr(out, "ID NAME CREATED REVOKED\n"), "%s",
	                   out);
	cr_assert_not_null(strstr(out, " shop-1 "), "%s", out);
	cr_assert_not_null(strstr(out, " shop-2 "), "%s", out);
	cr_assert_null(strstr(out, "pub_"), "list shows no token: %s", out);
	free(out);

	/* A taken name is a runtime error and stores nothing. */
	cr_assert_eq(
	        cli_run(dsn, log, &out, "publishers", "add", "shop-1", NULL),
	        1);
	cr_assert_str_eq(out, "");
	free(out);
	cr_assert_eq(pond_test_sql_int(dsn, "SELECT count(*) FROM publishers"),
	             2);

	cr_assert_eq(cli_run(dsn, log, &out, "publishers", "revoke", "shop-1",
	                     NULL),
	             0);
	free(out);
	cr_assert_eq(
	        pond_publisher_lookup(conn, token, &id, name, sizeof(name)),
	        POND_EAUTH, "a revoked token is refused");
	cr_assert_eq(pond_test_sql_int(
	                     dsn,
	                     "SELECT revoked_at IS NOT NULL FROM publishers "
	                     "WHERE name = 'shop-1'"),
	             1);
	cr_assert_eq(cli_run(dsn, log, &out, "publishers", "revoke", "shop-1",
	                     NULL),
	             0, "revoking twice is fine");
	cr_assert_not_null(strstr(out, "already revoked"), "%s", out);
	free(out);
	cr_assert_eq(cli_run(dsn, log, &out, "publishers", "revoke", "nobody",
	                     NULL),
	             1);
	free(out);

	cr_assert_eq(cli_run(dsn, log, &out, "publishers", "list", NULL), 0);
	squeeze(out);
	/* shop-1 shows a revocation time, shop-2 still "-". */
	char *row1 = strstr(out, " shop-1 ");
	char *row2 = strstr(out, " shop-2 ");
	cr_assert(row1 != NULL && row2 != NULL, "%s", out);
	*strchr(row1, '\n') = '\0';
	*strchr(row2, '\n') = '\0';
	cr_assert(strlen(row1) > 2 && strcmp(row1 + strlen(row1) - 2, " -"),
	          "%s", row1);
	cr_assert_str_eq(row2 + strlen(row2) - 2, " -", "%s", row2);
	free(out);

	assert_not_in_log(log, token);
	PQfinish(conn);
	free(token);
}

Test(cli, api_tokens_carry_their_role)
{
	char dsn[POND_TEST_DSN_LEN];
	const char *log = "cli-tokens";
	char *reader = NULL, *admin = NULL, *out = NULL;
	char name[64];
	int64_t id;

	pond_test_require_pg();
	pond_test_db_create_migrated(dsn, sizeof(dsn), 4);
	cr_assert_eq(cli_run(dsn, log, &reader, "tokens", "add", "dashboard",
	                     "--role", "read", NULL),
	             0);
	cr_assert_eq(cli_run(dsn, log, &admin, "tokens", "add", "ops",
	                     "--role=admin", NULL),
	             0);
	trim_line(reader);
	trim_line(admin);
	cr_assert(is_token(reader, "api_"), "token '%s'", reader);
	cr_assert(is_token(admin, "api_"), "token '%s'", admin);

	PGconn *conn = pond_test_pg_connect(dsn);
	cr_assert_eq(pond_api_token_role(conn, reader), POND_ROLE_READ);
	cr_assert_eq(pond_api_token_role(conn, admin), POND_ROLE_ADMIN);
	cr_assert_eq(
	        pond_publisher_lookup(conn, admin, &id, name, sizeof(name)),
	        POND_EAUTH, "an API token is no publisher token");
	cr_assert_eq(pond_api_token_role(conn, "api_00"), POND_ROLE_NONE);
	assert_token_only_hashed(dsn, reader);
	assert_token_only_hashed(dsn, admin);

	cr_assert_eq(cli_run(dsn, log, &out, "tokens", "add", "ops", "--role",
	                     "read", NULL),
	             1, "a taken name");
	free(out);
	cr_assert_eq(cli_run(dsn, log, &out, "tokens", "add", "ops2", "--role",
	                     "owner", NULL),
	             2, "a bad role");
	free(out);
	cr_assert_eq(pond_test_sql_int(dsn, "SELECT count(*) FROM api_tokens"),
	             2);

	cr_assert_eq(cli_run(dsn, log, &out, "tokens", "list", NULL), 0);
	squeeze(out);
	cr_assert_not_null(strstr(out, "NAME ROLE CREATED REVOKED\n"), "%s",
	                   out);
	cr_assert_not_null(strstr(out, "\ndashboard read "), "%s", out);
	cr_assert_not_null(strstr(out, "\nops admin "), "%s", out);
	free(out);

	cr_assert_eq(
	        cli_run(dsn, log, &out, "tokens", "revoke", "dashboard", NULL),
	        0);
	free(out);
	cr_assert_eq(pond_api_token_role(conn, reader), POND_ROLE_NONE);
	cr_assert_eq(pond_api_token_role(conn, admin), POND_ROLE_ADMIN);
	cr_assert_eq(
	        cli_run(dsn, log, &out, "tokens", "revoke", "nobody", NULL),
	        1);
	free(out);

	assert_not_in_log(log, reader);
	assert_not_in_log(log, admin);
	PQfinish(conn);
	free(reader);
	free(admin);
}

/* --- streams
 * ------------------------------------------------------------------- */

#define NPARTS 4

/* The rows the test writes: heads per stream and partition, and cursors
 * (consumer, stream, partition, seq). */
static const long long heads[3][NPARTS] = {
        {5, 15, 25, 35}, /* events */
        {0, 0, 3, 0},    /* tag_changes */
        {0, 0, 0, 0},    /* touches */
};
static const char *const stream_names[3] = {"events", "tag_changes",
                                            "touches"};

typedef struct cursor_row {
	const char *consumer;
	int stream;
	int partition;
	long long seq;
} cursor_row;

static const cursor_row cursors[] = {
        {"tagging", 0, 0, 5},
        {"tagging", 0, 1, 12},
        {"scheduler", 0, 3, 30},
        {"scheduler", 1, 2, 1},
};

/* cursor_of is the definition: the cursor row's seq, 0 without a row. */
static long long
cursor_of(const char *consumer, int stream, int partition)
{
	for (size_t i = 0; i < sizeof(cursors) / sizeof(cursors[0]); i++) {
		if (strcmp(cursors[i].consumer, consumer) == 0 &&
		    cursors[i].stream == stream &&
		    cursors[i].partition == partition) {
			return (cursors[i].seq);
		}
	}
	return (0);
}

/* consumes reports whether consumer has a cursor in stream. */
static bool
consumes(const char *consumer, int stream)
{
	for (size_t i = 0; i < sizeof(cursors) / sizeof(cursors[0]); i++) {
		if (strcmp(cursors[i].consumer, consumer) == 0 &&
		    cursors[i].stream == stream) {
			return (true);
		}
	}
	return (false);
}

static void
streams_setup(char *dsn, size_t len)
{
	PGconn *conn;

	pond_test_require_pg();
	pond_test_db_create_migrated(dsn, len, NPARTS);
	conn = pond_test_pg_connect(dsn);
	for (int s = 0; s < 3; s++) {
		for (int p = 0; p < NPARTS; p++) {
			char part[16], head[24];
			snprintf(part, sizeof(part), "%d", p);
			snprintf(head, sizeof(head), "%lld", heads[s][p]);
			const char *params[] = {stream_names[s], part, head};
			PGresult *res = PQexecParams(
			        conn,
			        "UPDATE stream_heads SET head = $3 "
			        "WHERE stream = $1 AND partition = $2",
			        3, NULL, params, NULL, NULL, 0);
			cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK);
			cr_assert_str_eq(PQcmdTuples(res), "1");
			PQclear(res);
		}
	}
	for (size_t i = 0; i < sizeof(cursors) / sizeof(cursors[0]); i++) {
		char part[16], seq[24];
		snprintf(part, sizeof(part), "%d", cursors[i].partition);
		snprintf(seq, sizeof(seq), "%lld", cursors[i].seq);
		const char *params[] = {cursors[i].consumer,
		                        stream_names[cursors[i].stream], part,
		                        seq};
		PGresult *res = PQexecParams(
		        conn,
		        "INSERT INTO consumer_cursors (consumer, stream, "
		        "partition, seq) VALUES ($1, $2, $3, $4)",
		        4, NULL, params, NULL, NULL, 0);
		cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s",
		             PQerrorMessage(conn));
		PQclear(res);
	}
	PQfinish(conn);
}

Test(cli, streams_table_shows_heads_and_lag)
{
	static const char *const consumers[] = {"scheduler", "tagging"};
	char dsn[POND_TEST_DSN_LEN];
	char want[128];
	char *out = NULL;

	streams_setup(dsn, sizeof(dsn));
	cr_assert_eq(cli_run(dsn, "cli-streams", &out, "streams", NULL), 0);
	squeeze(out);
	for (int s = 0; s < 3; s++) {
		for (int p = 0; p < NPARTS; p++) {
			snprintf(want, sizeof(want), "\n%s %d %lld\n",
			         stream_names[s], p, heads[s][p]);
			cr_assert_not_null(strstr(out, want), "'%s' in:\n%s",
			                   want, out);
		}
	}
	for (size_t c = 0; c < 2; c++) {
		long long total = 0;
		for (int s = 0; s < 3; s++) {
			if (!consumes(consumers[c], s)) {
				continue;
			}
			for (int p = 0; p < NPARTS; p++) {
				long long cur = cursor_of(consumers[c], s, p);
				long long lag = heads[s][p] - cur;
				total += lag;
				snprintf(want, sizeof(want),
				         "\n%s %s %d %lld %lld %lld\n",
				         consumers[c], stream_names[s], p, cur,
				         heads[s][p], lag);
				cr_assert_not_null(strstr(out, want),
				                   "'%s' in:\n%s", want, out);
			}
		}
		snprintf(want, sizeof(want), "\n%s %lld\n", consumers[c],
		         total);
		cr_assert_not_null(strstr(out, want), "'%s' in:\n%s", want,
		                   out);
	}
	/* touches has no consumer: no cursor rows are made up for it. */
	cr_assert_null(strstr(out, "tagging touches"), "%s", out);
	free(out);
}

Test(cli, streams_json_shows_heads_and_lag)
{
	char dsn[POND_TEST_DSN_LEN];
	char *out = NULL;
	size_t i;
	json_t *c;

	streams_setup(dsn, sizeof(dsn));
	cr_assert_eq(cli_run(dsn, "cli-streams-json", &out, "streams",
	                     "--json", NULL),
	             0);
	json_t *doc = pond_test_json(out);
	free(out);

	json_t *jstreams = json_object_get(doc, "streams");
	cr_assert_eq(json_array_size(jstreams), 3);
	for (int s = 0; s < 3; s++) {
		json_t *js = json_array_get(jstreams, (size_t)s);
		long long total = 0;
		cr_assert_str_eq(
		        json_string_value(json_object_get(js, "stream")),
		        stream_names[s]);
		json_t *parts = json_object_get(js, "partitions");
		cr_assert_eq(json_array_size(parts), NPARTS);
		for (int p = 0; p < NPARTS; p++) {
			json_t *jp = json_array_get(parts, (size_t)p);
			cr_assert_eq(json_integer_value(
			                     json_object_get(jp, "partition")),
			             p);
			cr_assert_eq(json_integer_value(
			                     json_object_get(jp, "head")),
			             heads[s][p]);
			total += heads[s][p];
		}
		cr_assert_eq(
		        json_integer_value(json_object_get(js, "head_total")),
		        total);
	}

	json_t *jconsumers = json_object_get(doc, "consumers");
	cr_assert_eq(json_array_size(jconsumers), 2);
	json_array_foreach(jconsumers, i, c)
	{
		const char *name =
		        json_string_value(json_object_get(c, "consumer"));
		long long total = 0;
		size_t nstreams = 0;
		cr_assert_not_null(name);
		for (int s = 0; s < 3; s++) {
			if (!consumes(name, s)) {
				continue;
			}
			json_t *js = json_array_get(
			        json_object_get(c, "streams"), nstreams++);
			long long stream_lag = 0;
			cr_assert_str_eq(json_string_value(json_object_get(
			                         js, "stream")),
			                 stream_names[s]);
			json_t *parts = json_object_get(js, "partitions");
			cr_assert_eq(json_array_size(parts), NPARTS);
			for (int p = 0; p < NPARTS; p++) {
				json_t *jp = json_array_get(parts, (size_t)p);
				long long cur = cursor_of(name, s, p);
				cr_assert_eq(
				        json_integer_value(
				                json_object_get(jp, "cursor")),
				        cur);
				cr_assert_eq(
				        json_integer_value(
				                json_object_get(jp, "head")),
				        heads[s][p]);
				cr_assert_eq(
				        json_integer_value(
				                json_object_get(jp, "lag")),
				        heads[s][p] - cur);
				stream_lag += heads[s][p] - cur;
			}
			cr_assert_eq(
			        json_integer_value(json_object_get(js, "lag")),
			        stream_lag);
			total += stream_lag;
		}
		cr_assert_eq(json_array_size(json_object_get(c, "streams")),
		             nstreams);
		cr_assert_eq(
		        json_integer_value(json_object_get(c, "total_lag")),
		        total, "consumer %s", name);
	}
	json_decref(doc);
}

Test(cli, streams_without_consumers)
{
	char dsn[POND_TEST_DSN_LEN];
	char *out = NULL;

	pond_test_require_pg();
	pond_test_db_create_migrated(dsn, sizeof(dsn), 2);
	cr_assert_eq(cli_run(dsn, "cli-streams-empty", &out, "streams", NULL),
	             0);
	squeeze(out);
	cr_assert_not_null(strstr(out, "\ntouches 1 0\n"), "%s", out);
	cr_assert_not_null(strstr(out, "no consumer cursors yet"), "%s", out);
	free(out);
}
