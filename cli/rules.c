/*
 * rules.c - `pond rules list|put|rm`: the tag rules of the tagging service.
 *
 * The same table and the same rules as the HTTP API on port 8401 (API.md
 * section 5): a condition is checked with the shared parser (common/cond.c)
 * before it is stored (a malformed one is refused with its path and what
 * was expected), and every write bumps tag_rules_version in the same
 * transaction, which is what makes the running pond-tagging re-evaluate
 * every customer, in batches, within a sweep period.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cond.h"
#include "db.h"

#define BUMP_SQL                                                              \
	"UPDATE pond_settings SET value = (value::bigint + 1)::text WHERE "   \
	"key = 'tag_rules_version'"

static int
rules_list(pond_cli *cli, int argc, char **argv)
{
	static const char *const cols[] = {"TAG", "UPDATED_AT", "CONDITION"};

	return (pond_cli_list(cli, argc, argv,
	                      "SELECT tag, to_char(updated_at AT TIME ZONE "
	                      "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	                      "condition::text FROM tag_rules ORDER BY tag",
	                      3, cols, "lll", "tag rules"));
}

/* rules_write runs sql (one row back) and the version bump in one
 * transaction; *found tells whether the row was there. */
static int
rules_write(PGconn *conn, const char *sql, int n, const char *const *params,
            bool *found)
{
	PGresult *res = NULL;
	int rv;

	if ((rv = pond_pq_exec(conn, "BEGIN")) != 0) {
		return (rv);
	}
	if ((rv = pond_pq_query(conn, &res, sql, n, params)) != 0) {
		goto fail;
	}
	*found = PQntuples(res) > 0;
	PQclear(res);
	if (!*found) {
		pond_pq_rollback(conn);
		return (POND_OK);
	}
	if ((rv = pond_pq_exec(conn, BUMP_SQL)) != 0 ||
	    (rv = pond_pq_exec(conn, "COMMIT")) != 0) {
		goto fail;
	}
	return (POND_OK);
fail:
	pond_pq_rollback(conn);
	return (rv);
}

static int
rules_put(pond_cli *cli, int argc, char **argv)
{
	char *pos[2] = {0};
	const char *why;
	json_error_t jerr;
	pond_cond_error cerr;
	pond_cond *cond = NULL;
	PGconn *conn;
	bool found;
	int rv;

	if ((rv = pond_cli_parse(cli, argc, argv, NULL, 0, pos, 2, 2)) != 0) {
		return (rv);
	}
	if (!pond_tag_name_ok(pos[0], &why)) {
		return (pond_cli_usage(cli, "bad tag '%s': %s", pos[0], why));
	}
	json_t *j = json_loads(pos[1], 0, &jerr);
	if (j == NULL) {
		return (pond_cli_fail("condition is not JSON: line %d, column "
		                      "%d: %s",
		                      jerr.line, jerr.column, jerr.text));
	}
	if (pond_cond_parse(j, &cond, &cerr) != 0) {
		json_decref(j);
		return (pond_cli_fail("bad condition at %s: %s", cerr.path,
		                      cerr.message));
	}
	pond_cond_free(cond);
	char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	if (text == NULL) {
		return (pond_cli_fail("out of memory"));
	}
	const char *params[] = {pos[0], text};
	if ((rv = pond_cli_connect(cli, &conn)) == 0 &&
	    rules_write(
	            conn,
	            "INSERT INTO tag_rules (tag, condition) VALUES ($1, "
	            "$2::jsonb) ON CONFLICT (tag) DO UPDATE SET condition "
	            "= EXCLUDED.condition, updated_at = now() RETURNING tag",
	            2, params, &found) != 0) {
		rv = pond_cli_fail("cannot store the rule");
	}
	free(text);
	if (rv == 0) {
		fprintf(stderr, "rule '%s' stored\n", pos[0]);
	}
	return (rv);
}

static int
rules_rm(pond_cli *cli, int argc, char **argv)
{
	char *tag = NULL;
	PGconn *conn;
	bool found;
	int rv;

	if ((rv = pond_cli_parse(cli, argc, argv, NULL, 0, &tag, 1, 1)) != 0 ||
	    (rv = pond_cli_connect(cli, &conn)) != 0) {
		return (rv);
	}
	const char *params[] = {tag};
	if (rules_write(conn,
	                "DELETE FROM tag_rules WHERE tag = $1 RETURNING "
	                "tag",
	                1, params, &found) != 0) {
		return (pond_cli_fail("cannot remove the rule"));
	}
	if (!found) {
		return (pond_cli_fail("no rule for tag '%s'", tag));
	}
	fprintf(stderr, "rule '%s' removed\n", tag);
	return (POND_CLI_OK);
}

static const pond_cli_command rules_commands[] = {
        {"rules list", "", "list the tag rules", rules_list},
        {"rules put", "TAG CONDITION_JSON",
         "add or change the rule of TAG (API.md section 5)", rules_put},
        {"rules rm", "TAG", "remove the rule of TAG (the tag comes off)",
         rules_rm},
};
POND_CLI_COMMANDS(rules_commands)
