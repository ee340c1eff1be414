/*
 * test_ingest_batches.c - pond-ingest and whole batches (API.md sections 1
 * and 6), over NNG and HTTP, with a real PostgreSQL; the per-event
 * contract is test_ingest.c's.
 *
 * - a batch whose COMMIT fails is acked with nothing accepted and leaves no
 *   trace; batches over the limits or without a valid token store nothing;
 * - concurrent overlapping batches store each id once with gap-free seqs;
 * - --help, /healthz and /metrics describe the service;
 * - SIGTERM under load: a clean exit, and only what was acked (or whose ack
 *   was lost, whole) is stored.
 */

#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "test_ingest.h"

/* --- 7. a batch whose COMMIT fails
 * -------------------------------------------------
 */

typedef struct store_counts {
	long long events, event_ids, order_ids, rejected, aliases, heads;
} store_counts;

static store_counts
count_store(const ic_service *svc)
{
	return ((store_counts){
	        .events = iw_count(svc, "SELECT count(*) FROM events"),
	        .event_ids = iw_count(svc, "SELECT count(*) FROM event_ids"),
	        .order_ids = iw_count(svc, "SELECT count(*) FROM order_ids"),
	        .rejected = iw_count(svc, "SELECT count(*) FROM "
	                                  "rejected_events"),
	        .aliases = iw_count(svc, "SELECT count(*) FROM "
	                                 "customer_aliases"),
	        .heads = iw_count(svc, "SELECT coalesce(sum(head), 0) FROM "
	                               "stream_heads WHERE stream = "
	                               "'events'"),
	});
}

static void
expect_store_unchanged(const store_counts *before, const store_counts *now)
{
	cr_assert_eq(now->events, before->events, "events changed");
	cr_assert_eq(now->event_ids, before->event_ids, "event_ids changed");
	cr_assert_eq(now->order_ids, before->order_ids, "order_ids changed");
	cr_assert_eq(now->rejected, before->rejected,
	             "rejected_events changed");
	cr_assert_eq(now->aliases, before->aliases,
	             "customer_aliases changed");
	cr_assert_eq(now->heads, before->heads, "stream heads moved");
}

