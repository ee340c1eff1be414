/*
 * test_reporting.h - what the reporting tests share (names start with rw_,
 * "reporting world"): a pond-ingest and a pond-reporting on a store of
 * their own, events sent through the real ingest, records of the
 * tag_changes and touches streams written the way their producers write
 * them, and the reports read back over HTTP with a read token.
 */
#ifndef POND_TEST_REPORTING_H
#define POND_TEST_REPORTING_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"
#include "ingest_client.h"

#define RW_ADMIN_TOKEN "api_rw_admin"
#define RW_READ_TOKEN  "api_rw_read"

typedef struct rw_world {
	ic_service ingest;
	uint16_t http_port;
	char nng_url[64];
	pond_test_proc *proc;
} rw_world;

/* EV is one event in proto3 JSON: id, key, time and body. */
#define EV(id, key, at, body)                                                 \
	"{\"event_id\": \"" id "\", \"customer_key\": \"" key                 \
	"\", \"occurred_at\": \"" at "\", " body "}"

/* rw_start starts ingest (with API tokens) and reporting for w; extra_env
 * (NULL-terminated "K=V", or NULL) goes to pond-reporting. */
void rw_start(rw_world *w, const char *name, const char *const *extra_env);

/* rw_restart_reporting stops pond-reporting (asserting a clean exit) and
 * starts it again on the same store, without extra_env. */
void rw_restart_reporting(rw_world *w, const char *name);

/* rw_stop stops both services and asserts clean exits. */
void rw_stop(rw_world *w);

/* rw_send posts events (the elements of a JSON array) and asserts every
 * one was accepted. */
void rw_send(rw_world *w, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* rw_send_list posts the events ev[0 .. n - 1] (JSON objects) as one
 * batch and asserts every one was accepted. */
void rw_send_list(rw_world *w, char *const *ev, size_t n);

/* rw_settle waits until reporting has applied every record of every
 * stream. */
void rw_settle(rw_world *w);

/* rw_tag_change writes one tag_changes record (as pond-tagging does). */
void rw_tag_change(rw_world *w, const char *key, const char *tag, bool added,
                   const char *changed_at);

/* rw_touch_change writes one touch_changes record (as the scheduler
 * does): a touch entering state at at (NULL: none). */
void rw_touch_change(rw_world *w, const char *touch_id, const char *key,
                     const char *campaign_id, const char *state,
                     const char *reason, const char *at,
                     const char *selected_at, int64_t cost_fen);

/* rw_http makes a request with token (NULL: none) and returns the
 * status; *body (may be NULL) gets the parsed JSON answer. */
int rw_http(rw_world *w, const char *method, const char *token,
            const char *path, const char *body, json_t **answer);

/* rw_get GETs path with the read token, asserts 200 and returns the
 * answer (the caller json_decref()s it). */
json_t *rw_get(rw_world *w, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* rw_row returns the row of a report whose field key is the string
 * value, failing the test if there is none. */
json_t *rw_row(json_t *report, const char *key, const char *value);

/* rw_seed returns POND_TEST_SEED or the time, and logs it (a random test
 * prints its seed on failure). */
unsigned rw_seed(void);

/* rw_assert_num asserts that v is the number want, exactly. */
void rw_assert_num(json_t *v, double want, const char *what);

/* rw_assert_null asserts that v is JSON null. */
void rw_assert_null(json_t *v, const char *what);

#define RW_NUM(obj, field, want)                                              \
	rw_assert_num(json_object_get((obj), (field)), (want), (field))
#define RW_NULL(obj, field)                                                   \
	rw_assert_null(json_object_get((obj), (field)), (field))

#endif
