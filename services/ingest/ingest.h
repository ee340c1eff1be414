/*
 * ingest.h - the ingest service's own structs.
 *
 * A batch arrives over NNG (protobuf) or HTTP (JSON), is decoded into items
 * (decode.c), checked item by item without the store (validate.c), then
 * settled in one transaction (store.c): authentication, idempotency, alias
 * resolution, stream seqs, the event rows and the rejects. The reply is sent
 * and the accepted events announced only after COMMIT (ingest.c).
 */
#ifndef POND_INGEST_H
#define POND_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "bus.h"
#include "clock.h"
#include "db.h"
#include "http.h"
#include "metrics.h"
#include "pond/event.pb-c.h"
#include "pond/ingest.pb-c.h"

/* Limits of API.md section 1. */
#define INGEST_MAX_EVENTS    1000
#define INGEST_MAX_BYTES     (4u << 20)
#define INGEST_MAX_FEN       INT64_C(100000000000)
#define INGEST_MAX_STRING    256
#define INGEST_FUTURE_WINDOW POND_USEC_PER_DAY

/* ingest_code is a rejection code, in the precedence order of API.md
 * section 6: an event with several faults gets the lowest. */
typedef enum ingest_code {
	CODE_NONE = 0,
	CODE_UNDECODABLE,
	CODE_MISSING_EVENT_ID,
	CODE_MISSING_CUSTOMER,
	CODE_UNKNOWN_CUSTOMER,
	CODE_MISSING_BODY,
	CODE_UNKNOWN_BODY,
	CODE_BAD_FIELD,
	CODE_BAD_AMOUNT,
	CODE_MISSING_TIME,
	CODE_FUTURE_TIME,
	CODE_FIELD_TOO_LONG,
	CODE_DUPLICATE_ORDER, /* not a rejection: a duplicate with a code */
} ingest_code;

/* ingest_code_name returns the wire name of code ("bad_field"). */
const char *ingest_code_name(ingest_code code);

typedef enum ingest_status {
	STATUS_PENDING = 0,
	STATUS_ACCEPTED,
	STATUS_DUPLICATE,
	STATUS_REJECTED,
} ingest_status;

typedef enum ingest_format {
	FORMAT_PROTOBUF,
	FORMAT_JSON,
} ingest_format;

/* ingest_item is one event of a batch and, once settled, its outcome. */
typedef struct ingest_item {
	Pond__Event *event; /* NULL when it could not be decoded */
	const uint8_t *raw; /* as it arrived, kept for rejected_events */
	size_t raw_len;
	const char *event_id;  /* best known id, for the reply ("" if none) */
	const char *given_key; /* customer_key as sent, restored on a retry */
	bool shell; /* event holds only the identity of an element the JSON
	             * codec refused: enough to resolve its customer */
	ingest_code check; /* first fault found without the store */
	char check_reason[320];
	/* Outcome. */
	ingest_status status;
	ingest_code code;
	const char *reason;
	const char *customer_key; /* resolved ("" for channel_spend) */
	uint32_t partition;
	int64_t seq;
	uint8_t *payload; /* the event as stored */
	size_t payload_len;
} ingest_item;

/* ingest_batch is one request, from arrival to reply. All its memory but
 * the struct itself comes from arena. */
typedef struct ingest_batch {
	pond_arena arena;
	ingest_format format;
	const char *token;
	ingest_item *items;
	size_t n;
	pond_time received_at;
	uint32_t nparts;
	/* A replay settles one fixed event as the publisher of rejected
	 * event replay_of (0: not a replay), on an admin token. */
	int64_t replay_of;
	/* Settled by the store. */
	int64_t publisher_id;
	const char *batch_error; /* code, or NULL */
	const char *batch_message;
	uint64_t alias_conflicts;
	int attempts;
	/* Where the reply goes. */
	pond_rep_req *rep_req;
	pond_http_req *http_req;
	pond_time started;
	struct ingest *ingest;
	struct ingest_batch *next; /* in the queue of batches to settle */
} ingest_batch;

/* INGEST_GROUP_BATCHES and INGEST_GROUP_EVENTS bound a group: the batches
 * settled together in one transaction. */
#define INGEST_GROUP_BATCHES 16
#define INGEST_GROUP_EVENTS  8000