Test(ingest, batch_whose_commit_fails_is_not_acked_and_leaves_nothing,
     .timeout = 60)
{
	ic_service svc;
	const char *before_trigger =
	        "{\"event_id\": \"pre\", "
	        "\"customer_key\": \"c0\", "
	        "\"occurred_at\": \"" T "\", "
	        "\"aliases\": [{\"kind\": \"phone\", "
	        "\"value\": \"+86-0\"}], "
	        "\"interaction\": {\"kind\": \"message\"}}";
	/* One of each thing a batch writes: an event with a new alias, the
	 * event the trigger refuses, a reject and an order. */
	const char *batch[] = {
	        "{\"event_id\": \"ok1\", \"customer_key\": \"c1\", "
	        "\"occurred_at\": \"" T "\", \"aliases\": [{\"kind\": "
	        "\"phone\", \"value\": \"+86-1\"}], "
	        "\"interaction\": {\"kind\": \"message\"}}",
	        "{\"event_id\": \"boom\", \"customer_key\": \"c2\", "
	        "\"occurred_at\": \"" T "\", "
	        "\"interaction\": {\"kind\": \"message\"}}",
	        "{\"event_id\": \"bad\", \"customer_key\": \"c3\", "
	        "\"occurred_at\": \"" T "\", \"order_paid\": "
	        "{\"order_id\": \"o-bad\", \"amount_fen\": -1}}",
	        "{\"event_id\": \"ok2\", \"customer_key\": \"c4\", "
	        "\"occurred_at\": \"" T "\", \"order_paid\": "
	        "{\"order_id\": \"o-2\", \"amount_fen\": 700}}",
	};
	ic_batch b = {0};
	Pond__IngestAck *ack;
	ic_nng c;
	reply r;

	ic_start(&svc, "ingest-commit-fails", NULL);
	r = iw_send_json(&svc, VIA_NNG, &before_trigger, 1);
	iw_expect_result(iw_reply_result(&r, 0), 0, "pre", "accepted", "");
	iw_reply_free(&r);
	/* Deferred, so it fires at COMMIT, after every statement of the
	 * batch has succeeded. */
	pond_test_sql_exec(
	        svc.dsn,
	        "CREATE FUNCTION refuse_boom() RETURNS trigger "
	        "LANGUAGE plpgsql AS $$ BEGIN IF NEW.event_id = 'boom' THEN "
	        "RAISE EXCEPTION 'boom refused at commit'; END IF; "
	        "RETURN NULL; END $$;"
	        "CREATE CONSTRAINT TRIGGER refuse_boom AFTER INSERT ON events "
	        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
	        "EXECUTE FUNCTION refuse_boom();");
	store_counts before = count_store(&svc);

	for (size_t i = 0; i < 4; i++) {
		ic_batch_add_json(&b, batch[i]);
	}
	ic_nng_open(&c, svc.nng_url, IC_TIMEOUT_MS);
	ack = ic_nng_send(&c, &b, svc.token);
	cr_assert_not_null(ack->batch_error, "a failed commit was acked");
	cr_assert_str_eq(ack->batch_error->code, "unavailable");
	cr_assert_eq(ack->n_results, 0, "results for a batch not stored");
	ic_ack_free(ack);
	store_counts now = count_store(&svc);
	expect_store_unchanged(&before, &now);

	char *body = iw_events_body(batch, 4);
	pond_test_http_resp resp;
	cr_assert_eq(ic_http_post(svc.http_port, svc.token, body, 0, &resp),
	             0);
	cr_assert_eq(resp.status, 503, "HTTP answered %d: %s", resp.status,
	             resp.body);
	cr_assert_null(strstr(resp.body, "accepted"),
	               "a failed commit was acked: %s", resp.body);
	pond_test_http_resp_free(&resp);
	now = count_store(&svc);
	expect_store_unchanged(&before, &now);

	pond_test_sql_exec(svc.dsn, "DROP TRIGGER refuse_boom ON events");
	r = iw_send_json(&svc, VIA_HTTP, batch, 4);
	iw_expect_result(iw_reply_result(&r, 0), 0, "ok1", "accepted", "");
	iw_expect_result(iw_reply_result(&r, 1), 1, "boom", "accepted", "");
	iw_expect_result(iw_reply_result(&r, 2), 2, "bad", "rejected",
	                 "bad_amount");
	iw_expect_result(iw_reply_result(&r, 3), 3, "ok2", "accepted", "");
	iw_reply_free(&r);
	now = count_store(&svc);
	cr_assert_eq(now.events, before.events + 3);
	cr_assert_eq(now.heads, before.heads + 3);
	cr_assert_eq(now.rejected, before.rejected + 1);
	cr_assert_eq(now.aliases, before.aliases + 1);
	cr_assert_eq(now.order_ids, before.order_ids + 1);
	ack = ic_nng_send(&c, &b, svc.token);
	iw_expect_result(ic_ack_result(ack, 0), 0, "ok1", "duplicate", "");
	iw_expect_result(ic_ack_result(ack, 1), 1, "boom", "duplicate", "");
	ic_ack_free(ack);
	ic_nng_close(&c);
	ic_batch_free(&b);
	free(body);
	cr_assert_eq(ic_stop(&svc), 0);
}

/* --- 8. batch errors
 * ---------------------------------------------------------------
 */

static void
expect_batch_error(ic_nng *c, const void *req, size_t len, const char *code)
{
	Pond__IngestAck *ack;
	int rv = ic_nng_call(c, req, len, &ack);

	cr_assert_eq(rv, 0, "no IngestAck (%s), expected batch_error %s",
	             pond_strerror(rv), code);
	cr_assert_not_null(ack->batch_error, "no batch_error, expected %s",
	                   code);
	cr_assert_str_eq(ack->batch_error->code, code);
	cr_assert_eq(ack->n_results, 0);
	ic_ack_free(ack);
}

/* small_events adds n valid events with ids prefix-N. */
static void
small_events(ic_batch *b, const char *prefix, int n)
{
	for (int i = 0; i < n; i++) {
		ic_batch_add(b, ic_event_jsonf("{\"event_id\": \"%s-%d\", "
		                               "\"customer_key\": \"k-%d\", "
		                               "\"occurred_at\": \"" T "\", "
		                               "\"interaction\": {\"kind\": "
		                               "\"message\"}}",
		                               prefix, i, i % 13));
	}
}

