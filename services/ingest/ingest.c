/*
 * ingest.c - requests in, acks out, announcements after commit.
 *
 * Both transports end in the same path: decode into a batch, settle it in
 * one store job, then (on the loop, after COMMIT has returned) reply and
 * announce each accepted event on the events stream. A batch that fails
 * before settling (undecodable, over the limits) is answered at once and
 * stores nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "log.h"
#include "pbjson.h"
#include "service.h"
#include "stream.h"

/* --- replies
 * ----------------------------------------------------------------- */

static const char *const status_names[] = {
        [STATUS_PENDING] = "rejected",
        [STATUS_ACCEPTED] = "accepted",
        [STATUS_DUPLICATE] = "duplicate",
        [STATUS_REJECTED] = "rejected",
};

/* reply_id returns an event id that can be echoed in a reply. */
static const char *
reply_id(const ingest_item *item)
{
	return (ingest_utf8_valid((const unsigned char *)item->event_id)
	                ? item->event_id
	                : "");
}

int
ingest_encode_ack(ingest_batch *b, uint8_t **buf, size_t *len)
{
	Pond__IngestAck ack = POND__INGEST_ACK__INIT;
	Pond__BatchError err = POND__BATCH_ERROR__INIT;
	Pond__IngestResult *results = NULL;
	Pond__IngestResult **ptrs = NULL;

	if (b->batch_error != NULL) {
		err.code = (char *)b->batch_error;
		err.message = (char *)b->batch_message;
		ack.batch_error = &err;
	} else if (b->n > 0) {
		results = pond_arena_alloc(&b->arena, b->n * sizeof(*results));
		ptrs = pond_arena_alloc(&b->arena, b->n * sizeof(*ptrs));
		if (results == NULL || ptrs == NULL) {
			return (POND_ENOMEM);
		}
		for (size_t i = 0; i < b->n; i++) {
			const ingest_item *item = &b->items[i];
			pond__ingest_result__init(&results[i]);
			results[i].event_id = (char *)reply_id(item);
			results[i].status = (char *)status_names[item->status];
			results[i].code = (char *)ingest_code_name(item->code);
			results[i].reason =
			        (char *)(item->reason != NULL ? item->reason
			                                      : "");
			ptrs[i] = &results[i];
		}
		ack.n_results = b->n;
		ack.results = ptrs;
	}
	*len = pond__ingest_ack__get_packed_size(&ack);
	if ((*buf = pond_arena_alloc(&b->arena, *len + 1)) == NULL) {
		return (POND_ENOMEM);
	}
	pond__ingest_ack__pack(&ack, *buf);
	return (POND_OK);
}

json_t *
ingest_encode_json(const ingest_batch *b)
{
	json_t *results = json_array();

	for (size_t i = 0; results != NULL && i < b->n; i++) {
		const ingest_item *item = &b->items[i];
		json_t *r = json_pack("{s:s, s:s}", "event_id", reply_id(item),
		                      "status", status_names[item->status]);
		if (r != NULL && item->code != CODE_NONE) {
			json_object_set_new(
			        r, "code",
			        json_string(ingest_code_name(item->code)));
			json_object_set_new(r, "reason",
			                    json_string(item->reason != NULL
			                                        ? item->reason
			                                        : ""));
		}
		json_array_append_new(results, r);
	}
	return (json_pack("{s:o}", "results", results));
}

/* --- the batch's end
 * ------------------------------------------------------------- */

static void
ingest_count(ingest *ig, const ingest_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		switch (b->items[i].status) {
		case STATUS_ACCEPTED:
			pond_counter_inc(&ig->counters.accepted);
			break;
		case STATUS_DUPLICATE:
			pond_counter_inc(&ig->counters.duplicate);
			break;
		case STATUS_REJECTED:
			pond_counter_inc(&ig->counters.rejected);
			break;
		case STATUS_PENDING:
			break;
		}
	}
	if (b->batch_error != NULL) {
		pond_counter_inc(&ig->counters.batch_errors);
		if (strcmp(b->batch_error, "unauthorized") == 0) {
			pond_counter_inc(&ig->counters.unauthorized);
		}
	}
	pond_counter_add(&ig->counters.alias_conflicts, b->alias_conflicts);
	if (b->attempts > 1) {
		pond_counter_add(&ig->counters.store_retries,
		                 (uint64_t)b->attempts - 1);
	}
}

