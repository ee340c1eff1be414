/*
 * test_ingest.h - what the ingest tests share (names start with iw_,
 * "ingest world"): the contract's limits, a batch sent over either
 * transport and its reply read the same way, and small helpers.
 * Services, stores and clients come from ingest_client.h.
 */
#ifndef POND_TEST_INGEST_H
#define POND_TEST_INGEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "clock.h"
#include "harness.h"
#include "ingest_client.h"

#define T IC_EVENT_TIME

/* API.md section 6 limits, as the contract states them. */
#define MAX_FEN    INT64_C(100000000000) /* 10^11 fen */
#define MAX_STRING 256                   /* bytes of UTF-8 */
#define MAX_EVENTS 1000
#define MAX_BYTES  (4u << 20)

/* via is the transport a batch goes over. */
typedef enum via {
	VIA_NNG,
	VIA_HTTP,
} via;

/* reply holds the answer to one batch, from either transport. */
typedef struct reply {
	via how;
	Pond__IngestAck *ack;
	json_t *answer;
	int http_status;
} reply;

/* iw_strf returns a formatted string the caller frees. */
char *iw_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* iw_repeat returns n copies of c (the caller frees). */
char *iw_repeat(char c, size_t n);

/* iw_clock_plus formats the test clock's start plus usec into buf. */
const char *iw_clock_plus(pond_time usec, char *buf, size_t len);

/* iw_count runs sql (one integer) on svc's store. */
long long iw_count(const ic_service *svc, const char *sql);

/* iw_expect_result checks one result without ending the test, so that
 * every wrong result of a batch is reported. */
void iw_expect_result(ic_result r, size_t i, const char *event_id,
                      const char *status, const char *code);

/* iw_events_body returns {"events": [e0, e1, ...]} for JSON texts. */
char *iw_events_body(const char *const *events, size_t n);

/* iw_send_json sends the events (JSON texts) as one batch with svc's
 * token: over NNG packed by the common codec, over HTTP as they are. */
reply iw_send_json(const ic_service *svc, via how, const char *const *events,
                   size_t n);

/* iw_reply_usable reports, without ending the test, whether r holds one
 * result for each of n events (and not a batch error or an HTTP error). */
bool iw_reply_usable(const reply *r, size_t n);

/* iw_reply_count asserts r is a reply with results and counts them. */
size_t iw_reply_count(const reply *r);

/* iw_reply_result is result i of r. */
ic_result iw_reply_result(const reply *r, size_t i);

/* iw_reply_free frees what r holds. */
void iw_reply_free(reply *r);

#endif