Test(ingest, nng_batch_errors_store_nothing, .timeout = 120)
{
	static const char *const garbage[] = {
	        "\xff\xff\xff\xff",       /* a varint that never ends */
	        "\x0a\x40pub_",           /* a token cut short */
	        "\x12\x05\x0a\x01",       /* an event cut short */
	        "\x0f",                   /* wire type 7 */
	        "GET / HTTP/1.1\r\n\r\n", /* not protobuf at all */
	};
	ic_service svc;
	ic_batch b = {0};
	ic_bytes req;
	ic_nng c;
	int batch_errors = 0;

	ic_start(&svc, "ingest-batch-errors", NULL);
	ic_nng_open(&c, svc.nng_url, IC_TIMEOUT_MS);
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		expect_batch_error(&c, garbage[i], strlen(garbage[i]),
		                   "undecodable");
		batch_errors++;
	}

	/* Over 4 MiB: five 1 MiB events, whatever is in them. */
	for (int i = 0; i < 5; i++) {
		ic_bytes big = {0};
		char *fill = iw_repeat('x', 1u << 20);
		ic_field_append(&big, 1, fill, 1u << 20);
		ic_batch_add(&b, big);
		free(fill);
	}
	req = ic_batch_pack(&b, svc.token);
	cr_assert_gt(req.len, MAX_BYTES);
	expect_batch_error(&c, req.data, req.len, "too_large");
	batch_errors++;
	ic_bytes_free(&req);
	ic_batch_free(&b);

	small_events(&b, "many", MAX_EVENTS + 1);
	req = ic_batch_pack(&b, svc.token);
	expect_batch_error(&c, req.data, req.len, "too_many_events");
	batch_errors++;
	ic_bytes_free(&req);
	ic_batch_free(&b);

	/* A good batch with an unknown, a missing or a revoked token. */
	ic_add_publisher(svc.dsn, "gone", "pub_revoked_token");
	pond_test_sql_exec(svc.dsn, "UPDATE publishers SET revoked_at = now() "
	                            "WHERE name = 'gone'");
	small_events(&b, "auth", 3);
	ic_batch_add_json(&b, "{\"event_id\": \"auth-bad\", "
	                      "\"customer_key\": \"c1\"}");
	const char *tokens[] = {"pub_0000000000000000000000000000000000000000"
	                        "000000000000000000000000",
	                        "", "pub_revoked_token"};
	for (size_t i = 0; i < 3; i++) {
		req = ic_batch_pack(&b, tokens[i]);
		expect_batch_error(&c, req.data, req.len, "unauthorized");
		batch_errors++;
		ic_bytes_free(&req);
	}
	ic_batch_free(&b);

	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM events"), 0);
	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM event_ids"), 0);
	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM rejected_events"),
	             0);
	cr_assert_eq(ic_metric(&svc, "pond_ingest_unauthorized_total"), 3);
	cr_assert_eq(ic_metric(&svc, "pond_ingest_batch_errors_total"),
	             batch_errors);

	/* At the limits: 1,000 events just under 4 MiB are all taken. Each
	 * event carries 15 attributes of 256 bytes to come close. */
	char *value = iw_repeat('v', MAX_STRING);
	for (int i = 0; i < MAX_EVENTS; i++) {
		char attrs[16 * (MAX_STRING + 16)], *p = attrs;
		for (int k = 0; k < 15; k++) {
			p += sprintf(p, "%s\"a%02d\": \"%s\"",
			             k > 0 ? ", " : "", k, value);
		}
		ic_batch_add(&b, ic_event_jsonf("{\"event_id\": \"full-%d\", "
		                                "\"customer_key\": \"k-%d\", "
		                                "\"occurred_at\": \"" T "\", "
		                                "\"profile_updated\": "
		                                "{\"attributes\": {%s}}}",
		                                i, i % 13, attrs));
	}
	free(value);
	req = ic_batch_pack(&b, svc.token);
	cr_assert_leq(req.len, MAX_BYTES);
	cr_assert_gt(req.len, MAX_BYTES - MAX_BYTES / 16,
	             "the batch (%zu bytes) is not near the limit", req.len);
	Pond__IngestAck *ack;
	cr_assert_eq(ic_nng_call(&c, req.data, req.len, &ack), 0);
	cr_assert_eq(ack->n_results, MAX_EVENTS);
	for (size_t i = 0; i < MAX_EVENTS; i++) {
		cr_assert_str_eq(ic_ack_result(ack, i).status, "accepted");
	}
	ic_ack_free(ack);
	ic_bytes_free(&req);
	ic_batch_free(&b);
	ic_nng_close(&c);
	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM events"),
	             MAX_EVENTS);
	cr_assert_eq(ic_stop(&svc), 0);
}

