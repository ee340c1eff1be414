/*
 * ingest_client.h - what the ingest tests share: a pond-ingest of their
 * own, events and batches to send it, and a publisher's clients for both
 * transports (names start with ic_, "ingest client").
 *
 * A test starts one ic_service: a fresh migrated database, a publisher
 * added with `pond publishers add`, a clock file (POND_TEST_CLOCK) standing
 * at POND_TEST_CLOCK_START, and pond-ingest on free loopback ports. Events
 * are written in the proto3 JSON form of API.md and packed into protobuf by
 * the common codec, so one description serves NNG and HTTP; hand-made
 * bytes (garbage, two bodies, unknown fields) go in as they are. Helpers
 * that set something up fail the test when they cannot; the clients return
 * an error for the test to judge.
 */
#ifndef POND_TEST_INGEST_CLIENT_H
#define POND_TEST_INGEST_CLIENT_H

#include <jansson.h>
#include <limits.h>
#include <nng/nng.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"
#include "pond/ingest.pb-c.h"

/* IC_PARTITIONS is how many partitions the events stream of a test has. */
#define IC_PARTITIONS 8

/* IC_TOKEN_LEN holds any token a test uses, with its NUL. */
#define IC_TOKEN_LEN 96

/* IC_TIMEOUT_MS is how long a client waits for an answer by default. */
#define IC_TIMEOUT_MS 30000

/* IC_EVENT_TIME is a time safely in the past of POND_TEST_CLOCK_START. */
#define IC_EVENT_TIME "2026-01-04T08:00:00Z"

/* --- the service ----------------------------------------------------------
 */

/* ic_service is one pond-ingest with its own store and clock. */
typedef struct ic_service {
	char dsn[POND_TEST_DSN_LEN];
	char clock[PATH_MAX]; /* the POND_TEST_CLOCK file */
	char nng_url[64];     /* POND_INGEST_URL */
	char pub_url[64];     /* POND_EVENTS_PUB_URL */
	uint16_t http_port;   /* POND_HTTP_PORT */
	char token[IC_TOKEN_LEN];
	long long publisher_id; /* of the publisher "acme", owner of token */
	char log_name[64];
	pond_test_proc *proc;
} ic_service;

/* ic_start sets up svc as described above and waits until /healthz
 * answers 200. log_name names the service's log (and the CLI's, with
 * "-cli" added). extra_env (NULL-terminated "K=V", or NULL) is added to
 * the service's environment. */
void ic_start(ic_service *svc, const char *log_name,
              const char *const *extra_env);

/* ic_spawn starts pond-ingest for svc's store, ports and clock (what
 * ic_start does once the store is set up; after ic_stop it starts the
 * service again). dsn_extra ("user=x", or NULL) is appended to the DSN:
 * in a libpq conninfo string a later keyword wins. */
void ic_spawn(ic_service *svc, const char *dsn_extra,
              const char *const *extra_env, const char *log_name);

/* ic_add_api_tokens adds an API token "adm" (role admin) and "rd" (role
 * read) by SQL, stored as `pond tokens add` does (the SHA-256 only). */
void ic_add_api_tokens(const char *dsn, const char *admin, const char *read);

/* IC_STOP_MS is how long a service may take to stop after SIGTERM. */
#define IC_STOP_MS 10000

/* ic_stop sends SIGTERM, waits up to IC_STOP_MS and returns the exit
 * status (0 for a clean shutdown); past that it kills the service, after
 * ic_dump_threads. */
int ic_stop(ic_service *svc);

/* ic_wait_exit is pond_test_wait_exit for svc's process that, when the
 * process is still running after timeout_ms, calls ic_dump_threads. */
int ic_wait_exit(ic_service *svc, int timeout_ms, int *status);

/* ic_dump_threads appends the stacks of all the service's threads (gdb)
 * to its log: what a test leaves behind when a service hangs. */
void ic_dump_threads(const ic_service *svc);

/* ic_add_publisher adds publisher name with token by SQL (the hash as
 * `pond publishers add` stores it) and returns its id. */
long long ic_add_publisher(const char *dsn, const char *name,
                           const char *token);

/* ic_metric returns the value of the series (name and labels exactly as
 * rendered, e.g. "pond_ingest_events_total{status=\"accepted\"}") from
 * svc's /metrics, or -1 when it is not there. */
double ic_metric(const ic_service *svc, const char *series);

/* --- events and batches
 * ------------------------------------------------------
 */

/* ic_bytes is a malloc'd byte string ({0} is empty). */
typedef struct ic_bytes {
	uint8_t *data;
	size_t len;
	size_t cap; /* allocated, so appends grow it geometrically */
} ic_bytes;

/* ic_bytes_copy returns a copy of n bytes at p. */
ic_bytes ic_bytes_copy(const void *p, size_t n);

