/*
 * send.c - `pond send FILE`: publish events from a JSON file over NNG.
 *
 * The file holds {"events": [...]} (the body of POST /v1/events) or a bare
 * array. Events are sent in IngestBatch messages of at most 500 over NNG
 * REQ/REP, exactly as a publisher would (cli/publish.c, shared with `pond
 * demo`), and the acks are summed up; each rejected event is printed with
 * its code and reason. It is the simplest publisher there is: operators
 * use it to load or replay files, and docs/ingest.md shows it as an
 * example.
 */
#include <stdlib.h>

#include "cli.h"

static int
send_run(pond_cli *cli, int argc, char **argv)
{
	const char *url = getenv("POND_INGEST_URL");
	const char *token = getenv("POND_TOKEN");
	const pond_cli_opt opts[] = {{"--url", &url, NULL},
	                             {"--token", &token, NULL}};
	char *pos[1];
	json_error_t jerr;
	json_t *root, *list;
	nng_socket sock;
	pond_cli_publish_totals tot = {0};
	int rv;

	if ((rv = pond_cli_parse(cli, argc, argv, opts, POND_CLI_NELEM(opts),
	                         pos, 1, 1)) != 0) {
		return (rv);
	}
	if (url == NULL || *url == '\0') {
		url = "tcp://127.0.0.1:7400";
	}
	if (token == NULL || *token == '\0') {
		return (pond_cli_usage(cli, "a publisher token is needed: "
		                            "--token or POND_TOKEN"));
	}
	if ((root = json_load_file(pos[0], 0, &jerr)) == NULL) {
		return (pond_cli_fail("%s: line %d: %s", pos[0], jerr.line,
		                      jerr.text));
	}
	list = json_is_array(root) ? root : json_object_get(root, "events");
	if (!json_is_array(list)) {
		json_decref(root);
		return (pond_cli_fail("%s: expected {\"events\": [...]} or an "
		                      "array of events",
		                      pos[0]));
	}
	if ((rv = pond_cli_publish_open(&sock, url)) != 0) {
		json_decref(root);
		return (rv);
	}
	rv = pond_cli_publish(sock, token, list, &tot, NULL, NULL);
	nng_close(sock);
	json_decref(root);
	printf("%zu accepted, %zu duplicate, %zu rejected\n", tot.accepted,
	       tot.duplicate, tot.rejected);
	return (rv);
}

static const pond_cli_command send_commands[] = {
        {"send", "FILE [--url URL] [--token TOKEN]",
         "publish the events of a JSON file to ingest over NNG", send_run},
};
POND_CLI_COMMANDS(send_commands)