/* expect_http_error posts body and checks the status and error code. */
static void
expect_http_error(const ic_service *svc, const char *token, const char *body,
                  size_t len, int status, const char *code)
{
	pond_test_http_resp resp;
	int rv = ic_http_post(svc->http_port, token, body, len, &resp);

	cr_assert_eq(rv, 0, "no answer (%s), expected %d", pond_strerror(rv),
	             status);
	cr_assert_eq(resp.status, status, "answered %d, expected %d: %s",
	             resp.status, status, resp.body);
	json_t *answer = pond_test_json(resp.body);
	json_t *err = json_object_get(answer, "error");
	cr_assert(json_is_object(err), "no {\"error\": ...}: %s", resp.body);
	cr_assert_str_eq(json_string_value(json_object_get(err, "code")), code,
	                 "error %s", resp.body);
	cr_assert(json_is_string(json_object_get(err, "message")));
	json_decref(answer);
	pond_test_http_resp_free(&resp);
}

/* events_of returns {"events": [...]} with n small valid events. */
static char *
events_of(const char *prefix, int n)
{
	char **texts = calloc((size_t)n, sizeof(char *));
	char *body;

	for (int i = 0; i < n; i++) {
		texts[i] =
		        iw_strf("{\"event_id\": \"%s-%d\", \"customer_key\": "
		                "\"k\", \"occurred_at\": \"" T "\", "
		                "\"interaction\": {\"kind\": \"message\"}}",
		                prefix, i);
	}
	body = iw_events_body((const char *const *)texts, (size_t)n);
	for (int i = 0; i < n; i++) {
		free(texts[i]);
	}
	free(texts);
	return (body);
}

Test(ingest, http_bad_requests_get_4xx_and_store_nothing, .timeout = 120)
{
	ic_service svc;
	char *good = events_of("g", 2), *body;
	const char *wrong = "pub_0000000000000000000000000000000000000000000"
	                    "000000000000000000000";

	ic_start(&svc, "ingest-http-errors", NULL);
	expect_http_error(&svc, NULL, good, 0, 401, "unauthorized");
	expect_http_error(&svc, wrong, good, 0, 401, "unauthorized");
	expect_http_error(&svc, svc.token, "{\"events\": [", 0, 400,
	                  "bad_request");
	expect_http_error(&svc, svc.token, "events", 0, 400, "bad_request");
	expect_http_error(&svc, svc.token, "[]", 0, 400, "bad_request");
	expect_http_error(&svc, svc.token, "\"events\"", 0, 400,
	                  "bad_request");
	expect_http_error(&svc, svc.token, "{}", 0, 400, "bad_request");
	expect_http_error(&svc, svc.token, "{\"events\": {}}", 0, 400,
	                  "bad_request");
	expect_http_error(&svc, svc.token, "{\"events\": null}", 0, 400,
	                  "bad_request");
	expect_http_error(&svc, svc.token,
	                  "{\"events\": [], \"token\": \"x\"}", 0, 400,
	                  "bad_request");
	expect_http_error(&svc, svc.token, "{\"events\": [], \"events\": []}",
	                  0, 400, "bad_request");

	body = events_of("many", MAX_EVENTS + 1);
	expect_http_error(&svc, svc.token, body, 0, 413, "too_many_events");
	free(body);
	/* Over 4 MiB, however little of it is events. */
	char *fill = iw_repeat('x', 5u << 20);
	body = iw_strf("{\"events\": [{\"event_id\": \"%s\"}]}", fill);
	free(fill);
	expect_http_error(&svc, svc.token, body, 0, 413, "too_large");
	free(body);

	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM events"), 0);
	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM rejected_events"),
	             0);
	cr_assert_eq(ic_metric(&svc, "pond_ingest_unauthorized_total"), 2);

	/* The limit itself is fine. */
	int status;
	body = events_of("full", MAX_EVENTS);
	json_t *answer = ic_http_events(&svc, body, &status);
	cr_assert_eq(status, 200);
	cr_assert_eq(json_array_size(json_object_get(answer, "results")),
	             MAX_EVENTS);
	json_decref(answer);
	free(body);
	free(good);
	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM events"),
	             MAX_EVENTS);
	cr_assert_eq(ic_stop(&svc), 0);
}

/* --- 9. concurrent overlapping batches
 * ---------------------------------------------
 */