static void
ingest_reply_http(ingest_batch *b)
{
	unsigned status = 200;

	if (b->batch_error == NULL) {
		pond_http_reply_json(b->http_req, 200, ingest_encode_json(b));
		return;
	}
	if (strcmp(b->batch_error, "unauthorized") == 0) {
		status = 401;
	} else if (strcmp(b->batch_error, "not_found") == 0) {
		status = 404;
	} else if (strcmp(b->batch_error, "unavailable") == 0) {
		status = 503;
	}
	pond_http_reply_error(b->http_req, status, b->batch_error, "%s",
	                      b->batch_message);
}

static void
ingest_reply_nng(ingest_batch *b)
{
	uint8_t *buf;
	size_t len;

	if (ingest_encode_ack(b, &buf, &len) != 0) {
		/* Out of memory: say nothing; the publisher's REQ resends,
		 * and the batch is idempotent. */
		pond_log_error("ack_encode_failed", "events=%zu", b->n);
		static const uint8_t empty[1];
		pond_rep_reply(b->rep_req, empty, 0);
		return;
	}
	pond_rep_reply(b->rep_req, buf, len);
}

/* ingest_maybe_stopped ends the service once stopping, the REP socket is
 * closed and every batch in hand (NNG or HTTP) has been answered. */
static void
ingest_maybe_stopped(ingest *ig)
{
	if (!ig->stopping || ig->rep != NULL || ig->inflight > 0 ||
	    ig->pub == NULL) {
		return;
	}
	pond_pub_close(ig->pub);
	ig->pub = NULL;
	pond_service_stopped(ig->svc);
}

/* ingest_finish answers b, announces what was accepted, and frees b. */
static void
ingest_finish(ingest_batch *b)
{
	ingest *ig = b->ingest;

	if (b->rep_req != NULL) {
		ingest_reply_nng(b);
	} else {
		ingest_reply_http(b);
	}
	/* After COMMIT, never before: PUB is a hint that a record exists. */
	for (size_t i = 0; i < b->n; i++) {
		const ingest_item *item = &b->items[i];
		if (item->status == STATUS_ACCEPTED) {
			pond_stream_announce(ig->pub, POND_STREAM_EVENTS,
			                     item->partition, item->seq,
			                     item->payload, item->payload_len);
		}
	}
	ingest_count(ig, b);
	pond_histogram_observe(&ig->counters.batch_seconds,
	                       (double)(pond_now() - b->started) / 1e6);
	ingest_batch_free(b);
	ig->inflight--;
	ingest_maybe_stopped(ig);
}

static void ingest_dispatch(ingest *ig);

static void
ingest_settled(int rv, void *arg)
{
	ingest_group *g = arg;
	ingest *ig = g->ingest;

	if (rv != 0) {
		pond_log_warn("batches_not_stored", "batches=%zu error=\"%s\"",
		              g->n, pond_strerror(rv));
	}
	ig->store_jobs--;
	for (size_t k = 0; k < g->n; k++) {
		/* The pool found no store (it is restarting, say): the work
		 * never ran, nothing was validated or stored, and every
		 * batch is answered "unavailable" so that it is sent again. */
		if (!g->ran) {
			ingest_store_fail(g->batches[k]);
		}
		ingest_finish(g->batches[k]);
	}
	free(g);
	ingest_dispatch(ig);
}

/* ingest_take_group takes the waiting batches for one transaction, up to
 * INGEST_GROUP_BATCHES and INGEST_GROUP_EVENTS (always at least one). */
static ingest_group *
ingest_take_group(ingest *ig)
{
	ingest_group *g = calloc(1, sizeof(*g));
	size_t events = 0;

	if (g == NULL) {
		return (NULL);
	}
	g->ingest = ig;
	while (ig->queue_head != NULL && g->n < INGEST_GROUP_BATCHES &&
	       (g->n == 0 ||
	        events + ig->queue_head->n <= INGEST_GROUP_EVENTS)) {
		ingest_batch *b = ig->queue_head;
		ig->queue_head = b->next;
		b->next = NULL;
		events += b->n;
		g->batches[g->n++] = b;
	}
	if (ig->queue_head == NULL) {
		ig->queue_tail = NULL;
	}
	return (g);
}

