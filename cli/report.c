/*
 * report.c - `pond report NAME --from ... --to ...` prints any report of
 * API.md section 4 as a table (or, with --json, the reply of the HTTP
 * API), and `pond goals ...` lists, sets and removes the SMART goals.
 *
 * The CLI runs the reporting service's own report code (services/
 * reporting, linked in) against the store named by POND_DSN, so a report
 * printed here and one served on port 8403 are the same computation over
 * the same fact tables. POND_TZ, POND_COMMISSION_TIERS and
 * POND_ATTRIBUTION_H mean what they mean for pond-reporting.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "db.h"
#include "reporting.h"

/* report_env reads a variable pond-reporting also reads, or def. */
static const char *
report_env(const char *name, const char *def)
{
	const char *v = getenv(name);

	return (v != NULL && *v != '\0' ? v : def);
}

/* report_setup fills rp as pond-reporting's config would. */
static int
report_setup(reporting *rp)
{
	const char *why = NULL;
	int64_t hours;

	memset(rp, 0, sizeof(*rp));
	rp->tz = report_env("POND_TZ", "Asia/Shanghai");
	setenv("TZ", rp->tz, 1);
	tzset();
	if (reporting_tiers_parse(
	            report_env("POND_COMMISSION_TIERS",
	                       "0:0.03,1000000:0.05,5000000:0.08"),
	            rp->tiers, &rp->ntiers, &why) != 0) {
		return (pond_cli_fail("POND_COMMISSION_TIERS: %s", why));
	}
	if (!pond_cli_int(report_env("POND_ATTRIBUTION_H", "72"), 1, 8760,
	                  &hours)) {
		return (pond_cli_fail("POND_ATTRIBUTION_H: 1 to 8760 hours"));
	}
	rp->conf.attribution_h = hours;
	return (POND_CLI_OK);
}

/* cell_text formats one JSON value for a table cell (the caller frees). */
static char *
cell_text(json_t *v)
{
	char *s = NULL;

	if (v == NULL || json_is_null(v)) {
		return (strdup("-"));
	}
	if (json_is_string(v)) {
		return (strdup(json_string_value(v)));
	}
	if (json_is_integer(v)) {
		return (asprintf(&s, "%lld",
		                 (long long)json_integer_value(v)) < 0
		                ? NULL
		                : s);
	}
	if (json_is_real(v)) {
		return (asprintf(&s, "%.15g", json_real_value(v)) < 0 ? NULL
		                                                      : s);
	}
	if (json_is_boolean(v)) {
		return (strdup(json_is_true(v) ? "true" : "false"));
	}
	return (json_dumps(v, JSON_COMPACT));
}

/* print_objects prints an array of objects as a table whose columns are
 * the first object's keys, in order. */
static int
print_objects(json_t *rows)
{
	json_t *first = json_array_get(rows, 0), *row, *v;
	const char *headers[32], *key;
	char align[33] = "";
	size_t ncols = 0, i;
	pond_cli_table t;
	int rv = POND_CLI_OK;

	if (first == NULL) {
		printf("(no rows)\n");
		return (POND_CLI_OK);
	}
	json_object_foreach(first, key, v)
	{
		if (ncols < 32) {
			headers[ncols] = key;
			align[ncols++] = json_is_number(v) ? 'r' : 'l';
		}
	}
	pond_cli_table_init(&t, ncols, headers, align);
	json_array_foreach(rows, i, row)
	{
		char *cells[32] = {0};
		for (size_t c = 0; c < ncols; c++) {
			cells[c] = cell_text(json_object_get(row, headers[c]));
		}
		if (pond_cli_table_row(&t, (const char *const *)cells) != 0) {
			rv = POND_CLI_FAIL;
		}
		for (size_t c = 0; c < ncols; c++) {
			free(cells[c]);
		}
	}
	pond_cli_table_print(&t, stdout);
	pond_cli_table_free(&t);
	return (rv);
}

/* print_reply prints a report's rows, then its total as NAME VALUE. */
static int
print_reply(json_t *reply)
{
	static const char *const cols[] = {"TOTAL", "VALUE"};
	json_t *total = json_object_get(reply, "total"), *v;
	const char *key;
	pond_cli_table t;
	int rv;

	if (json_array_size(json_object_get(reply, "rows")) > 0 ||
	    !json_is_object(total)) {
		if ((rv = print_objects(json_object_get(reply, "rows"))) !=
		    0) {
			return (rv);
		}
	}
	if (!json_is_object(total)) {
		return (POND_CLI_OK);
	}
	pond_cli_table_init(&t, 2, cols, "lr");
	json_object_foreach(total, key, v)
	{
		char *text = cell_text(v);
		const char *cells[] = {key, text};
		rv = pond_cli_table_row(&t, cells);
		free(text);
		if (rv != 0) {
			pond_cli_table_free(&t);
			return (POND_CLI_FAIL);
		}
	}
	printf("\n");
	pond_cli_table_print(&t, stdout);
	pond_cli_table_free(&t);
	return (POND_CLI_OK);
}