enum {
	CC_THREADS = 4,
	CC_BATCHES = 20,
	CC_EVENTS = 100,
	CC_IDS = CC_BATCHES * CC_EVENTS
};

typedef struct cc_sender {
	const ic_service *svc;
	pthread_barrier_t *start;
	int thread;
	int accepted[CC_IDS]; /* acks "accepted" per id */
	int duplicate[CC_IDS];
	int failures;
	char failure[200];
} cc_sender;

/* cc_id is the id of event i of batch k of thread t: each thread covers
 * all CC_IDS ids once, starting half a batch after the previous thread,
 * so every id travels in 4 batches that overlap in time. */
static int
cc_id(int t, int k, int i)
{
	return ((k * CC_EVENTS + i + t * CC_EVENTS / 2) % CC_IDS);
}

static void *
cc_send(void *arg)
{
	cc_sender *s = arg;
	ic_nng c;

	ic_nng_open(&c, s->svc->nng_url, IC_TIMEOUT_MS);
	pthread_barrier_wait(s->start);
	for (int k = 0; k < CC_BATCHES; k++) {
		ic_batch b = {0};
		ic_bytes req;
		Pond__IngestAck *ack;
		int rv;

		for (int i = 0; i < CC_EVENTS; i++) {
			int id = cc_id(s->thread, k, i);
			ic_batch_add(&b, ic_event_jsonf(
			                         "{\"event_id\": \"x-%04d\", "
			                         "\"customer_key\": \"k-%d\", "
			                         "\"occurred_at\": \"" T "\", "
			                         "\"interaction\": {\"kind\": "
			                         "\"message\"}}",
			                         id, id % 97));
		}
		req = ic_batch_pack(&b, s->svc->token);
		rv = ic_nng_call(&c, req.data, req.len, &ack);
		ic_bytes_free(&req);
		if (rv != 0 || ack->batch_error != NULL ||
		    ack->n_results != CC_EVENTS) {
			snprintf(s->failure, sizeof(s->failure),
			         "batch %d: %s", k,
			         rv != 0 ? pond_strerror(rv)
			         : ack->batch_error != NULL
			                 ? ack->batch_error->code
			                 : "wrong number of results");
			s->failures++;
			ic_ack_free(ack);
			ic_batch_free(&b);
			continue;
		}
		for (int i = 0; i < CC_EVENTS; i++) {
			int id = cc_id(s->thread, k, i);
			const char *st = ack->results[i]->status;
			if (strcmp(st, "accepted") == 0) {
				s->accepted[id]++;
			} else if (strcmp(st, "duplicate") == 0) {
				s->duplicate[id]++;
			}
		}
		ic_ack_free(ack);
		ic_batch_free(&b);
	}
	ic_nng_close(&c);
	return (NULL);
}

Test(ingest, concurrent_overlapping_batches_store_each_id_once, .timeout = 120)
{
	static cc_sender senders[CC_THREADS];
	pthread_t threads[CC_THREADS];
	pthread_barrier_t start;
	ic_service svc;

	ic_start(&svc, "ingest-concurrent", NULL);
	pthread_barrier_init(&start, NULL, CC_THREADS);
	for (int t = 0; t < CC_THREADS; t++) {
		memset(&senders[t], 0, sizeof(senders[t]));
		senders[t].svc = &svc;
		senders[t].start = &start;
		senders[t].thread = t;
		pthread_create(&threads[t], NULL, cc_send, &senders[t]);
	}
	for (int t = 0; t < CC_THREADS; t++) {
		pthread_join(threads[t], NULL);
		cr_assert_eq(senders[t].failures, 0, "thread %d: %s", t,
		             senders[t].failure);
	}
	pthread_barrier_destroy(&start);

	/* Each id was sent once by every thread: accepted exactly once in
	 * all the replies, a duplicate the other times. */
	for (int id = 0; id < CC_IDS; id++) {
		int accepted = 0, duplicate = 0;
		for (int t = 0; t < CC_THREADS; t++) {
			accepted += senders[t].accepted[id];
			duplicate += senders[t].duplicate[id];
		}
		cr_assert_eq(accepted, 1, "x-%04d acked accepted %d times", id,
		             accepted);
		cr_assert_eq(duplicate, CC_THREADS - 1,
		             "x-%04d acked duplicate %d times", id, duplicate);
	}
	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM events"), CC_IDS);
	cr_assert_eq(iw_count(&svc, "SELECT count(DISTINCT event_id) FROM "
	                            "events"),
	             CC_IDS);
	/* Seqs are 1..n in every partition, and the heads stand at n. */
	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM (SELECT partition, "
	                            "count(*) c, min(seq) lo, max(seq) hi "
	                            "FROM events GROUP BY partition) x "
	                            "WHERE lo <> 1 OR hi <> c"),
	             0);
	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM stream_heads h "
	                            "LEFT JOIN (SELECT partition, count(*) c "
	                            "FROM events GROUP BY partition) e "
	                            "USING (partition) WHERE h.stream = "
	                            "'events' AND h.head <> coalesce(e.c, 0)"),
	             0);
	cr_log_info("concurrent: %d ids over %d partitions, %d batches",
	            CC_IDS,
	            (int)iw_count(&svc, "SELECT count(DISTINCT partition) "
	                                "FROM events"),
	            CC_THREADS * CC_BATCHES);
	cr_assert_eq(ic_stop(&svc), 0);
}

