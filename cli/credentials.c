/*
 * credentials.c - `pond publishers ...` and `pond tokens ...`.
 *
 * Publishers (who may send events) and API tokens (who may read reports or
 * administer campaigns) are the same thing to an operator: a name and a
 * secret token that is printed once. Both are handled by one set of
 * functions over a cli_kind that holds each table's SQL. The token is
 * generated here, printed on stdout, passed to the store only as a query
 * parameter that sha256() consumes, and wiped from memory afterwards.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "db.h"
#include "log.h"
#include "token.h"

typedef struct cli_kind {
	const char *noun;   /* "publisher" */
	const char *prefix; /* of its tokens */
	/* $1 name, $2 token, $3 role (tokens only); returns id. */
	const char *insert_sql;
	/* $1 name; returns revoked_at (NULL while live). */
	const char *find_sql;
	/* $1 name; returns the row revoked now, none if it was not live. */
	const char *revoke_sql;
	const char *list_sql;
	const char *const *list_headers;
	const char *list_align;
	size_t list_cols;
} cli_kind;

/* Times are shown in UTC, the session time zone pond_pq_connect sets. */
#define CLI_TIME(col) "to_char(" col ", 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static const char *const publisher_headers[] = {"ID", "NAME", "CREATED",
                                                "REVOKED"};

static const cli_kind publisher_kind = {
        .noun = "publisher",
        .prefix = "pub_",
        .insert_sql =
                "INSERT INTO publishers (name, token_hash) "
                "VALUES ($1, " POND_TOKEN_HASH_SQL("$2") ") RETURNING id",
        .find_sql = "SELECT " CLI_TIME(
                "revoked_at") " FROM publishers WHERE name = $1",
        .revoke_sql = "UPDATE publishers SET revoked_at = now() "
                      "WHERE name = $1 AND revoked_at IS NULL RETURNING id",
        .list_sql = "SELECT id, name, " CLI_TIME("created_at") ", " CLI_TIME(
                "revoked_at") " FROM publishers ORDER BY name",
        .list_headers = publisher_headers,
        .list_align = "rlll",
        .list_cols = 4,
};

static const char *const token_headers[] = {"NAME", "ROLE", "CREATED",
                                            "REVOKED"};

static const cli_kind token_kind = {
        .noun = "API token",
        .prefix = "api_",
        .insert_sql = "INSERT INTO api_tokens (name, token_hash, role) "
                      "VALUES ($1, " POND_TOKEN_HASH_SQL("$2") ", $3) "
                                                               "RETURNING id",
        .find_sql = "SELECT " CLI_TIME(
                "revoked_at") " FROM api_tokens WHERE name = $1",
        .revoke_sql = "UPDATE api_tokens SET revoked_at = now() "
                      "WHERE name = $1 AND revoked_at IS NULL RETURNING id",
        .list_sql = "SELECT name, role, " CLI_TIME("created_at") ", " CLI_TIME(
                "revoked_at") " FROM api_tokens ORDER BY name",
        .list_headers = token_headers,
        .list_align = "llll",
        .list_cols = 4,
};

/* cli_find_named tells whether name exists (*found) and, if so, whether it
 * is revoked (its time into revoked, "" while live). */
static int
cli_find_named(PGconn *conn, const cli_kind *kind, const char *name,
               bool *found, char *revoked, size_t len)
{
	const char *params[1] = {name};
	PGresult *res;
	int rv;

	if ((rv = pond_pq_query(conn, &res, kind->find_sql, 1, params)) != 0) {
		return (rv);
	}
	*found = PQntuples(res) == 1;
	snprintf(revoked, len, "%s", *found ? PQgetvalue(res, 0, 0) : "");
	PQclear(res);
	return (POND_OK);
}

/* cli_add creates name (with role, NULL for publishers) and prints its
 * token once. */
static int
cli_add(pond_cli *cli, const cli_kind *kind, const char *name,
        const char *role)
{
	char token[POND_TOKEN_MAX];
	char revoked[64];
	const char *params[3] = {name, token, role};
	bool found;
	PGconn *conn;
	int rv;

	if (!pond_cli_name_ok(name)) {
		return (pond_cli_usage(
		        cli,
		        "bad name '%s': use 1..%d letters, digits or .-_:",
		        name, POND_CLI_NAME_MAX));
	}
	if ((rv = pond_cli_connect(cli, &conn)) != 0) {
		return (rv);
	}
	/* Checked first only for a clean message; the UNIQUE constraint is
	 * what holds against a concurrent add. */
	if (cli_find_named(conn, kind, name, &found, revoked,
	                   sizeof(revoked)) != 0) {
		return (pond_cli_fail("cannot read the %ss", kind->noun));
	}
	if (found) {
		return (pond_cli_fail("%s '%s' already exists%s", kind->noun,
		                      name,
		                      *revoked != '\0' ? " (revoked)" : ""));
	}
	if ((rv = pond_token_generate(kind->prefix, token, sizeof(token))) !=
	    0) {
		return (pond_cli_fail("cannot generate a token: %s",
		                      pond_strerror(rv)));
	}
	rv = pond_pq_query(conn, NULL, kind->insert_sql, role != NULL ? 3 : 2,
	                   params);
	if (rv == POND_EEXIST) {
		rv = pond_cli_fail("%s '%s' already exists", kind->noun, name);
		goto out;
	}
	if (rv != 0) {
		rv = pond_cli_fail("cannot add %s '%s': %s", kind->noun, name,
		                   pond_strerror(rv));
		goto out;
	}
	fprintf(stderr,
	        "%s '%s' added%s%s; its token is shown only this once:\n",
	        kind->noun, name, role != NULL ? " with role " : "",
	        role != NULL ? role : "");
	printf("%s\n", token);
	rv = POND_CLI_OK;

out:
	explicit_bzero(token, sizeof(token));
	return (rv);
}