/* ingest_fail_group answers every batch of g "unavailable" and frees g
 * (g may be NULL). */
static void
ingest_fail_group(ingest_group *g)
{
	for (size_t k = 0; g != NULL && k < g->n; k++) {
		g->batches[k]->batch_error = "unavailable";
		g->batches[k]->batch_message = "the store is not taking work; "
		                               "send the batch again";
		ingest_finish(g->batches[k]);
	}
	free(g);
}

/* ingest_fail_queue answers every waiting batch "unavailable", without
 * allocating (it also runs when memory is short). */
static void
ingest_fail_queue(ingest *ig)
{
	ingest_batch *b = ig->queue_head;

	ig->queue_head = ig->queue_tail = NULL;
	while (b != NULL) {
		ingest_batch *next = b->next;
		b->next = NULL;
		b->batch_error = "unavailable";
		b->batch_message = "the store is not taking work; send the "
		                   "batch again";
		ingest_finish(b);
		b = next;
	}
}

/* ingest_dispatch starts store jobs while there are batches waiting and
 * fewer than POND_INGEST_STORE_JOBS running. Batches that arrive while the
 * store is busy wait, and the next job settles all of them at once: under
 * load, one lock of the stream heads and one WAL flush serve many batches
 * (docs/ingest.md). */
static void
ingest_dispatch(ingest *ig)
{
	while (ig->queue_head != NULL &&
	       ig->store_jobs < (int)ig->conf.store_jobs) {
		ingest_group *g = ingest_take_group(ig);
		if (g != NULL && pond_db_submit(ig->svc->db, ingest_store_work,
		                                ingest_settled, g) == 0) {
			ig->store_jobs++;
			pond_counter_inc(&ig->counters.groups);
			pond_counter_add(&ig->counters.grouped_batches, g->n);
			continue;
		}
		/* Out of memory or shutting down: what is waiting is answered
		 * "unavailable", nothing stored, and the publishers resend. */
		ingest_fail_group(g);
		ingest_fail_queue(ig);
	}
}

/* ingest_submit queues b for the store, or answers its batch error. */
static void
ingest_submit(ingest *ig, ingest_batch *b)
{
	ig->inflight++;
	b->nparts = (uint32_t)ig->svc->conf.partitions;
	if (b->batch_error != NULL) {
		ingest_finish(b);
		return;
	}
	if (ig->queue_tail != NULL) {
		ig->queue_tail->next = b;
	} else {
		ig->queue_head = b;
	}
	ig->queue_tail = b;
	ingest_dispatch(ig);
}

/* --- transports
 * ------------------------------------------------------------------- */

static void
ingest_on_nng(pond_rep_req *req, const uint8_t *body, size_t len, void *arg)
{
	ingest *ig = arg;
	ingest_batch *b = ingest_batch_new(ig, FORMAT_PROTOBUF);

	if (b == NULL) {
		static const uint8_t empty[1];
		pond_rep_reply(req, empty, 0);
		return;
	}
	pond_counter_inc(&ig->counters.batches_nng);
	b->rep_req = req;
	b->started = b->received_at = pond_now();
	(void)ingest_decode_protobuf(b, body, len);
	ingest_submit(ig, b);
}

static void
ingest_on_http(pond_http_req *req, void *arg)
{
	ingest *ig = arg;
	ingest_batch *b;
	const char *token = pond_http_bearer(req);
	const char *body;
	size_t len;
	unsigned status;

	if (ig->stopping) {
		pond_http_reply_error(req, 503, "unavailable",
		                      "shutting down; send the batch again");
		return;
	}
	if (token == NULL || *token == '\0') {
		pond_counter_inc(&ig->counters.unauthorized);
		pond_http_reply_error(
		        req, 401, "unauthorized",
		        "Authorization: Bearer <publisher token> is required");
		return;
	}
	if ((b = ingest_batch_new(ig, FORMAT_JSON)) == NULL) {
		pond_http_reply_error(req, 503, "no_memory", "out of memory");
		return;
	}
	pond_counter_inc(&ig->counters.batches_http);
	b->http_req = req;
	b->started = b->received_at = pond_now();
	b->token = pond_arena_strdup(&b->arena, token);
	body = pond_http_body(req, &len);
	if (b->token == NULL ||
	    ingest_decode_json(b, body, len, &status) != 0) {
		pond_counter_inc(&ig->counters.batch_errors);
		pond_http_reply_error(req, b->token == NULL ? 503 : status,
		                      b->batch_error, "%s", b->batch_message);
		ingest_batch_free(b);
		return;
	}
	ingest_submit(ig, b);
}