/* --- 10. --help, /healthz, /metrics
 * --------------------------------------------------
 */

Test(ingest, help_healthz_and_metrics_describe_the_service, .timeout = 60)
{
	const char *help_argv[] = {"pond-ingest", "--help", NULL};
	ic_service svc;
	char *out = NULL, path[PATH_MAX];
	pond_test_http_resp resp;
	FILE *f;
	reply r;

	cr_assert_eq(pond_test_run(help_argv, NULL, "ingest-help", &out), 0);
	cr_assert_not_null(strstr(out, "POND_INGEST_URL"), "%s", out);
	cr_assert_not_null(strstr(out, "POND_DSN"), "%s", out);
	free(out);

	ic_start(&svc, "ingest-metrics", NULL);
	pond_test_wait_http_ok(svc.http_port, "/healthz", 5000);

	/* 3 accepted, 2 duplicates, 1 rejected over NNG; 1 accepted and 1
	 * duplicate over HTTP. */
	const char *nng_batch[] = {
	        "{\"event_id\": \"m1\", \"customer_key\": \"c1\", "
	        "\"occurred_at\": \"" T "\", "
	        "\"interaction\": {\"kind\": \"message\"}}",
	        "{\"event_id\": \"m2\", \"customer_key\": \"c1\", "
	        "\"occurred_at\": \"" T "\", "
	        "\"interaction\": {\"kind\": \"message\"}}",
	        "{\"event_id\": \"m1\", \"customer_key\": \"c1\", "
	        "\"occurred_at\": \"" T "\", "
	        "\"interaction\": {\"kind\": \"message\"}}",
	        "{\"event_id\": \"m3\", \"customer_key\": \"c1\"}",
	        "{\"event_id\": \"m4\", \"customer_key\": \"c2\", "
	        "\"occurred_at\": \"" T "\", "
	        "\"member_joined\": {\"tier\": \"gold\"}}",
	        "{\"event_id\": \"m2\", \"customer_key\": \"c1\", "
	        "\"occurred_at\": \"" T "\", "
	        "\"interaction\": {\"kind\": \"message\"}}",
	};
	const char *http_batch[] = {
	        "{\"event_id\": \"m5\", \"customer_key\": \"c1\", "
	        "\"occurred_at\": \"" T "\", "
	        "\"interaction\": {\"kind\": \"message\"}}",
	        nng_batch[4], /* m4, accepted over NNG */
	};
	r = iw_send_json(&svc, VIA_NNG, nng_batch, 6);
	iw_reply_free(&r);
	r = iw_send_json(&svc, VIA_HTTP, http_batch, 2);
	iw_reply_free(&r);

	cr_assert_eq(ic_metric(&svc, "pond_ingest_events_total{status="
	                             "\"accepted\"}"),
	             3 + 1);
	cr_assert_eq(ic_metric(&svc, "pond_ingest_events_total{status="
	                             "\"duplicate\"}"),
	             2 + 1);
	cr_assert_eq(ic_metric(&svc, "pond_ingest_events_total{status="
	                             "\"rejected\"}"),
	             1);
	cr_assert_eq(ic_metric(&svc, "pond_ingest_batches_total{transport="
	                             "\"nng\"}"),
	             1);
	cr_assert_eq(ic_metric(&svc, "pond_ingest_batches_total{transport="
	                             "\"http\"}"),
	             1);

	/* promtool reads the exposition from stdin: give it a file. */
	cr_assert_eq(pond_test_http("GET", svc.http_port, "/metrics", NULL,
	                            NULL, 0, &resp),
	             0);
	cr_assert_eq(resp.status, 200);
	snprintf(path, sizeof(path), "%s/ingest-metrics-%d.prom",
	         pond_test_artifacts_dir(), (int)getpid());
	cr_assert_not_null(f = fopen(path, "w"));
	cr_assert_eq(fwrite(resp.body, 1, resp.len, f), resp.len);
	fclose(f);
	pond_test_http_resp_free(&resp);
	char *cmd = iw_strf("/usr/bin/promtool check metrics < '%s'", path);
	const char *sh_argv[] = {"/bin/sh", "-c", cmd, NULL};
	out = NULL;
	int status = pond_test_run(sh_argv, NULL, "ingest-promtool", &out);
	cr_assert_eq(status, 0, "promtool check metrics exited %d: %s (%s)",
	             status, out, path);
	free(out);
	free(cmd);
	unlink(path);
	cr_assert_eq(ic_stop(&svc), 0);
}

