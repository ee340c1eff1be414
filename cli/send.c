/*
 * send.c - `pond send FILE`: publish events from a JSON file over NNG.
 *
 * The file holds {"events": [...]} (the body of POST /v1/events) or a bare
 * array. Events are sent in IngestBatch messages of at most 500 over NNG
 * REQ/REP, exactly as a publisher would, and the acks are summed up; each
 * rejected event is printed with its code and reason. It is the simplest
 * publisher there is: operators use it to load or replay files, `make run`
 * uses it for the demo traffic, and docs/ingest.md shows it as an example.
 */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pbjson.h"
#include "pond/ingest.pb-c.h"

#define SEND_BATCH      500
#define SEND_TIMEOUT_MS 30000

typedef struct send_totals {
	size_t accepted, duplicate, rejected;
} send_totals;

static int
send_batch(nng_socket sock, Pond__IngestBatch *batch, send_totals *tot)
{
	size_t len = pond__ingest_batch__get_packed_size(batch);
	uint8_t *buf = malloc(len + 1);
	void *reply = NULL;
	size_t rlen = 0;
	Pond__IngestAck *ack;
	int nrv;

	if (buf == NULL) {
		return (pond_cli_fail("out of memory"));
	}
	pond__ingest_batch__pack(batch, buf);
	nrv = nng_send(sock, buf, len, 0);
	free(buf);
	if (nrv != 0 ||
	    (nrv = nng_recv(sock, &reply, &rlen, NNG_FLAG_ALLOC))) {
		return (pond_cli_fail("no answer from ingest: %s",
		                      nng_strerror(nrv)));
	}
	ack = pond__ingest_ack__unpack(NULL, rlen, reply);
	nng_free(reply, rlen);
	if (ack == NULL) {
		return (pond_cli_fail(
		        "ingest answered something that is not an "
		        "IngestAck"));
	}
	if (ack->batch_error != NULL) {
		int rv = pond_cli_fail("batch refused: %s: %s",
		                       ack->batch_error->code,
		                       ack->batch_error->message);
		pond__ingest_ack__free_unpacked(ack, NULL);
		return (rv);
	}
	for (size_t i = 0; i < ack->n_results; i++) {
		const Pond__IngestResult *r = ack->results[i];
		if (strcmp(r->status, "accepted") == 0) {
			tot->accepted++;
		} else if (strcmp(r->status, "duplicate") == 0) {
			tot->duplicate++;
		} else {
			tot->rejected++;
			fprintf(stderr, "rejected %s: %s: %s\n", r->event_id,
			        r->code, r->reason);
		}
	}
	pond__ingest_ack__free_unpacked(ack, NULL);
	return (POND_CLI_OK);
}

/* send_events decodes the events of list and sends them in batches. */
static int
send_events(nng_socket sock, const char *token, json_t *list, send_totals *tot)
{
	Pond__Event *events[SEND_BATCH];
	size_t n = json_array_size(list);
	int rv = POND_CLI_OK;

	for (size_t start = 0; start < n && rv == 0; start += SEND_BATCH) {
		Pond__IngestBatch batch = POND__INGEST_BATCH__INIT;
		size_t k = 0;
		for (; k < SEND_BATCH && start + k < n; k++) {
			pond_pbjson_error err;
			ProtobufCMessage *msg;
			if (pond_pbjson_decode(&pond__event__descriptor,
			                       json_array_get(list, start + k),
			                       NULL, &msg, &err) != 0) {
				rv = pond_cli_fail("event %zu: %s: %s",
				                   start + k, err.path,
				                   err.message);
				break;
			}
			events[k] = (Pond__Event *)msg;
		}
		if (rv == 0) {
			batch.token = (char *)token;
			batch.n_events = k;
			batch.events = events;
			rv = send_batch(sock, &batch, tot);
		}
		for (size_t i = 0; i < k; i++) {
			pond__event__free_unpacked(events[i], NULL);
		}
	}
	return (rv);
}

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
	send_totals tot = {0};
	int rv, nrv;

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
	if ((nrv = nng_req0_open(&sock)) != 0 ||
	    (nrv = nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, 8u << 20)) ||
	    (nrv = nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO,
	                             SEND_TIMEOUT_MS)) != 0 ||
	    (nrv = nng_dial(sock, url, NULL, 0)) != 0) {
		json_decref(root);
		return (pond_cli_fail("cannot reach ingest at %s: %s", url,
		                      nng_strerror(nrv)));
	}
	rv = send_events(sock, token, list, &tot);
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