/* ingest_replay_id parses "/v1/rejected/ID/replay"; 0 when it is not. */
static int64_t
ingest_replay_id(const char *path)
{
	const char *p = path + strlen("/v1/rejected/");
	char *end;
	long long id;

	if (strncmp(path, "/v1/rejected/", strlen("/v1/rejected/")) != 0 ||
	    *p < '1' || *p > '9') {
		return (0);
	}
	id = strtoll(p, &end, 10);
	return (strcmp(end, "/replay") == 0 && id > 0 ? id : 0);
}

/* ingest_on_replay answers POST /v1/rejected/ID/replay {"event": {...}}:
 * an operator's fix of a rejected event, settled like a one-event batch of
 * the original publisher (admin API token). */
static void
ingest_on_replay(pond_http_req *req, void *arg)
{
	ingest *ig = arg;
	int64_t id = ingest_replay_id(pond_http_path(req));
	const char *token = pond_http_bearer(req);
	const char *body;
	json_t *root, *wrapped;
	char *text;
	size_t len;
	unsigned status;
	ingest_batch *b;

	if (id == 0) {
		pond_http_reply_error(req, 404, "not_found",
		                      "expected /v1/rejected/ID/replay");
		return;
	}
	if (token == NULL || ig->stopping) {
		pond_http_reply_error(
		        req, token == NULL ? 401 : 503,
		        token == NULL ? "unauthorized" : "unavailable", "%s",
		        token == NULL ? "an admin API token is "
		                        "required"
		                      : "shutting down");
		return;
	}
	body = pond_http_body(req, &len);
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(json_object_get(root, "event")) ||
	    json_object_size(root) != 1) {
		json_decref(root);
		pond_http_reply_error(req, 400, "bad_request",
		                      "the body must be {\"event\": {...}}");
		return;
	}
	wrapped =
	        json_pack("{s:[O]}", "events", json_object_get(root, "event"));
	text = json_dumps(wrapped, JSON_COMPACT);
	json_decref(wrapped);
	json_decref(root);
	if (text == NULL || (b = ingest_batch_new(ig, FORMAT_JSON)) == NULL) {
		free(text);
		pond_http_reply_error(req, 503, "no_memory", "out of memory");
		return;
	}
	b->http_req = req;
	b->replay_of = id;
	b->started = b->received_at = pond_now();
	b->token = pond_arena_strdup(&b->arena, token);
	if (b->token == NULL ||
	    ingest_decode_json(b, text, strlen(text), &status) != 0) {
		pond_http_reply_error(req, 400, "bad_request", "%s",
		                      b->batch_message != NULL
		                              ? b->batch_message
		                              : "out of memory");
		ingest_batch_free(b);
		free(text);
		return;
	}
	free(text);
	ingest_submit(ig, b);
}

/* --- metrics, start, stop
 * ------------------------------------------------------------ */