/* --- 11. SIGTERM under load
 * ----------------------------------------------------------
 */

enum { ST_THREADS = 3, ST_BATCHES = 400, ST_EVENTS = 50, ST_BAD = 7 };

typedef enum st_state {
	ST_NOT_SENT,
	ST_ACKED,       /* results came back */
	ST_BATCH_ERROR, /* an ack with batch_error: nothing stored */
	ST_NO_REPLY,    /* the socket closed or timed out */
} st_state;

typedef struct st_sender {
	const ic_service *svc;
	int thread;
	atomic_int *acked_batches;
	atomic_bool *stop;
	int sent;
	st_state state[ST_BATCHES];
	uint64_t accepted[ST_BATCHES]; /* bit i: event i acked accepted */
} st_sender;

/* Event ST_BAD of every batch has a negative amount: the rest is valid. */
static const uint64_t st_valid =
        ((UINT64_C(1) << ST_EVENTS) - 1) & ~(UINT64_C(1) << ST_BAD);

static void *
st_send(void *arg)
{
	st_sender *s = arg;
	ic_nng c;

	/* Short enough to notice the service is gone, long enough for a
	 * batch that waits for its COMMIT under load. */
	ic_nng_open(&c, s->svc->nng_url, 5000);
	while (!atomic_load(s->stop) && s->sent < ST_BATCHES) {
		int k = s->sent++;
		ic_batch b = {0};
		ic_bytes req;
		Pond__IngestAck *ack;

		for (int i = 0; i < ST_EVENTS; i++) {
			ic_batch_add(
			        &b,
			        ic_event_jsonf(
			                "{\"event_id\": \"s%d-%03d-%02d\", "
			                "\"customer_key\": \"k-%d\", "
			                "\"occurred_at\": \"" T "\", "
			                "\"order_paid\": {\"order_id\": "
			                "\"o%d-%03d-%02d\", "
			                "\"amount_fen\": %d}}",
			                s->thread, k, i, i % 17, s->thread, k,
			                i, i == ST_BAD ? -1 : 100));
		}
		req = ic_batch_pack(&b, s->svc->token);
		int rv = ic_nng_call(&c, req.data, req.len, &ack);
		ic_bytes_free(&req);
		ic_batch_free(&b);
		if (rv != 0) {
			s->state[k] = ST_NO_REPLY;
			ic_ack_free(ack);
			break;
		}
		if (ack->batch_error != NULL) {
			s->state[k] = ST_BATCH_ERROR;
		} else {
			s->state[k] = ST_ACKED;
			for (size_t i = 0; i < ack->n_results; i++) {
				if (strcmp(ack->results[i]->status,
				           "accepted") == 0) {
					s->accepted[k] |= UINT64_C(1) << i;
				}
			}
			atomic_fetch_add(s->acked_batches, 1);
		}
		ic_ack_free(ack);
	}
	ic_nng_close(&c);
	return (NULL);
}