/* ingest_group is the batches one store job settles in one transaction:
 * those that waited while the store was busy. One transaction means one
 * lock of the stream heads and one WAL flush for all of them. */
typedef struct ingest_group {
	struct ingest *ingest;
	bool ran; /* ingest_store_work ran (the pool had a connection) */
	size_t n;
	ingest_batch *batches[INGEST_GROUP_BATCHES];
} ingest_group;

typedef struct ingest_counters {
	pond_counter accepted;
	pond_counter duplicate;
	pond_counter rejected;
	pond_counter batches_nng;
	pond_counter batches_http;
	pond_counter batch_errors;
	pond_counter unauthorized;
	pond_counter alias_conflicts;
	pond_counter store_retries;
	pond_counter groups;
	pond_counter grouped_batches;
	pond_histogram batch_seconds;
} ingest_counters;

typedef struct ingest_config {
	char *listen_url;   /* POND_INGEST_URL */
	char *pub_url;      /* POND_EVENTS_PUB_URL */
	int64_t contexts;   /* POND_INGEST_CONTEXTS */
	int64_t store_jobs; /* POND_INGEST_STORE_JOBS */
	char *pii_key;      /* POND_PII_KEY */
	char *tls_cert;     /* POND_TLS_CERT */
	char *tls_key;      /* POND_TLS_KEY */
} ingest_config;

typedef struct ingest {
	struct pond_service *svc;
	ingest_config conf;
	pond_rep *rep;
	pond_pub *pub;
	int inflight;             /* batches decoded and not yet answered */
	ingest_batch *queue_head; /* batches waiting for a store job */
	ingest_batch *queue_tail;
	int store_jobs; /* groups being settled */
	bool stopping;
	ingest_counters counters;
} ingest;

struct pond_service;

/* ingest_start and ingest_stop are the service hooks (service.h). */
int ingest_start(struct pond_service *svc);
void ingest_stop(struct pond_service *svc);

/* ingest_batch_new allocates an empty batch. */
ingest_batch *ingest_batch_new(ingest *ig, ingest_format format);

/* ingest_batch_free frees a batch and everything in its arena. */
void ingest_batch_free(ingest_batch *b);

/* ingest_decode_protobuf fills b from an IngestBatch message; on a batch
 * error it sets b->batch_error and returns POND_EINVAL. */
int ingest_decode_protobuf(ingest_batch *b, const uint8_t *buf, size_t len);

/* ingest_decode_json fills b from an HTTP body {"events": [...]}; on a
 * batch error it sets b->batch_error (with *http_status 400 or 413) and
 * returns POND_EINVAL. The token comes from the Authorization header. */
int ingest_decode_json(ingest_batch *b, const char *body, size_t len,
                       unsigned *http_status);

/* ingest_validate checks one item without the store, setting item->check
 * and item->check_reason to the first fault (CODE_NONE if none). For
 * protobuf items the raw bytes are also scanned (several bodies). */
void ingest_validate(ingest_item *item, ingest_format format, pond_time now);

/* ingest_utf8_valid reports whether s is well-formed UTF-8 (RFC 3629). */
bool ingest_utf8_valid(const unsigned char *s);

/* ingest_utf8_repair replaces every byte of s that is not part of a
 * well-formed UTF-8 sequence with '?', in place: reasons quote input and
 * are cut to fit, and the store accepts only valid text. */
void ingest_utf8_repair(char *s);

/* ingest_hash_aliases replaces every alias value of b's decoded events
 * with its keyed hash (pond_pii_hash with key), in b's arena. Run once per
 * batch, after validation (which checks the values as sent). */
int ingest_hash_aliases(ingest_batch *b, const char *key,
                        size_t keylen) POND_MUSTCHECK;

/* ingest_store_work settles an ingest_group in one transaction (a pond_db
 * work function); when that fails, each batch is tried on its own. */
int ingest_store_work(PGconn *conn, void *arg);

/* ingest_store_fail marks a batch that was not committed: its ack says
 * "unavailable" (batch_error) and nothing in it is accepted. */
void ingest_store_fail(ingest_batch *b);

/* ingest_encode_ack packs the protobuf reply of b into its arena. */
int ingest_encode_ack(ingest_batch *b, uint8_t **buf, size_t *len);

/* ingest_encode_json returns the JSON reply body of b. */
json_t *ingest_encode_json(const ingest_batch *b);

#endif