static int
ingest_register_metrics(ingest *ig, pond_metrics *m)
{
	ingest_counters *c = &ig->counters;
	static const char *events_help = "Events by outcome.";
	static const char *batches_help = "Batches received by transport.";
	int rv;

	pond_histogram_init(&c->batch_seconds, pond_latency_bounds,
	                    pond_latency_nbounds);
	if ((rv = pond_metrics_counter(m, "pond_ingest_events_total",
	                               events_help, "status=\"accepted\"",
	                               &c->accepted)) != 0 ||
	    (rv = pond_metrics_counter(m, "pond_ingest_events_total",
	                               events_help, "status=\"duplicate\"",
	                               &c->duplicate)) != 0 ||
	    (rv = pond_metrics_counter(m, "pond_ingest_events_total",
	                               events_help, "status=\"rejected\"",
	                               &c->rejected)) != 0 ||
	    (rv = pond_metrics_counter(m, "pond_ingest_batches_total",
	                               batches_help, "transport=\"nng\"",
	                               &c->batches_nng)) != 0 ||
	    (rv = pond_metrics_counter(m, "pond_ingest_batches_total",
	                               batches_help, "transport=\"http\"",
	                               &c->batches_http)) != 0 ||
	    (rv = pond_metrics_counter(
	             m, "pond_ingest_batch_errors_total",
	             "Batches answered with a batch error, nothing stored.",
	             NULL, &c->batch_errors)) != 0 ||
	    (rv = pond_metrics_counter(
	             m, "pond_ingest_unauthorized_total",
	             "Batches with a missing or unknown token.", NULL,
	             &c->unauthorized)) != 0 ||
	    (rv = pond_metrics_counter(
	             m, "pond_ingest_alias_conflicts_total",
	             "Aliases already linked to another customer (not moved).",
	             NULL, &c->alias_conflicts)) != 0 ||
	    (rv = pond_metrics_counter(
	             m, "pond_ingest_groups_total",
	             "Transactions settling batches (a group of waiting "
	             "batches each).",
	             NULL, &c->groups)) != 0 ||
	    (rv = pond_metrics_counter(
	             m, "pond_ingest_grouped_batches_total",
	             "Batches settled, counted by the transactions above.",
	             NULL, &c->grouped_batches)) != 0 ||
	    (rv = pond_metrics_counter(
	             m, "pond_ingest_store_retries_total",
	             "Batch transactions retried after a conflict.", NULL,
	             &c->store_retries)) != 0 ||
	    (rv = pond_metrics_histogram(m,
	                                 "pond_ingest_batch_duration_seconds",
	                                 "From arrival to reply, per batch.",
	                                 NULL, &c->batch_seconds)) != 0) {
		return (rv);
	}
	return (POND_OK);
}

int
ingest_start(pond_service *svc)
{
	ingest *ig = svc->ctx;
	int rv;

	ig->svc = svc;
	if ((rv = ingest_register_metrics(ig, svc->metrics)) != 0 ||
	    (rv = pond_pub_listen(&ig->pub, ig->conf.pub_url)) != 0 ||
	    (rv = pond_http_route(svc->http, "POST", "/v1/events", false,
	                          ingest_on_http, ig)) != 0 ||
	    (rv = pond_http_route(svc->http, "POST", "/v1/rejected/", true,
	                          ingest_on_replay, ig)) != 0) {
		return (rv);
	}
	/* TLS (optional): a tls+tcp:// URL needs both files. */
	if (ig->conf.tls_cert != NULL && *ig->conf.tls_cert != '\0' &&
	    (rv = pond_bus_set_tls(svc->bus, ig->conf.tls_cert,
	                           ig->conf.tls_key != NULL ? ig->conf.tls_key
	                                                    : "")) != 0) {
		return (rv);
	}
	/* Headroom over the 4 MiB limit, so a slightly larger batch still
	 * arrives and gets its batch_error instead of a silent drop. */
	if ((rv = pond_rep_listen(&ig->rep, svc->bus, ig->conf.listen_url,
	                          (int)ig->conf.contexts, 2 * INGEST_MAX_BYTES,
	                          ingest_on_nng, ig)) != 0) {
		return (rv);
	}
	pond_log_info("listening", "nng=%s events_pub=%s",
	              pond_rep_url(ig->rep), ig->conf.pub_url);
	if (ig->conf.pii_key == NULL || *ig->conf.pii_key == '\0') {
		pond_log_warn("pii_key_unset",
		              "hint=\"set POND_PII_KEY: aliases are hashed "
		              "with an empty, public key\"");
	}
	return (POND_OK);
}

static void
ingest_rep_stopped(void *arg)
{
	ingest *ig = arg;

	pond_rep_close(ig->rep);
	ig->rep = NULL;
	ingest_maybe_stopped(ig);
}

void
ingest_stop(pond_service *svc)
{
	ingest *ig = svc->ctx;

	/* Stop taking batches; those in hand are settled and answered
	 * (acked after commit, or not stored at all) before we go. */
	ig->stopping = true;
	pond_rep_stop(ig->rep, ingest_rep_stopped, ig);
}