/* ic_bytes_append appends n bytes at p to b. */
void ic_bytes_append(ic_bytes *b, const void *p, size_t n);

/* ic_bytes_free frees b's data and empties it. */
void ic_bytes_free(ic_bytes *b);

/* ic_hex returns the lowercase hex of n bytes at p (the caller frees),
 * for comparing with encode(bytea, 'hex') in SQL. */
char *ic_hex(const void *p, size_t n);

/* ic_event_json packs the pond.Event that json (its proto3 JSON form)
 * describes, failing the test if the codec refuses it. */
ic_bytes ic_event_json(const char *json);

/* ic_event_jsonf is ic_event_json of a printf-formatted text. */
ic_bytes ic_event_jsonf(const char *fmt, ...)
        __attribute__((format(printf, 1, 2)));

/* ic_field_append appends a length-delimited protobuf field (number,
 * bytes) to b: how tests craft an unknown field or a second body. */
void ic_field_append(ic_bytes *b, uint32_t number, const void *p, size_t n);

/* ic_varint_field_append appends a varint protobuf field to b. */
void ic_varint_field_append(ic_bytes *b, uint32_t number, uint64_t v);

/* ic_batch is a list of events (as bytes) to send in one request. */
typedef struct ic_batch {
	ic_bytes *events;
	size_t n, cap;
} ic_batch;

/* ic_batch_add appends ev to b, which takes ownership of it. */
void ic_batch_add(ic_batch *b, ic_bytes ev);

/* ic_batch_add_json appends the event json describes (ic_event_json). */
void ic_batch_add_json(ic_batch *b, const char *json);

/* ic_batch_pack returns the IngestBatch of token and b's events, packed:
 * the same bytes as packing IngestBatch messages, but each event is sent
 * exactly as it is in b, hand-made bytes included. */
ic_bytes ic_batch_pack(const ic_batch *b, const char *token);

/* ic_batch_free frees b's events and empties it. */
void ic_batch_free(ic_batch *b);

/* --- NNG
 * -----------------------------------------------------------------------
 */

/* ic_nng is a publisher's REQ socket. */
typedef struct ic_nng {
	nng_socket sock;
} ic_nng;

/* ic_nng_open dials url with a REQ socket that waits timeout_ms for each
 * answer and never resends a request on its own (a resent batch would be
 * answered "duplicate" and hide the first answer). */
void ic_nng_open(ic_nng *c, const char *url, int timeout_ms);

/* ic_nng_close closes the socket. */
void ic_nng_close(ic_nng *c);

/* ic_nng_call sends len bytes at req and waits for the answer: 0 with
 * *ack unpacked (free with ic_ack_free), POND_EINVAL when the answer is
 * not an IngestAck (*ack NULL), POND_ETIMEDOUT, or POND_EIO. */
int ic_nng_call(ic_nng *c, const void *req, size_t len, Pond__IngestAck **ack);

/* ic_nng_send sends b with token over c and returns the ack, failing the
 * test when there is none. */
Pond__IngestAck *ic_nng_send(ic_nng *c, const ic_batch *b, const char *token);

/* ic_ack_free frees an ack from ic_nng_call or ic_nng_send. */
void ic_ack_free(Pond__IngestAck *ack);

/* --- HTTP
 * ----------------------------------------------------------------------
 */

/* ic_http_post posts body (len 0: strlen) to /v1/events with the bearer
 * token (NULL: no Authorization header); like pond_test_http. */
int ic_http_post(uint16_t port, const char *token, const char *body,
                 size_t len, pond_test_http_resp *resp);

/* ic_http_events posts body with svc's token, fails the test unless an
 * answer comes, sets *status and returns the parsed answer body (the
 * caller json_decref()s it). */
json_t *ic_http_events(const ic_service *svc, const char *body, int *status);

/* ic_send_accepted posts {"events": [EVENTS]} (events: the elements of
 * the array, as JSON text) with svc's token and fails the test unless
 * the answer is 200 and every event was accepted. */
void ic_send_accepted(const ic_service *svc, const char *events);

/* ic_vsend_accepted is ic_send_accepted with the events made by vasprintf
 * from fmt. */
void ic_vsend_accepted(const ic_service *svc, const char *fmt, va_list ap);

/* --- results
 * -------------------------------------------------------------------
 */

/* ic_result is one event's outcome, from either transport. */
typedef struct ic_result {
	const char *event_id;
	const char *status;
	const char *code; /* "" when none */
} ic_result;

/* ic_json_result reads result i of an HTTP answer {"results": [...]},
 * failing the test if it is not there. Strings belong to answer. */
ic_result ic_json_result(const json_t *answer, size_t i);

/* ic_ack_result reads result i of an ack, failing the test if it is not
 * there. Strings belong to ack. */
ic_result ic_ack_result(const Pond__IngestAck *ack, size_t i);

#endif