static int
report_finish(int rv, json_t *out, const reporting_error *err, bool as_json)
{
	if (rv != 0) {
		return (pond_cli_fail("%s", err->status != 0
		                                    ? err->message
		                                    : "the store failed"));
	}
	if (as_json) {
		char *text = json_dumps(out, JSON_INDENT(2));
		printf("%s\n", text != NULL ? text : "null");
		free(text);
		rv = POND_CLI_OK;
	} else if (json_is_array(json_object_get(out, "goals"))) {
		rv = print_objects(json_object_get(out, "goals"));
	} else {
		rv = print_reply(out);
	}
	json_decref(out);
	return (rv);
}

static int
report_run(pond_cli *cli, int argc, char **argv)
{
	/* Options carry the query parameters of the HTTP API, dashes for
	 * underscores; values[i] goes with reporting_param_names order. */
	static const char *const names[] = {
	        "from",        "to",     "as_of",           "channel",
	        "days",        "margin", "weeks",           "window_days",
	        "campaign_id", "tag",    "invitees_needed", "group_by",
	};
	static const char *const opt_names[] = {
	        "--from",
	        "--to",
	        "--as-of",
	        "--channel",
	        "--days",
	        "--margin",
	        "--weeks",
	        "--window-days",
	        "--campaign-id",
	        "--tag",
	        "--invitees-needed",
	        "--group-by",
	};
	enum { NOPT = sizeof(names) / sizeof(names[0]) };
	const char *values[NOPT] = {0};
	pond_cli_opt opts[NOPT + 1];
	bool as_json = false;
	char *name = NULL;
	reporting_kv kv[NOPT];
	reporting_error err = {0};
	reporting rp;
	json_t *out = NULL;
	PGconn *conn;
	size_t n = 0;
	int rv;

	for (size_t i = 0; i < NOPT; i++) {
		opts[i] = (pond_cli_opt){opt_names[i], &values[i], NULL};
	}
	opts[NOPT] = (pond_cli_opt){"--json", NULL, &as_json};
	if ((rv = pond_cli_parse(cli, argc, argv, opts, NOPT + 1, &name, 1,
	                         1)) != 0 ||
	    (rv = report_setup(&rp)) != 0 ||
	    (rv = pond_cli_connect(cli, &conn)) != 0) {
		return (rv);
	}
	for (size_t i = 0; i < NOPT; i++) {
		if (values[i] != NULL) {
			kv[n++] = (reporting_kv){names[i], values[i]};
		}
	}
	if (strcmp(name, "goals") == 0) {
		rv = reporting_goals_list(conn, &rp, &out, &err);
	} else {
		rv = reporting_run(conn, &rp, name, kv, n, &out, &err);
	}
	return (report_finish(rv, out, &err, as_json));
}

static int
goals_put(pond_cli *cli, int argc, char **argv)
{
	char *pos[2] = {0};
	reporting_error err = {0};
	reporting rp;
	json_t *out = NULL;
	PGconn *conn;
	int rv;

	if ((rv = pond_cli_parse(cli, argc, argv, NULL, 0, pos, 2, 2)) != 0 ||
	    (rv = report_setup(&rp)) != 0 ||
	    (rv = pond_cli_connect(cli, &conn)) != 0) {
		return (rv);
	}
	rv = reporting_goal_put(conn, &rp, pos[0], pos[1], &out, &err);
	return (report_finish(rv, out, &err, true));
}

static int
goals_rm(pond_cli *cli, int argc, char **argv)
{
	char *id = NULL;
	reporting_error err = {0};
	reporting rp;
	json_t *out = NULL;
	PGconn *conn;
	int rv;

	if ((rv = pond_cli_parse(cli, argc, argv, NULL, 0, &id, 1, 1)) != 0 ||
	    (rv = report_setup(&rp)) != 0 ||
	    (rv = pond_cli_connect(cli, &conn)) != 0) {
		return (rv);
	}
	rv = reporting_goal_delete(conn, &rp, id, &out, &err);
	if (rv == 0) {
		fprintf(stderr, "goal '%s' removed\n", id);
		json_decref(out);
		return (POND_CLI_OK);
	}
	return (report_finish(rv, out, &err, false));
}

static const pond_cli_command report_commands[] = {
        {"report",
         "NAME [--from T --to T] [--as-of T] [--channel C] "
         "[--days 30,60] [--margin M] [--weeks N] "
         "[--window-days N] [--campaign-id ID] [--tag T] "
         "[--invitees-needed N] [--group-by G] [--json]",
         "print a report (acquisition, ltv, payback, repurchase, "
         "lifecycle, retention, funnel, campaigns[/ID], fission, guides, "
         "portrait, goals) as a table",
         report_run},
        {"goals put", "ID GOAL_JSON",
         "set SMART goal ID (at most 3; docs/api.md)", goals_put},
        {"goals rm", "ID", "remove SMART goal ID", goals_rm},
};
POND_CLI_COMMANDS(report_commands)
