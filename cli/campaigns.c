/*
 * campaigns.c - `pond campaigns create|list|show|pause|resume`: the
 * scheduler's campaigns (API.md section 3) from the command line.
 *
 * The same JSON as POST /v1/campaigns, checked and stored by the same code
 * (services/scheduler/campaign.c, linked into the CLI), so a spec the API
 * refuses the CLI refuses with the same words. A running pond-scheduler
 * reads campaigns afresh in every transaction: no restart needed.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "db.h"
#include "scheduler.h"

/* print_json writes j (taking it) to stdout, indented. */
static int
print_json(json_t *j)
{
	char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);

	json_decref(j);
	if (text == NULL) {
		return (pond_cli_fail("out of memory"));
	}
	printf("%s\n", text);
	free(text);
	return (POND_CLI_OK);
}

static int
campaigns_create(pond_cli *cli, int argc, char **argv)
{
	char *file = NULL, why[300] = "";
	json_error_t jerr;
	json_t *spec, *reply;
	PGconn *conn;
	int rv;

	if ((rv = pond_cli_parse(cli, argc, argv, NULL, 0, &file, 1, 1)) !=
	    0) {
		return (rv);
	}
	spec = strcmp(file, "-") == 0 ? json_loadf(stdin, 0, &jerr)
	                              : json_load_file(file, 0, &jerr);
	if (spec == NULL) {
		return (pond_cli_fail("%s: not JSON: line %d, column %d: %s",
		                      file, jerr.line, jerr.column,
		                      jerr.text));
	}
	if ((rv = pond_cli_connect(cli, &conn)) != 0) {
		json_decref(spec);
		return (rv);
	}
	rv = scheduler_campaign_create(conn, spec, &reply, why, sizeof(why));
	json_decref(spec);
	if (rv == POND_EINVAL || rv == POND_EEXIST) {
		return (pond_cli_fail("campaign refused: %s", why));
	}
	if (rv != 0) {
		return (pond_cli_fail("cannot store the campaign"));
	}
	return (print_json(reply));
}

static int
campaigns_list(pond_cli *cli, int argc, char **argv)
{
	static const char *const cols[] = {"ID",     "NAME", "TRIGGER",
	                                   "STATUS", "USED", "QUOTA"};

	return (pond_cli_list(cli, argc, argv,
	                      "SELECT id, name, trigger_kind || ':' || "
	                      "trigger_value, CASE WHEN paused THEN 'paused' "
	                      "ELSE 'active' END, used, quota FROM campaigns "
	                      "ORDER BY created_at, id",
	                      6, cols, "lllrrr", "campaigns"));
}

/* campaigns_one runs show, pause or resume on the ID argument. */
static int
campaigns_one(pond_cli *cli, int argc, char **argv, int action)
{
	char *id = NULL;
	json_t *reply;
	PGconn *conn;
	int rv;

	if ((rv = pond_cli_parse(cli, argc, argv, NULL, 0, &id, 1, 1)) != 0 ||
	    (rv = pond_cli_connect(cli, &conn)) != 0) {
		return (rv);
	}
	rv = action == 0
	             ? scheduler_campaign_show(conn, id, &reply)
	             : scheduler_campaign_pause(conn, id, action == 1, &reply);
	if (rv == POND_ENOENT) {
		return (pond_cli_fail("no campaign '%s'", id));
	}
	if (rv != 0) {
		return (pond_cli_fail("cannot read the campaign"));
	}
	return (print_json(reply));
}

static int
campaigns_show(pond_cli *cli, int argc, char **argv)
{
	return (campaigns_one(cli, argc, argv, 0));
}

static int
campaigns_pause(pond_cli *cli, int argc, char **argv)
{
	return (campaigns_one(cli, argc, argv, 1));
}

static int
campaigns_resume(pond_cli *cli, int argc, char **argv)
{
	return (campaigns_one(cli, argc, argv, 2));
}

static const pond_cli_command campaign_commands[] = {
        {"campaigns create", "FILE|-",
         "define a campaign from its JSON (docs/campaigns.md)",
         campaigns_create},
        {"campaigns list", "", "list the campaigns", campaigns_list},
        {"campaigns show", "ID", "print a campaign with its touch counts",
         campaigns_show},
        {"campaigns pause", "ID",
         "pause a campaign (its selections are "
         "suppressed: paused)",
         campaigns_pause},
        {"campaigns resume", "ID", "resume a paused campaign",
         campaigns_resume},
};
POND_CLI_COMMANDS(campaign_commands)
