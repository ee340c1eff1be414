/*
 * publish.c - the CLI's publisher: events in their proto3 JSON form sent to
 * ingest over NNG REQ/REP, exactly as any publisher sends them.
 *
 * `pond send` (a file) and `pond demo` (simulated traffic) both publish
 * through here: the events are packed into IngestBatch messages of at most
 * POND_CLI_PUBLISH_BATCH, each batch waits for its IngestAck (sent by
 * ingest only after COMMIT), and the per-event statuses are summed up. A
 * rejected event is printed with its code and reason on stderr.
 */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pbjson.h"
#include "pond/ingest.pb-c.h"

#define PUBLISH_TIMEOUT_MS 30000

int
pond_cli_publish_open(nng_socket *sock, const char *url)
{
	int nrv;

	if ((nrv = nng_req0_open(sock)) != 0) {
		return (pond_cli_fail("cannot open a REQ socket: %s",
		                      nng_strerror(nrv)));
	}
	if ((nrv = nng_socket_set_size(*sock, NNG_OPT_RECVMAXSZ, 8u << 20)) ||
	    (nrv = nng_socket_set_ms(*sock, NNG_OPT_RECVTIMEO,
	                             PUBLISH_TIMEOUT_MS)) != 0 ||
	    (nrv = nng_dial(*sock, url, NULL, 0)) != 0) {
		nng_close(*sock);
		return (pond_cli_fail("cannot reach ingest at %s: %s", url,
		                      nng_strerror(nrv)));
	}
	return (POND_CLI_OK);
}

/* publish_batch sends one packed batch and adds its acks to tot. */
static int
publish_batch(nng_socket sock, Pond__IngestBatch *batch,
              pond_cli_publish_totals *tot)
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

int
pond_cli_publish(nng_socket sock, const char *token, const json_t *list,
                 pond_cli_publish_totals *tot,
                 pond_cli_publish_progress progress, void *arg)
{
	Pond__Event *events[POND_CLI_PUBLISH_BATCH];
	size_t n = json_array_size(list);
	int rv = POND_CLI_OK;

	for (size_t start = 0; start < n && rv == 0;
	     start += POND_CLI_PUBLISH_BATCH) {
		Pond__IngestBatch batch = POND__INGEST_BATCH__INIT;
		size_t k = 0;
		for (; k < POND_CLI_PUBLISH_BATCH && start + k < n; k++) {
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
			rv = publish_batch(sock, &batch, tot);
		}
		for (size_t i = 0; i < k; i++) {
			pond__event__free_unpacked(events[i], NULL);
		}
		if (rv == 0 && progress != NULL) {
			progress(start + k, n, arg);
		}
	}
	return (rv);
}