static int
cli_list(pond_cli *cli, const cli_kind *kind, int argc, char **argv)
{
	char what[64];

	snprintf(what, sizeof(what), "%ss", kind->noun);
	return (pond_cli_list(cli, argc, argv, kind->list_sql, kind->list_cols,
	                      kind->list_headers, kind->list_align, what));
}

static int
cli_revoke(pond_cli *cli, const cli_kind *kind, int argc, char **argv)
{
	char *name = NULL;
	char revoked[64];
	const char *params[1];
	PGresult *res;
	PGconn *conn;
	bool found;
	int rv;

	if ((rv = pond_cli_parse(cli, argc, argv, NULL, 0, &name, 1, 1)) !=
	            0 ||
	    (rv = pond_cli_connect(cli, &conn)) != 0) {
		return (rv);
	}
	params[0] = name;
	if (pond_pq_query(conn, &res, kind->revoke_sql, 1, params) != 0) {
		return (pond_cli_fail("cannot revoke %s '%s'", kind->noun,
		                      name));
	}
	int n = PQntuples(res);
	PQclear(res);
	if (n == 1) {
		printf("revoked %s '%s'\n", kind->noun, name);
		return (POND_CLI_OK);
	}
	if (cli_find_named(conn, kind, name, &found, revoked,
	                   sizeof(revoked)) != 0) {
		return (pond_cli_fail("cannot read the %ss", kind->noun));
	}
	if (!found) {
		return (pond_cli_fail("no %s named '%s'", kind->noun, name));
	}
	/* Revoking twice is what the operator wanted anyway. */
	printf("%s '%s' was already revoked at %s\n", kind->noun, name,
	       revoked);
	return (POND_CLI_OK);
}

static int
cmd_publishers_add(pond_cli *cli, int argc, char **argv)
{
	char *name = NULL;
	int rv;

	if ((rv = pond_cli_parse(cli, argc, argv, NULL, 0, &name, 1, 1)) !=
	    0) {
		return (rv);
	}
	return (cli_add(cli, &publisher_kind, name, NULL));
}

static int
cmd_publishers_list(pond_cli *cli, int argc, char **argv)
{
	return (cli_list(cli, &publisher_kind, argc, argv));
}

static int
cmd_publishers_revoke(pond_cli *cli, int argc, char **argv)
{
	return (cli_revoke(cli, &publisher_kind, argc, argv));
}

static int
cmd_tokens_add(pond_cli *cli, int argc, char **argv)
{
	const char *role = NULL;
	const pond_cli_opt opts[] = {{"--role", &role, NULL}};
	char *name = NULL;
	int rv;

	if ((rv = pond_cli_parse(cli, argc, argv, opts, POND_CLI_NELEM(opts),
	                         &name, 1, 1)) != 0) {
		return (rv);
	}
	if (role == NULL) {
		return (pond_cli_usage(cli, "--role is required"));
	}
	if (strcmp(role, "read") != 0 && strcmp(role, "admin") != 0) {
		return (pond_cli_usage(
		        cli, "--role: '%s' is not read or admin", role));
	}
	return (cli_add(cli, &token_kind, name, role));
}

static int
cmd_tokens_list(pond_cli *cli, int argc, char **argv)
{
	return (cli_list(cli, &token_kind, argc, argv));
}

static int
cmd_tokens_revoke(pond_cli *cli, int argc, char **argv)
{
	return (cli_revoke(cli, &token_kind, argc, argv));
}

static const pond_cli_command credential_commands[] = {
        {"publishers add", "NAME", "add a publisher; print its token once",
         cmd_publishers_add},
        {"publishers list", "", "list publishers", cmd_publishers_list},
        {"publishers revoke", "NAME", "revoke a publisher's token",
         cmd_publishers_revoke},
        {"tokens add", "NAME --role read|admin",
         "add an API token; print it once", cmd_tokens_add},
        {"tokens list", "", "list API tokens", cmd_tokens_list},
        {"tokens revoke", "NAME", "revoke an API token", cmd_tokens_revoke},
};
POND_CLI_COMMANDS(credential_commands)