Test(ingest, sigterm_under_load_exits_clean_and_stores_only_acked,
     .timeout = 120)
{
	static st_sender senders[ST_THREADS];
	static uint64_t stored[ST_THREADS][ST_BATCHES];
	pthread_t threads[ST_THREADS];
	atomic_int acked_batches = 0;
	atomic_bool stop = false;
	ic_service svc;
	int status;

	ic_start(&svc, "ingest-sigterm", NULL);
	for (int t = 0; t < ST_THREADS; t++) {
		memset(&senders[t], 0, sizeof(senders[t]));
		senders[t] = (st_sender){.svc = &svc,
		                         .thread = t,
		                         .acked_batches = &acked_batches,
		                         .stop = &stop};
		pthread_create(&threads[t], NULL, st_send, &senders[t]);
	}
	/* Mid-way: once some batches are acked and more are in flight. */
	for (int waited = 0;
	     atomic_load(&acked_batches) < 30 && waited < 20000;
	     waited += 10) {
		usleep(10 * 1000);
	}
	cr_assert_geq(atomic_load(&acked_batches), 30, "no load to stop");
	int64_t t0 = pond_now();
	pond_test_kill(svc.proc, SIGTERM);
	cr_assert_eq(ic_wait_exit(&svc, IC_STOP_MS, &status), 0,
	             "pond-ingest still running %d ms after SIGTERM (its "
	             "threads are in %s)",
	             IC_STOP_MS, pond_test_proc_log(svc.proc));
	double took = (double)(pond_now() - t0) / 1e6;
	cr_assert_eq(status, 0, "pond-ingest exited %d after SIGTERM", status);
	atomic_store(&stop, true);
	for (int t = 0; t < ST_THREADS; t++) {
		pthread_join(threads[t], NULL);
	}
	(void)pond_test_stop(svc.proc);

	PGconn *conn = pond_test_pg_connect(svc.dsn);
	PGresult *res = PQexec(conn, "SELECT event_id FROM events");
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	memset(stored, 0, sizeof(stored));
	for (int r = 0; r < PQntuples(res); r++) {
		int t, k, i;
		cr_assert_eq(
		        sscanf(PQgetvalue(res, r, 0), "s%d-%d-%d", &t, &k, &i),
		        3);
		cr_assert(t < ST_THREADS && k < ST_BATCHES && i < ST_EVENTS);
		stored[t][k] |= UINT64_C(1) << i;
	}
	long long rows = PQntuples(res);
	PQclear(res);
	PQfinish(conn);

	int acked = 0, refused = 0, lost_all = 0, lost_none = 0;
	long long acked_events = 0;
	for (int t = 0; t < ST_THREADS; t++) {
		for (int k = 0; k < senders[t].sent; k++) {
			uint64_t have = stored[t][k];
			switch (senders[t].state[k]) {
			case ST_ACKED:
				/* Every valid event is new: all accepted, and
				 * exactly those stored. */
				cr_assert_eq(
				        senders[t].accepted[k], st_valid,
				        "s%d-%03d: acks %#lx", t, k,
				        (unsigned long)senders[t].accepted[k]);
				cr_assert_eq(
				        have, senders[t].accepted[k],
				        "s%d-%03d: stored %#lx, acked %#lx", t,
				        k, (unsigned long)have,
				        (unsigned long)senders[t].accepted[k]);
				acked++;
				acked_events += __builtin_popcountll(have);
				break;
			case ST_BATCH_ERROR:
				cr_assert_eq(have, 0,
				             "s%d-%03d: refused but "
				             "stored",
				             t, k);
				refused++;
				break;
			case ST_NO_REPLY:
			case ST_NOT_SENT:
				/* All or nothing. */
				cr_assert(have == 0 || have == st_valid,
				          "s%d-%03d: reply lost and only part "
				          "stored (%#lx)",
				          t, k, (unsigned long)have);
				have == 0 ? lost_none++ : lost_all++;
				break;
			}
		}
		for (int k = senders[t].sent; k < ST_BATCHES; k++) {
			cr_assert_eq(stored[t][k], 0);
		}
	}
	cr_assert_eq(rows,
	             acked_events + (long long)lost_all *
	                                    __builtin_popcountll(st_valid));
	cr_log_info("sigterm: exit in %.2f s; %d batches acked (%lld events "
	            "stored), %d refused, %d without reply (%d stored whole, "
	            "%d not at all); %lld rows",
	            took, acked, acked_events, refused, lost_all + lost_none,
	            lost_all, lost_none, rows);
	/* What was stored still has gap-free seqs. */
	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM (SELECT partition, "
	                            "count(*) c, max(seq) hi FROM events "
	                            "GROUP BY partition) x WHERE hi <> c"),
	             0);
}
