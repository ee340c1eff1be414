/*
 * rejected.c - `pond rejected list|show|replay`: what ingest refused, and
 * putting it right.
 *
 * Every rejected event is kept in rejected_events with its code, reason and
 * the bytes as they arrived. An operator lists them, shows one as JSON
 * (protobuf events are rendered with the proto3 JSON mapping), fixes it in a
 * file, and replays it: the fix goes to ingest (POST
 * /v1/rejected/ID/replay, admin API token), which validates and settles it
 * like any event, as the original publisher, and marks the row replayed. An
 * event rejected for a reason that has since gone (an alias now linked, a
 * clock that caught up) is replayed as it was, without --file.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "db.h"
#include "pbjson.h"
#include "pond/event.pb-c.h"

static int
rejected_list(pond_cli *cli, int argc, char **argv)
{
	static const char *const cols[] = {"ID",       "PUBLISHER", "EVENT_ID",
	                                   "CODE",     "REASON",    "FORMAT",
	                                   "RECEIVED", "REPLAYED"};
	const char *code = NULL, *limit = "50";
	const pond_cli_opt opts[] = {{"--code", &code, NULL},
	                             {"--limit", &limit, NULL}};
	PGconn *conn;
	PGresult *res;
	int64_t n;
	int rv;

	if ((rv = pond_cli_parse(cli, argc, argv, opts, POND_CLI_NELEM(opts),
	                         NULL, 0, 0)) != 0) {
		return (rv);
	}
	if (!pond_cli_int(limit, 1, 100000, &n)) {
		return (pond_cli_usage(cli, "--limit must be 1..100000"));
	}
	if ((rv = pond_cli_connect(cli, &conn)) != 0) {
		return (rv);
	}
	const char *params[] = {code, limit};
	if (pond_pq_query(conn, &res,
	                  "SELECT r.id, p.name, r.event_id, r.code, "
	                  "left(r.reason, 60), r.format, "
	                  "to_char(r.received_at, 'YYYY-MM-DD HH24:MI:SS'), "
	                  "to_char(r.replayed_at, 'YYYY-MM-DD HH24:MI:SS') "
	                  "FROM rejected_events r "
	                  "LEFT JOIN publishers p ON p.id = r.publisher_id "
	                  "WHERE $1::text IS NULL OR r.code = $1 "
	                  "ORDER BY r.id DESC LIMIT $2",
	                  2, params) != 0) {
		return (pond_cli_fail("cannot read rejected_events"));
	}
	return (pond_cli_print_result(res, 8, cols, "rlllllll"));
}

/* rejected_event_json loads rejected event id as a JSON event; *fail gets
 * the exit status when it returns NULL. */
static json_t *
rejected_event_json(pond_cli *cli, const char *id, int *fail)
{
	const char *params[] = {id};
	const int formats[] = {0};
	PGconn *conn;
	PGresult *res;
	json_t *event = NULL;

	if ((*fail = pond_cli_connect(cli, &conn)) != 0) {
		return (NULL);
	}
	res = PQexecParams(
	        conn,
	        "SELECT format, raw FROM rejected_events WHERE id = "
	        "$1::bigint",
	        1, NULL, params, NULL, formats, 1);
	if (pond_pq_check(conn, res, "rejected_show") != 0 ||
	    PQntuples(res) == 0) {
		PQclear(res);
		*fail = pond_cli_fail("no rejected event %s", id);
		return (NULL);
	}
	const char *raw = PQgetvalue(res, 0, 1);
	size_t len = (size_t)PQgetlength(res, 0, 1);
	if (strcmp(PQgetvalue(res, 0, 0), "json") == 0) {
		event = json_loadb(raw, len, 0, NULL);
	} else {
		Pond__Event *e =
		        pond__event__unpack(NULL, len, (const uint8_t *)raw);
		if (e != NULL) {
			event = pond_pbjson_encode(&e->base, false);
			pond__event__free_unpacked(e, NULL);
		}
	}
	PQclear(res);
	if (!json_is_object(event)) {
		json_decref(event);
		*fail = pond_cli_fail(
		        "rejected event %s is not a JSON object "
		        "or a pond.Event; fix it from its raw "
		        "bytes (SELECT raw FROM rejected_events)",
		        id);
		return (NULL);
	}
	return (event);
}

static int
rejected_show(pond_cli *cli, int argc, char **argv)
{
	char *pos[1];
	json_t *event;
	int rv;

	if ((rv = pond_cli_parse(cli, argc, argv, NULL, 0, pos, 1, 1)) != 0) {
		return (rv);
	}
	if ((event = rejected_event_json(cli, pos[0], &rv)) == NULL) {
		return (rv);
	}
	json_dumpf(event, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	json_decref(event);
	return (POND_CLI_OK);
}

static int
rejected_replay(pond_cli *cli, int argc, char **argv)
{
	const char *file = NULL, *url = getenv("POND_INGEST_HTTP_URL");
	const char *token = getenv("POND_API_TOKEN");
	const pond_cli_opt opts[] = {{"--file", &file, NULL},
	                             {"--url", &url, NULL},
	                             {"--token", &token, NULL}};
	char *pos[1], path[64], *body, *reply = NULL;
	json_t *event, *result;
	int64_t id;
	int rv, status;

	if ((rv = pond_cli_parse(cli, argc, argv, opts, POND_CLI_NELEM(opts),
	                         pos, 1, 1)) != 0) {
		return (rv);
	}
	if (!pond_cli_int(pos[0], 1, INT64_MAX, &id)) {
		return (pond_cli_usage(cli, "ID must be a rejected event id"));
	}
	if (token == NULL || *token == '\0') {
		return (pond_cli_usage(cli, "an admin API token is needed: "
		                            "--token or POND_API_TOKEN"));
	}
	if (file != NULL) {
		json_error_t jerr;
		if ((event = json_load_file(file, 0, &jerr)) == NULL) {
			return (pond_cli_fail("%s: line %d: %s", file,
			                      jerr.line, jerr.text));
		}
	} else if ((event = rejected_event_json(cli, pos[0], &rv)) == NULL) {
		return (rv);
	}
	result = json_pack("{s:o}", "event", event);
	body = json_dumps(result, JSON_COMPACT);
	json_decref(result);
	snprintf(path, sizeof(path), "/v1/rejected/%lld/replay",
	         (long long)id);
	rv = pond_cli_http(
	        url != NULL && *url != '\0' ? url : "http://127.0.0.1:8400",
	        "POST", path, token, body != NULL ? body : "", &status,
	        &reply);
	free(body);
	if (rv != 0) {
		free(reply);
		return (pond_cli_fail("cannot reach ingest over HTTP"));
	}
	printf("%d %s\n", status, reply != NULL ? reply : "");
	rv = status == 200 && reply != NULL &&
	                     strstr(reply, "\"status\":\"rejected\"") == NULL
	             ? POND_CLI_OK
	             : POND_CLI_FAIL;
	free(reply);
	return (rv);
}

static const pond_cli_command rejected_commands[] = {
        {"rejected list", "[--code CODE] [--limit N]",
         "the newest rejected events, with code and reason", rejected_list},
        {"rejected show", "ID", "a rejected event as JSON, to fix",
         rejected_show},
        {"rejected replay", "ID [--file FIXED.json] [--url URL] [--token T]",
         "send a (fixed) rejected event through ingest again",
         rejected_replay},
};
POND_CLI_COMMANDS(rejected_commands)
