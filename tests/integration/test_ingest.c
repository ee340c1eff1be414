/*
 * test_ingest.c - pond-ingest against its contract (API.md sections 1 and
 * 6), over NNG and HTTP, with a real PostgreSQL.
 *
 * Every test starts its own service (ingest_client.h): its own database,
 * ports, publisher and clock, which stands at POND_TEST_CLOCK_START so that
 * "now" and "24 h from now" are known to the test. What a test expects is
 * worked out from the batch it sends: which events are new, which repeat an
 * id, which break a rule and which rule comes first.
 *
 * - results: one per event, in order; a repeated id is a duplicate within a
 *   batch and across batches, and is stored once;
 * - rejections: every code of section 6, its precedence, and the
 *   rejected_events row keeping exactly the bytes (or JSON) that came in;
 * - idempotency, aliases and duplicate_order as section 6 words them;
 * - a batch whose COMMIT fails is acked with nothing accepted and leaves no
 *   trace; batches over the limits or without a valid token store nothing;
 * - concurrent overlapping batches store each id once with gap-free seqs;
 * - SIGTERM under load: a clean exit, and only what was acked (or whose ack
 *   was lost, whole) is stored.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "harness.h"
#include "ingest_client.h"
#include "token.h"

#define T IC_EVENT_TIME

/* API.md section 6 limits, as the contract states them. */
#define MAX_FEN    INT64_C(100000000000) /* 10^11 fen */
#define MAX_STRING 256                   /* bytes of UTF-8 */
#define MAX_EVENTS 1000
#define MAX_BYTES  (4u << 20)

/* --- small helpers ----------------------------------------------------------
 */

/* strf returns a formatted string the caller frees. */
static char *__attribute__((format(printf, 1, 2))) strf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	cr_assert(vasprintf(&s, fmt, ap) >= 0, "out of memory");
	va_end(ap);
	return (s);
}

/* repeat returns n copies of c (the caller frees). */
static char *
repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	cr_assert_not_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return (s);
}

/* clock_plus formats the test clock's start plus usec into buf. */
static const char *
clock_plus(pond_time usec, char *buf, size_t len)
{
	pond_time start;

	cr_assert_eq(pond_time_parse_rfc3339(POND_TEST_CLOCK_START, &start),
	             0);
	return (pond_time_format_rfc3339(start + usec, buf, len));
}

static long long
sql_count(const ic_service *svc, const char *sql)
{
	return (pond_test_sql_int(svc->dsn, sql));
}

/* expect_result checks one result without ending the test, so that every
 * wrong result of a batch is reported (and the test still frees what it
 * holds). */
static void
expect_result(ic_result r, size_t i, const char *event_id, const char *status,
              const char *code)
{
	cr_expect_str_eq(r.event_id, event_id, "result %zu: event_id '%s'", i,
	                 r.event_id);
	cr_expect_str_eq(r.status, status,
	                 "result %zu (%s): status %s, expected %s", i,
	                 event_id, r.status, status);
	cr_expect_str_eq(r.code, code,
	                 "result %zu (%s): code '%s', expected '%s'", i,
	                 event_id, r.code, code);
}

/* --- one batch over either transport --------------------------------------
 */

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

/* events_body returns {"events": [e0, e1, ...]} for JSON texts. */
static char *
events_body(const char *const *events, size_t n)
{
	size_t len = 16;
	char *body, *p;

	for (size_t i = 0; i < n; i++) {
		len += strlen(events[i]) + 1;
	}
	body = p = malloc(len);
	cr_assert_not_null(body);
	p += sprintf(p, "{\"events\": [");
	for (size_t i = 0; i < n; i++) {
		p += sprintf(p, "%s%s", i > 0 ? "," : "", events[i]);
	}
	sprintf(p, "]}");
	return (body);
}

/* send_json sends the events (JSON texts) as one batch with svc's token:
 * over NNG packed by the common codec, over HTTP as they are. */
static reply
send_json(const ic_service *svc, via how, const char *const *events, size_t n)
{
	reply r = {.how = how};

	if (how == VIA_NNG) {
		ic_batch b = {0};
		ic_nng c;

		for (size_t i = 0; i < n; i++) {
			ic_batch_add_json(&b, events[i]);
		}
		ic_nng_open(&c, svc->nng_url, IC_TIMEOUT_MS);
		r.ack = ic_nng_send(&c, &b, svc->token);
		ic_nng_close(&c);
		ic_batch_free(&b);
	} else {
		char *body = events_body(events, n);

		r.answer = ic_http_events(svc, body, &r.http_status);
		free(body);
	}
	return (r);
}

/* reply_usable reports, without ending the test, whether r holds one
 * result for each of n events (and not a batch error or an HTTP error). */
static bool
reply_usable(const reply *r, size_t n)
{
	size_t got;

	if (r->how == VIA_NNG && r->ack->batch_error != NULL) {
		cr_expect_fail("the whole batch failed: %s (%s)",
		               r->ack->batch_error->code,
		               r->ack->batch_error->message);
		return (false);
	}
	if (r->how == VIA_HTTP && r->http_status != 200) {
		char *text = json_dumps(r->answer, JSON_ENCODE_ANY);
		cr_expect_fail("POST /v1/events answered %d: %s",
		               r->http_status, text);
		free(text);
		return (false);
	}
	got = r->how == VIA_NNG
	              ? r->ack->n_results
	              : json_array_size(json_object_get(r->answer, "results"));
	cr_expect_eq(got, n, "%zu results for %zu events", got, n);
	return (got == n);
}

static size_t
reply_count(const reply *r)
{
	cr_assert(r->how == VIA_NNG || r->http_status == 200,
	          "POST /v1/events answered %d", r->http_status);
	if (r->how == VIA_NNG) {
		cr_assert_null(r->ack->batch_error, "batch_error %s",
		               r->ack->batch_error != NULL
		                       ? r->ack->batch_error->code
		                       : "");
		return (r->ack->n_results);
	}
	return (json_array_size(json_object_get(r->answer, "results")));
}

static ic_result
reply_result(const reply *r, size_t i)
{
	return (r->how == VIA_NNG ? ic_ack_result(r->ack, i)
	                          : ic_json_result(r->answer, i));
}

static void
reply_free(reply *r)
{
	ic_ack_free(r->ack);
	json_decref(r->answer);
	memset(r, 0, sizeof(*r));
}

/* --- cases: events with the outcome the contract gives them ---------------
 */

typedef struct ev_case {
	char *json;       /* the event over HTTP; NULL: not JSON-expressible */
	ic_bytes raw;     /* the event over NNG; data NULL: HTTP only */
	const char *id;   /* the event_id the reply echoes ("" if none) */
	const char *code; /* the rejection code; NULL: accepted */
} ev_case;

typedef struct ev_cases {
	ev_case v[64];
	size_t n;
} ev_cases;

static ev_case *
case_new(ev_cases *cs, const char *id, const char *code)
{
	cr_assert_lt(cs->n, sizeof(cs->v) / sizeof(cs->v[0]));
	ev_case *c = &cs->v[cs->n++];
	memset(c, 0, sizeof(*c));
	c->id = id;
	c->code = code;
	return (c);
}

/* case_both adds an event sent as this JSON over HTTP and as its protobuf
 * over NNG. */
static void __attribute__((format(printf, 4, 5)))
case_both(ev_cases *cs, const char *id, const char *code, const char *fmt, ...)
{
	ev_case *c = case_new(cs, id, code);
	va_list ap;

	va_start(ap, fmt);
	cr_assert(vasprintf(&c->json, fmt, ap) >= 0);
	va_end(ap);
	c->raw = ic_event_json(c->json);
}

/* case_http adds an event only JSON can express (or only HTTP sees). */
static void __attribute__((format(printf, 4, 5)))
case_http(ev_cases *cs, const char *id, const char *code, const char *fmt, ...)
{
	ev_case *c = case_new(cs, id, code);
	va_list ap;

	va_start(ap, fmt);
	cr_assert(vasprintf(&c->json, fmt, ap) >= 0);
	va_end(ap);
}

/* case_nng adds hand-made event bytes, sent only over NNG. */
static void
case_nng(ev_cases *cs, const char *id, const char *code, ic_bytes raw)
{
	case_new(cs, id, code)->raw = raw;
}

static void
cases_free(ev_cases *cs)
{
	for (size_t i = 0; i < cs->n; i++) {
		free(cs->v[i].json);
		ic_bytes_free(&cs->v[i].raw);
	}
	cs->n = 0;
}

static bool
case_applies(const ev_case *c, via how)
{
	return (how == VIA_NNG ? c->raw.data != NULL : c->json != NULL);
}

/* check_rejected_row compares rejected_events row (code, format, event_id,
 * raw) with what case c sent. */
static void
check_rejected_row(const ic_service *svc, PGresult *res, int row,
                   const ev_case *c, via how)
{
	const char *code = PQgetvalue(res, row, 0);
	const char *format = PQgetvalue(res, row, 1);
	const char *event_id = PQgetvalue(res, row, 2);
	const char *raw = PQgetvalue(res, row, 3);
	long long publisher = strtoll(PQgetvalue(res, row, 4), NULL, 10);

	cr_expect_str_eq(code, c->code, "rejected row of '%s': code %s", c->id,
	                 code);
	cr_expect_str_eq(format, how == VIA_NNG ? "protobuf" : "json");
	cr_expect_str_eq(event_id, c->id,
	                 "rejected row of '%s': event_id "
	                 "'%s'",
	                 c->id, event_id);
	cr_expect_eq(publisher, svc->publisher_id);
	if (how == VIA_NNG) {
		char *hex = ic_hex(c->raw.data, c->raw.len);
		cr_expect_str_eq(raw, hex,
		                 "rejected row of '%s' does not keep the "
		                 "bytes sent",
		                 c->id);
		free(hex);
	} else {
		json_t *sent = pond_test_json(c->json);
		json_t *kept = pond_test_json(raw);
		cr_expect(json_equal(sent, kept),
		          "rejected row of '%s' keeps %s, sent %s", c->id, raw,
		          c->json);
		/* Compact: no whitespace outside strings was kept. */
		char *compact =
		        json_dumps(sent, JSON_COMPACT | JSON_ENCODE_ANY);
		cr_expect_eq(strlen(raw), strlen(compact),
		             "rejected row of '%s' is not compact: %s", c->id,
		             raw);
		free(compact);
		json_decref(sent);
		json_decref(kept);
	}
}

/* run_cases sends the cases that apply to how as one batch and checks
 * each result, each rejected_events row (in batch order) and that exactly
 * the accepted ones are stored. */
static void
run_cases(const ic_service *svc, via how, const ev_cases *cs)
{
	const ev_case *sent[64];
	size_t n = 0, naccepted = 0;
	long long events_before =
	        sql_count(svc, "SELECT count(*) FROM events");
	long long last_reject = sql_count(
	        svc, "SELECT coalesce(max(id), 0) FROM rejected_events");
	reply r = {.how = how};

	for (size_t i = 0; i < cs->n; i++) {
		if (case_applies(&cs->v[i], how)) {
			sent[n++] = &cs->v[i];
		}
	}
	if (how == VIA_NNG) {
		ic_batch b = {0};
		ic_nng c;

		for (size_t i = 0; i < n; i++) {
			ic_batch_add(&b, ic_bytes_copy(sent[i]->raw.data,
			                               sent[i]->raw.len));
		}
		ic_nng_open(&c, svc->nng_url, IC_TIMEOUT_MS);
		r.ack = ic_nng_send(&c, &b, svc->token);
		ic_nng_close(&c);
		ic_batch_free(&b);
	} else {
		const char *texts[64];

		for (size_t i = 0; i < n; i++) {
			texts[i] = sent[i]->json;
		}
		reply_free(&r);
		r = send_json(svc, VIA_HTTP, texts, n);
	}

	if (!reply_usable(&r, n)) {
		reply_free(&r);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const ev_case *c = sent[i];
		expect_result(reply_result(&r, i), i, c->id,
		              c->code != NULL ? "rejected" : "accepted",
		              c->code != NULL ? c->code : "");
		naccepted += c->code == NULL;
	}

	char *sql = strf("SELECT code, format, coalesce(event_id, ''), "
	                 "CASE format WHEN 'json' THEN "
	                 "convert_from(raw, 'UTF8') "
	                 "ELSE encode(raw, 'hex') END, publisher_id "
	                 "FROM rejected_events WHERE id > %lld ORDER BY id",
	                 last_reject);
	PGconn *conn = pond_test_pg_connect(svc->dsn);
	PGresult *res = PQexec(conn, sql);
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s",
	             PQerrorMessage(conn));
	cr_assert_eq((size_t)PQntuples(res), n - naccepted,
	             "%d rejected_events rows for %zu rejected events",
	             PQntuples(res), n - naccepted);
	int row = 0;
	for (size_t i = 0; i < n; i++) {
		if (sent[i]->code != NULL) {
			check_rejected_row(svc, res, row++, sent[i], how);
		}
	}
	PQclear(res);
	PQfinish(conn);
	free(sql);

	cr_assert_eq(sql_count(svc, "SELECT count(*) FROM events"),
	             events_before + (long long)naccepted);
	for (size_t i = 0; i < n; i++) {
		if (sent[i]->code == NULL) {
			char *q = strf("SELECT count(*) FROM events WHERE "
			               "event_id = '%s'",
			               sent[i]->id);
			cr_assert_eq(sql_count(svc, q), 1,
			             "accepted '%s' is not stored once",
			             sent[i]->id);
			free(q);
		}
	}
	reply_free(&r);
}

/* --- 1. one result per event, in order
 * ----------------------------------------
 */

/* results_in_order sends two batches: in the first, e1 comes twice and e3
 * has no body; the second repeats e2 and e1 and the still broken e3. */
static void
results_in_order(via how)
{
	ic_service svc;
	const char *e1 = "{\"event_id\": \"e1\", \"customer_key\": \"c1\", "
	                 "\"occurred_at\": \"" T "\", "
	                 "\"interaction\": {\"kind\": \"message\"}}";
	const char *e2 = "{\"event_id\": \"e2\", \"customer_key\": \"c2\", "
	                 "\"occurred_at\": \"" T "\", \"order_paid\": "
	                 "{\"order_id\": \"o-1\", \"amount_fen\": 990}}";
	const char *e3 = "{\"event_id\": \"e3\", \"customer_key\": \"c3\", "
	                 "\"occurred_at\": \"" T "\"}";
	const char *e4 = "{\"event_id\": \"e4\", \"customer_key\": \"c3\", "
	                 "\"occurred_at\": \"" T "\", "
	                 "\"contact_added\": {\"channel\": \"poster\"}}";
	const char *e5 = "{\"event_id\": \"e5\", \"customer_key\": \"c1\", "
	                 "\"occurred_at\": \"" T "\", "
	                 "\"member_joined\": {\"tier\": \"gold\"}}";
	const char *first[] = {e1, e2, e1, e3, e4};
	const char *second[] = {e2, e5, e1, e3};
	reply r;

	ic_start(&svc,
	         how == VIA_NNG ? "ingest-order-nng" : "ingest-order-http",
	         NULL);
	r = send_json(&svc, how, first, 5);
	cr_assert_eq(reply_count(&r), 5);
	expect_result(reply_result(&r, 0), 0, "e1", "accepted", "");
	expect_result(reply_result(&r, 1), 1, "e2", "accepted", "");
	expect_result(reply_result(&r, 2), 2, "e1", "duplicate", "");
	expect_result(reply_result(&r, 3), 3, "e3", "rejected",
	              "missing_body");
	expect_result(reply_result(&r, 4), 4, "e4", "accepted", "");
	reply_free(&r);

	r = send_json(&svc, how, second, 4);
	cr_assert_eq(reply_count(&r), 4);
	expect_result(reply_result(&r, 0), 0, "e2", "duplicate", "");
	expect_result(reply_result(&r, 1), 1, "e5", "accepted", "");
	expect_result(reply_result(&r, 2), 2, "e1", "duplicate", "");
	expect_result(reply_result(&r, 3), 3, "e3", "rejected",
	              "missing_body");
	reply_free(&r);

	/* e1, e2, e4, e5 once each; e3 twice in rejected_events. */
	cr_assert_eq(sql_count(&svc, "SELECT count(*) FROM events"), 4);
	cr_assert_eq(sql_count(&svc, "SELECT count(DISTINCT event_id) FROM "
	                             "events WHERE event_id IN "
	                             "('e1', 'e2', 'e4', 'e5')"),
	             4);
	cr_assert_eq(sql_count(&svc, "SELECT count(*) FROM event_ids"), 4);
	cr_assert_eq(sql_count(&svc, "SELECT count(*) FROM rejected_events "
	                             "WHERE event_id = 'e3' AND "
	                             "code = 'missing_body'"),
	             2);
	/* The row copies what was sent, with the service clock as the
	 * arrival time, and the payload is the event as sent (its key was
	 * given, so resolving it changes nothing). */
	char *sql = strf("SELECT count(*) FROM events WHERE event_id = 'e2' "
	                 "AND customer_key = 'c2' AND type = 'order_paid' "
	                 "AND publisher_id = %lld AND occurred_at = '" T "' "
	                 "AND received_at = '" POND_TEST_CLOCK_START "'",
	                 svc.publisher_id);
	cr_assert_eq(sql_count(&svc, sql), 1);
	free(sql);
	ic_bytes packed = ic_event_json(e2);
	char *hex = ic_hex(packed.data, packed.len);
	sql = strf("SELECT count(*) FROM events WHERE event_id = 'e2' AND "
	           "payload = decode('%s', 'hex')",
	           hex);
	cr_assert_eq(sql_count(&svc, sql), 1, "payload is not the event");
	free(sql);
	free(hex);
	ic_bytes_free(&packed);
	cr_assert_eq(ic_stop(&svc), 0);
}

Test(ingest, nng_batch_gets_one_result_per_event_in_order, .timeout = 60)
{
	results_in_order(VIA_NNG);
}

Test(ingest, http_batch_gets_one_result_per_event_in_order, .timeout = 60)
{
	results_in_order(VIA_HTTP);
}

/* --- 2. every rejection code, and its raw bytes -----------------------------
 */

/* event_without_body packs {event_id, customer_key, occurred_at}. */
static ic_bytes
event_without_body(const char *id, const char *key)
{
	return (ic_event_jsonf("{\"event_id\": \"%s\", \"customer_key\": "
	                       "\"%s\", \"occurred_at\": \"" T "\"}",
	                       id, key));
}

/* interaction packs a valid interaction event. */
static ic_bytes
interaction(const char *id, const char *key)
{
	return (ic_event_jsonf("{\"event_id\": \"%s\", \"customer_key\": "
	                       "\"%s\", \"occurred_at\": \"" T "\", "
	                       "\"interaction\": {\"kind\": \"message\"}}",
	                       id, key));
}

/* rejection_cases lists, for each code of section 6, events that earn it,
 * and beside them the events at the limit that are accepted. */
static void
rejection_cases(ev_cases *cs)
{
	char limit[40], past_limit[40];
	char *s256 = repeat('s', MAX_STRING),
	     *s257 = repeat('s', MAX_STRING + 1);
	char *k256 = repeat('k', MAX_STRING),
	     *k257 = repeat('k', MAX_STRING + 1);
	static const uint8_t member_joined_gold[] = {0x0a, 4,   'g',
	                                             'o',  'l', 'd'};
	static const uint8_t cut_short[] = {0x0a, 5, 'a'};
	static const uint8_t endless[] = {0xff, 0xff, 0xff};
	ic_bytes b;

	/* "More than 1 day in the future" of the service clock. */
	clock_plus(POND_USEC_PER_DAY, limit, sizeof(limit));
	clock_plus(POND_USEC_PER_DAY + POND_USEC_PER_SEC, past_limit,
	           sizeof(past_limit));

	/* At the limits: accepted. */
	case_both(cs, "a-zero", NULL,
	          "{\"event_id\": \"a-zero\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", \"order_paid\": "
	          "{\"order_id\": \"o-zero\", \"amount_fen\": 0}}");
	case_both(cs, "a-max-fen", NULL,
	          "{\"event_id\": \"a-max-fen\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", \"order_paid\": "
	          "{\"order_id\": \"o-max\", \"amount_fen\": %lld}}",
	          (long long)MAX_FEN);
	case_both(cs, "a-spend", NULL,
	          "{\"event_id\": \"a-spend\", \"occurred_at\": \"" T "\", "
	          "\"channel_spend\": {\"channel\": \"poster\", "
	          "\"amount_fen\": 500, \"item\": \"cards\", "
	          "\"quantity\": 10}}");
	case_both(cs, "a-256", NULL,
	          "{\"event_id\": \"a-256\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", \"interaction\": "
	          "{\"kind\": \"%s\"}}",
	          s256);
	case_both(cs, "a-256-map", NULL,
	          "{\"event_id\": \"a-256-map\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", \"profile_updated\": "
	          "{\"attributes\": {\"%s\": \"%s\"}}}",
	          k256, s256);
	case_both(cs, "a-day", NULL,
	          "{\"event_id\": \"a-day\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"%s\", \"interaction\": "
	          "{\"kind\": \"message\"}}",
	          limit);

	/* A field that announces 5 bytes and has 1; a varint that never
	 * ends. */
	case_nng(cs, "", "undecodable", ic_bytes_copy(cut_short, 3));
	case_nng(cs, "", "undecodable", ic_bytes_copy(endless, 3));
	case_both(cs, "", "missing_event_id",
	          "{\"customer_key\": \"c1\", \"occurred_at\": \"" T "\", "
	          "\"interaction\": {\"kind\": \"message\"}}");
	case_both(cs, "", "missing_event_id",
	          "{\"event_id\": \"\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", "
	          "\"interaction\": {\"kind\": \"message\"}}");
	case_both(cs, "r-no-key", "missing_customer",
	          "{\"event_id\": \"r-no-key\", \"occurred_at\": \"" T "\", "
	          "\"interaction\": {\"kind\": \"message\"}}");
	case_both(cs, "r-alias", "unknown_customer",
	          "{\"event_id\": \"r-alias\", \"occurred_at\": \"" T "\", "
	          "\"aliases\": [{\"kind\": \"phone\", \"value\": "
	          "\"+86-000-nobody\"}], "
	          "\"interaction\": {\"kind\": \"message\"}}");
	case_both(cs, "r-no-body", "missing_body",
	          "{\"event_id\": \"r-no-body\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\"}");
	/* A body type this version does not know: an unknown field holding a
	 * message where the body would be. */
	case_http(cs, "r-new-body", "unknown_body",
	          "{\"event_id\": \"r-new-body\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", "
	          "\"loyalty_points\": {\"points\": 5}}");
	b = event_without_body("r-new-body", "c1");
	ic_field_append(&b, 30, "\x08\x05", 2);
	case_nng(cs, "r-new-body", "unknown_body", b);
	case_both(cs, "r-enum-by", "bad_field",
	          "{\"event_id\": \"r-enum-by\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", "
	          "\"contact_removed\": {\"by\": \"robot\"}}");
	case_both(cs, "r-enum-alias", "bad_field",
	          "{\"event_id\": \"r-enum-alias\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", \"aliases\": [{\"kind\": "
	          "\"fax\", \"value\": \"1\"}], "
	          "\"interaction\": {\"kind\": \"message\"}}");
	case_http(cs, "r-unknown-field", "bad_field",
	          "{\"event_id\": \"r-unknown-field\", \"customer_key\": "
	          "\"c1\", \"occurred_at\": \"" T "\", \"colour\": \"red\", "
	          "\"interaction\": {\"kind\": \"message\"}}");
	b = interaction("r-unknown-field", "c1");
	ic_varint_field_append(&b, 5, 1);
	case_nng(cs, "r-unknown-field", "bad_field", b);
	b = interaction("r-unknown-ld", "c1");
	ic_field_append(&b, 30, "\x08\x05", 2);
	case_nng(cs, "r-unknown-ld", "bad_field", b);
	case_http(cs, "r-two-bodies", "bad_field",
	          "{\"event_id\": \"r-two-bodies\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", "
	          "\"interaction\": {\"kind\": \"message\"}, "
	          "\"member_joined\": {\"tier\": \"gold\"}}");
	/* Protobuf keeps the last body only: the second one goes on the
	 * wire by hand. */
	b = interaction("r-two-bodies", "c1");
	ic_field_append(&b, 16, member_joined_gold,
	                sizeof(member_joined_gold));
	case_nng(cs, "r-two-bodies", "bad_field", b);
	case_http(cs, "r-wrong-type", "bad_field",
	          "{\"event_id\": \"r-wrong-type\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", "
	          "\"interaction\": {\"kind\": \"message\", "
	          "\"seconds\": \"soon\"}}");
	case_http(cs, "", "bad_field", "42");
	case_http(cs, "", "bad_field", "\"e-not-an-object\"");
	case_http(cs, "", "bad_field", "[{\"event_id\": \"in-a-list\"}]");
	case_http(cs, "", "bad_field", "null");
	case_both(cs, "r-negative", "bad_amount",
	          "{\"event_id\": \"r-negative\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", \"order_paid\": "
	          "{\"order_id\": \"o-neg\", \"amount_fen\": -1}}");
	case_both(cs, "r-absurd", "bad_amount",
	          "{\"event_id\": \"r-absurd\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", \"order_paid\": "
	          "{\"order_id\": \"o-abs\", \"amount_fen\": %lld}}",
	          (long long)MAX_FEN + 1);
	case_both(cs, "r-spend-absurd", "bad_amount",
	          "{\"event_id\": \"r-spend-absurd\", \"occurred_at\": \"" T
	          "\", \"channel_spend\": {\"channel\": \"poster\", "
	          "\"amount_fen\": %lld, \"item\": \"cards\", "
	          "\"quantity\": 1}}",
	          (long long)MAX_FEN + 1);
	case_both(cs, "r-price", "bad_amount",
	          "{\"event_id\": \"r-price\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", \"order_paid\": "
	          "{\"order_id\": \"o-price\", \"amount_fen\": 100, "
	          "\"items\": [{\"sku\": \"s\", \"category\": \"tea\", "
	          "\"qty\": 1, \"price_fen\": -5}]}}");
	case_both(cs, "r-refund", "bad_amount",
	          "{\"event_id\": \"r-refund\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", \"order_refunded\": "
	          "{\"order_id\": \"o-zero\", \"amount_fen\": -100}}");
	case_both(cs, "r-reward", "bad_amount",
	          "{\"event_id\": \"r-reward\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", \"reward_paid\": "
	          "{\"kind\": \"coupon\", \"amount_fen\": %lld}}",
	          (long long)MAX_FEN + 1);
	case_both(cs, "r-no-time", "missing_time",
	          "{\"event_id\": \"r-no-time\", \"customer_key\": \"c1\", "
	          "\"interaction\": {\"kind\": \"message\"}}");
	case_both(cs, "r-future", "future_time",
	          "{\"event_id\": \"r-future\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"%s\", "
	          "\"interaction\": {\"kind\": \"message\"}}",
	          past_limit);
	case_both(cs, "r-long", "field_too_long",
	          "{\"event_id\": \"r-long\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", \"interaction\": "
	          "{\"kind\": \"%s\"}}",
	          s257);
	case_both(cs, "r-long-key", "field_too_long",
	          "{\"event_id\": \"r-long-key\", \"customer_key\": \"%s\", "
	          "\"occurred_at\": \"" T "\", "
	          "\"interaction\": {\"kind\": \"message\"}}",
	          k257);
	case_both(cs, "r-long-map-key", "field_too_long",
	          "{\"event_id\": \"r-long-map-key\", \"customer_key\": "
	          "\"c1\", \"occurred_at\": \"" T "\", \"profile_updated\": "
	          "{\"attributes\": {\"%s\": \"v\"}}}",
	          k257);
	case_both(cs, "r-long-map-value", "field_too_long",
	          "{\"event_id\": \"r-long-map-value\", \"customer_key\": "
	          "\"c1\", \"occurred_at\": \"" T "\", \"profile_updated\": "
	          "{\"attributes\": {\"k\": \"%s\"}}}",
	          s257);
	free(s256);
	free(s257);
	free(k256);
	free(k257);
}

Test(ingest, nng_rejections_have_their_code_and_keep_the_bytes, .timeout = 60)
{
	ic_service svc;
	ev_cases cs = {0};

	ic_start(&svc, "ingest-reject-nng", NULL);
	rejection_cases(&cs);
	run_cases(&svc, VIA_NNG, &cs);
	cases_free(&cs);
	cr_assert_eq(ic_stop(&svc), 0);
}

Test(ingest, http_rejections_have_their_code_and_keep_the_json, .timeout = 60)
{
	ic_service svc;
	ev_cases cs = {0};

	ic_start(&svc, "ingest-reject-http", NULL);
	rejection_cases(&cs);
	run_cases(&svc, VIA_HTTP, &cs);
	cases_free(&cs);
	cr_assert_eq(ic_stop(&svc), 0);
}

/* precedence_cases lists events with several faults: each gets the code
 * that comes first in the list of section 6. */
static void
precedence_cases(ev_cases *cs)
{
	char past_limit[40];
	char *s257 = repeat('s', MAX_STRING + 1);
	static const uint8_t member_joined_gold[] = {0x0a, 4,   'g',
	                                             'o',  'l', 'd'};
	ic_bytes b;

	clock_plus(POND_USEC_PER_DAY + POND_USEC_PER_SEC, past_limit,
	           sizeof(past_limit));
	case_both(cs, "", "missing_event_id", /* and bad_amount */
	          "{\"customer_key\": \"c1\", \"occurred_at\": \"" T "\", "
	          "\"order_paid\": {\"order_id\": \"o-p1\", "
	          "\"amount_fen\": -1}}");
	case_both(cs, "", "missing_event_id", /* and missing_customer */
	          "{\"occurred_at\": \"" T "\", "
	          "\"interaction\": {\"kind\": \"message\"}}");
	case_both(cs, "p-no-key", "missing_customer", /* and bad_amount */
	          "{\"event_id\": \"p-no-key\", \"occurred_at\": \"" T "\", "
	          "\"order_paid\": {\"order_id\": \"o-p2\", "
	          "\"amount_fen\": -1}}");
	case_both(cs, "p-alias-no-body", "unknown_customer", /* missing_body */
	          "{\"event_id\": \"p-alias-no-body\", \"occurred_at\": \"" T
	          "\", \"aliases\": [{\"kind\": \"openid\", "
	          "\"value\": \"o-nobody\"}]}");
	case_both(cs, "p-alias-amount", "unknown_customer", /* bad_amount */
	          "{\"event_id\": \"p-alias-amount\", \"occurred_at\": \"" T
	          "\", \"aliases\": [{\"kind\": \"phone\", "
	          "\"value\": \"+86-000-nobody\"}], \"order_paid\": "
	          "{\"order_id\": \"o-p3\", \"amount_fen\": -1}}");
	case_both(cs, "p-no-body", "missing_body", /* and missing_time */
	          "{\"event_id\": \"p-no-body\", \"customer_key\": \"c1\"}");
	case_http(cs, "p-new-body", "unknown_body", /* and future_time */
	          "{\"event_id\": \"p-new-body\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"%s\", "
	          "\"loyalty_points\": {\"points\": 5}}",
	          past_limit);
	b = ic_event_jsonf("{\"event_id\": \"p-new-body\", \"customer_key\": "
	                   "\"c1\", \"occurred_at\": \"%s\"}",
	                   past_limit);
	ic_field_append(&b, 30, "\x08\x05", 2);
	case_nng(cs, "p-new-body", "unknown_body", b);
	case_both(
	        cs, "p-enum-amount", "bad_field", /* and bad_amount */
	        "{\"event_id\": \"p-enum-amount\", \"customer_key\": \"c1\", "
	        "\"occurred_at\": \"" T "\", \"reward_paid\": "
	        "{\"kind\": \"cash\", \"amount_fen\": -1}}");
	case_both(cs, "p-enum-long", "bad_field", /* and field_too_long */
	          "{\"event_id\": \"p-enum-long\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", \"aliases\": [{\"kind\": "
	          "\"fax\", \"value\": \"%s\"}], "
	          "\"interaction\": {\"kind\": \"message\"}}",
	          s257);
	case_both(
	        cs, "p-amount-time", "bad_amount", /* and missing_time */
	        "{\"event_id\": \"p-amount-time\", \"customer_key\": \"c1\", "
	        "\"order_paid\": {\"order_id\": \"o-p4\", "
	        "\"amount_fen\": -1}}");
	case_both(cs, "p-time-long", "missing_time", /* and field_too_long */
	          "{\"event_id\": \"p-time-long\", \"customer_key\": \"c1\", "
	          "\"interaction\": {\"kind\": \"%s\"}}",
	          s257);
	case_both(
	        cs, "p-future-long", "future_time", /* field_too_long */
	        "{\"event_id\": \"p-future-long\", \"customer_key\": \"c1\", "
	        "\"occurred_at\": \"%s\", \"interaction\": "
	        "{\"kind\": \"%s\"}}",
	        past_limit, s257);
	/* Faults only protobuf can carry, beside the ones above. */
	b = ic_event_json("{\"customer_key\": \"c1\", \"occurred_at\": \"" T
	                  "\", \"interaction\": {\"kind\": \"message\"}}");
	ic_field_append(&b, 16, member_joined_gold,
	                sizeof(member_joined_gold));
	case_nng(cs, "", "missing_event_id", b); /* and two bodies */
	b = ic_event_json("{\"event_id\": \"p-two-alias\", \"occurred_at\": "
	                  "\"" T "\", \"aliases\": [{\"kind\": \"phone\", "
	                  "\"value\": \"+86-000-nobody\"}], "
	                  "\"interaction\": {\"kind\": \"message\"}}");
	ic_field_append(&b, 16, member_joined_gold,
	                sizeof(member_joined_gold));
	case_nng(cs, "p-two-alias", "unknown_customer", b); /* two bodies */
	b = event_without_body("p-field-no-body", "c1");
	ic_varint_field_append(&b, 5, 1);
	case_nng(cs, "p-field-no-body", "missing_body", b); /* unknown field */
	free(s257);
}

Test(ingest, nng_event_with_several_faults_gets_the_first_code, .timeout = 60)
{
	ic_service svc;
	ev_cases cs = {0};

	ic_start(&svc, "ingest-precedence-nng", NULL);
	precedence_cases(&cs);
	run_cases(&svc, VIA_NNG, &cs);
	cases_free(&cs);
	cr_assert_eq(ic_stop(&svc), 0);
}

Test(ingest, http_event_with_several_faults_gets_the_first_code, .timeout = 60)
{
	ic_service svc;
	ev_cases cs = {0};

	ic_start(&svc, "ingest-precedence-http", NULL);
	precedence_cases(&cs);
	run_cases(&svc, VIA_HTTP, &cs);
	cases_free(&cs);
	cr_assert_eq(ic_stop(&svc), 0);
}

/* The same rule for JSON events the codec itself refuses (two bodies, an
 * unknown field, a wrong type): the code is still the first fault's, the
 * one the same event gets over NNG. */
Test(ingest, http_event_the_codec_refuses_still_gets_the_first_code,
     .timeout = 60)
{
	ic_service svc;
	ev_cases cs = {0};

	ic_start(&svc, "ingest-precedence-codec", NULL);
	case_http(&cs, "", "missing_event_id", /* and two bodies */
	          "{\"customer_key\": \"c1\", \"occurred_at\": \"" T "\", "
	          "\"interaction\": {\"kind\": \"message\"}, "
	          "\"member_joined\": {\"tier\": \"gold\"}}");
	case_http(&cs, "j-wrong-no-key", "missing_customer", /* wrong type */
	          "{\"event_id\": \"j-wrong-no-key\", \"occurred_at\": \"" T
	          "\", \"interaction\": {\"kind\": 7}}");
	case_http(&cs, "j-two-alias", "unknown_customer", /* two bodies */
	          "{\"event_id\": \"j-two-alias\", \"occurred_at\": \"" T
	          "\", \"aliases\": [{\"kind\": \"phone\", "
	          "\"value\": \"+86-000-nobody\"}], "
	          "\"interaction\": {\"kind\": \"message\"}, "
	          "\"member_joined\": {\"tier\": \"gold\"}}");
	case_http(&cs, "j-field-alias", "unknown_customer", /* unknown field */
	          "{\"event_id\": \"j-field-alias\", \"occurred_at\": \"" T
	          "\", \"aliases\": [{\"kind\": \"phone\", "
	          "\"value\": \"+86-000-nobody\"}], \"colour\": \"red\", "
	          "\"interaction\": {\"kind\": \"message\"}}");
	case_http(&cs, "j-field-no-body", "missing_body", /* unknown field */
	          "{\"event_id\": \"j-field-no-body\", \"customer_key\": "
	          "\"c1\", \"occurred_at\": \"" T "\", \"colour\": \"red\"}");
	case_http(&cs, "j-type-no-body", "missing_body", /* wrong type */
	          "{\"event_id\": \"j-type-no-body\", \"customer_key\": "
	          "\"c1\", \"occurred_at\": \"" T "\", \"aliases\": 5}");
	run_cases(&svc, VIA_HTTP, &cs);
	cases_free(&cs);
	cr_assert_eq(ic_stop(&svc), 0);
}

/* future_time is measured against the service clock: moving the clock
 * file forward by the excess makes the same event acceptable. */
Test(ingest, future_time_follows_the_service_clock, .timeout = 60)
{
	ic_service svc;
	char past_limit[40], later[40];
	ic_batch b = {0};
	Pond__IngestAck *ack;
	ic_nng c;

	ic_start(&svc, "ingest-clock", NULL);
	clock_plus(POND_USEC_PER_DAY + POND_USEC_PER_SEC, past_limit,
	           sizeof(past_limit));
	ic_batch_add(&b, ic_event_jsonf("{\"event_id\": \"f1\", "
	                                "\"customer_key\": \"c1\", "
	                                "\"occurred_at\": \"%s\", "
	                                "\"interaction\": {\"kind\": "
	                                "\"message\"}}",
	                                past_limit));
	ic_nng_open(&c, svc.nng_url, IC_TIMEOUT_MS);
	ack = ic_nng_send(&c, &b, svc.token);
	expect_result(ic_ack_result(ack, 0), 0, "f1", "rejected",
	              "future_time");
	ic_ack_free(ack);

	pond_test_clock_write(svc.clock, clock_plus(POND_USEC_PER_SEC, later,
	                                            sizeof(later)));
	ack = ic_nng_send(&c, &b, svc.token);
	expect_result(ic_ack_result(ack, 0), 0, "f1", "accepted", "");
	ic_ack_free(ack);
	ic_nng_close(&c);
	ic_batch_free(&b);
	cr_assert_eq(
	        sql_count(&svc,
	                  "SELECT count(*) FROM events WHERE "
	                  "received_at = (timestamptz '" POND_TEST_CLOCK_START
	                  "' + interval '1 second')"),
	        1);
	cr_assert_eq(ic_stop(&svc), 0);
}

/* --- strings that are not UTF-8, or cut inside a character
 * ---------------------
 */

/* utf8_ok reports whether s is well-formed UTF-8 (RFC 3629): what proto3
 * requires of every string field, and PostgreSQL of every text value. */
static bool
utf8_ok(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	while (*s != '\0') {
		int n = *s < 0x80             ? 0
		        : (*s & 0xe0) == 0xc0 ? 1
		        : (*s & 0xf0) == 0xe0 ? 2
		        : (*s & 0xf8) == 0xf0 ? 3
		                              : -1;
		uint32_t cp = n == 0 ? *s : *s & (0x3f >> n);

		if (n < 0) {
			return (false);
		}
		for (int i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80) {
				return (false);
			}
			cp = cp << 6 | (s[i] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff)) {
			return (false);
		}
		s += n + 1;
	}
	return (true);
}

/* An enumerated value that is not UTF-8 is a bad_field of that event
 * alone (section 6: the rest of the batch is processed), and the ack,
 * a proto3 message, carries only UTF-8 strings. */
Test(ingest, nng_enum_value_not_utf8_is_rejected_alone, .timeout = 60)
{
	/* ContactRemoved {by: "\xff\xfe"} */
	static const uint8_t by_garbled[] = {0x0a, 2, 0xff, 0xfe};
	ic_service svc;
	ic_batch b = {0};
	ic_bytes ev;
	ic_nng c;

	ic_start(&svc, "ingest-utf8-enum", NULL);
	ic_batch_add(&b, interaction("u1", "c1"));
	ev = event_without_body("u2", "c1");
	ic_field_append(&ev, 11, by_garbled, sizeof(by_garbled));
	ic_batch_add(&b, ev);
	ic_batch_add(&b, interaction("u3", "c1"));
	ic_nng_open(&c, svc.nng_url, IC_TIMEOUT_MS);
	reply r = {.how = VIA_NNG, .ack = ic_nng_send(&c, &b, svc.token)};
	if (reply_usable(&r, 3)) {
		expect_result(reply_result(&r, 0), 0, "u1", "accepted", "");
		expect_result(reply_result(&r, 1), 1, "u2", "rejected",
		              "bad_field");
		expect_result(reply_result(&r, 2), 2, "u3", "accepted", "");
		cr_expect(utf8_ok(r.ack->results[1]->reason),
		          "the reason is not UTF-8");
	}
	reply_free(&r);
	ic_nng_close(&c);
	ic_batch_free(&b);
	cr_expect_eq(sql_count(&svc, "SELECT count(*) FROM rejected_events "
	                             "WHERE event_id = 'u2'"),
	             1);
	cr_assert_eq(ic_stop(&svc), 0);
}

/* An event id that is not UTF-8 is a bad_field, and the ack still
 * carries only UTF-8 strings: a proto3 decoder other than protobuf-c
 * refuses the whole ack otherwise. */
Test(ingest, nng_ack_strings_are_utf8_for_a_garbled_event_id, .timeout = 60)
{
	ic_service svc;
	ic_batch b = {0};
	ic_bytes ev = {0};
	ic_nng c;

	ic_start(&svc, "ingest-utf8-id", NULL);
	ic_field_append(&ev, 1, "id-\xc3", 4); /* a character cut short */
	ic_bytes rest = ic_event_json("{\"customer_key\": \"c1\", "
	                              "\"occurred_at\": \"" T "\", "
	                              "\"interaction\": {\"kind\": "
	                              "\"message\"}}");
	ic_bytes_append(&ev, rest.data, rest.len);
	ic_bytes_free(&rest);
	ic_batch_add(&b, ev);
	ic_nng_open(&c, svc.nng_url, IC_TIMEOUT_MS);
	Pond__IngestAck *ack = ic_nng_send(&c, &b, svc.token);
	cr_assert_eq(ack->n_results, 1);
	cr_expect_str_eq(ack->results[0]->status, "rejected");
	cr_expect_str_eq(ack->results[0]->code, "bad_field");
	cr_expect(utf8_ok(ack->results[0]->event_id),
	          "the ack echoes an event_id that is not UTF-8");
	cr_expect(utf8_ok(ack->results[0]->reason), "the reason is not UTF-8");
	ic_ack_free(ack);
	ic_nng_close(&c);
	ic_batch_free(&b);
	cr_assert_eq(ic_stop(&svc), 0);
}

/* A proto3 string may hold U+0000. Two event ids that differ only after
 * one are two events: neither may be stored under a shortened id, nor
 * taken for the other. */
Test(ingest, nng_event_id_with_nul_is_not_cut_short, .timeout = 60)
{
	ic_service svc;
	ic_batch b = {0};
	ic_nng c;

	ic_start(&svc, "ingest-nul-id", NULL);
	for (int i = 0; i < 2; i++) {
		ic_bytes ev = {0};
		char id[] = {'n', 'u', 'l', '\0', (char)('a' + i)};
		ic_field_append(&ev, 1, id, sizeof(id));
		ic_bytes rest = interaction("", "c1");
		ic_bytes_append(&ev, rest.data, rest.len);
		ic_bytes_free(&rest);
		ic_batch_add(&b, ev);
	}
	ic_nng_open(&c, svc.nng_url, IC_TIMEOUT_MS);
	reply r = {.how = VIA_NNG, .ack = ic_nng_send(&c, &b, svc.token)};
	if (reply_usable(&r, 2)) {
		cr_expect_str_neq(reply_result(&r, 1).status, "duplicate",
		                  "two different event ids taken for one");
	}
	reply_free(&r);
	ic_nng_close(&c);
	ic_batch_free(&b);
	cr_expect_eq(sql_count(&svc, "SELECT count(*) FROM events WHERE "
	                             "event_id = 'nul'"),
	             0, "an event stored under an id it was not sent with");
	cr_assert_eq(ic_stop(&svc), 0);
}

/* Reasons quote the offending value or path, shortened: shortening must
 * not cut a character in two, or the reject cannot be stored and the
 * whole batch fails. */
Test(ingest, http_long_multibyte_values_are_rejected_alone, .timeout = 60)
{
	ic_service svc;
	ev_cases cs = {0};
	/* 39 ASCII bytes, then a 2-byte character straddling byte 40,
	 * where a reason shortens the value it quotes. */
	char *by =
	        strf("%s\xc3\xa9", "nobody-knows-this-kind-of-removal-xxxxx");
	char *key = NULL;

	/* 60 two-byte characters: the path to the value runs past the
	 * codec's 128-byte path buffer. */
	for (int i = 0; i < 60; i++) {
		char *k = strf("%s\xc3\xa9", key != NULL ? key : "");
		free(key);
		key = k;
	}
	ic_start(&svc, "ingest-utf8-cut", NULL);
	case_http(&cs, "v1", NULL,
	          "{\"event_id\": \"v1\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", "
	          "\"interaction\": {\"kind\": \"message\"}}");
	case_http(&cs, "v2", "bad_field",
	          "{\"event_id\": \"v2\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", "
	          "\"contact_removed\": {\"by\": \"%s\"}}",
	          by);
	case_http(&cs, "v3", "bad_field",
	          "{\"event_id\": \"v3\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", \"profile_updated\": "
	          "{\"attributes\": {\"%s\": 5}}}",
	          key);
	case_http(&cs, "v4", NULL,
	          "{\"event_id\": \"v4\", \"customer_key\": \"c1\", "
	          "\"occurred_at\": \"" T "\", "
	          "\"interaction\": {\"kind\": \"message\"}}");
	run_cases(&svc, VIA_HTTP, &cs);
	cases_free(&cs);
	free(by);
	free(key);
	cr_assert_eq(ic_stop(&svc), 0);
}

/* --- 3. a rejected event is not remembered
 * -----------------------------------
 */

Test(ingest, rejected_event_resent_fixed_is_accepted, .timeout = 60)
{
	ic_service svc;
	const char *bad = "{\"event_id\": \"n1\", \"customer_key\": \"c1\", "
	                  "\"occurred_at\": \"" T "\", \"order_paid\": "
	                  "{\"order_id\": \"o-n1\", \"amount_fen\": -100}}";
	const char *good = "{\"event_id\": \"n1\", \"customer_key\": \"c1\", "
	                   "\"occurred_at\": \"" T "\", \"order_paid\": "
	                   "{\"order_id\": \"o-n1\", \"amount_fen\": 100}}";
	/* Rejected only by the store (its alias is nobody's yet), after
	 * its id was claimed: the claim must be given back too. */
	const char *stranger = "{\"event_id\": \"n2\", \"occurred_at\": \"" T
	                       "\", \"aliases\": [{\"kind\": \"phone\", "
	                       "\"value\": \"+86-111\"}], "
	                       "\"interaction\": {\"kind\": \"message\"}}";
	const char *link = "{\"event_id\": \"n3\", \"customer_key\": \"c3\", "
	                   "\"occurred_at\": \"" T "\", \"aliases\": "
	                   "[{\"kind\": \"phone\", \"value\": \"+86-111\"}], "
	                   "\"contact_added\": {\"channel\": \"poster\"}}";
	const char *bad_then_good[] = {bad, good};
	reply r;

	ic_start(&svc, "ingest-not-remembered", NULL);
	r = send_json(&svc, VIA_NNG, &bad, 1);
	expect_result(reply_result(&r, 0), 0, "n1", "rejected", "bad_amount");
	reply_free(&r);
	r = send_json(&svc, VIA_NNG, &good, 1);
	expect_result(reply_result(&r, 0), 0, "n1", "accepted", "");
	reply_free(&r);
	r = send_json(&svc, VIA_HTTP, &good, 1);
	expect_result(reply_result(&r, 0), 0, "n1", "duplicate", "");
	reply_free(&r);

	r = send_json(&svc, VIA_HTTP, &stranger, 1);
	expect_result(reply_result(&r, 0), 0, "n2", "rejected",
	              "unknown_customer");
	reply_free(&r);
	r = send_json(&svc, VIA_NNG, &link, 1);
	expect_result(reply_result(&r, 0), 0, "n3", "accepted", "");
	reply_free(&r);
	r = send_json(&svc, VIA_HTTP, &stranger, 1);
	expect_result(reply_result(&r, 0), 0, "n2", "accepted", "");
	reply_free(&r);
	cr_assert_eq(sql_count(&svc,
	                       "SELECT count(*) FROM events WHERE "
	                       "event_id = 'n2' AND customer_key = 'c3'"),
	             1);

	/* Within one batch too: the fixed copy after the broken one. */
	const char *bad4 = "{\"event_id\": \"n4\", \"customer_key\": \"c1\"}";
	const char *good4 = "{\"event_id\": \"n4\", \"customer_key\": \"c1\", "
	                    "\"occurred_at\": \"" T "\", "
	                    "\"interaction\": {\"kind\": \"message\"}}";
	bad_then_good[0] = bad4;
	bad_then_good[1] = good4;
	r = send_json(&svc, VIA_NNG, bad_then_good, 2);
	expect_result(reply_result(&r, 0), 0, "n4", "rejected",
	              "missing_body");
	expect_result(reply_result(&r, 1), 1, "n4", "accepted", "");
	reply_free(&r);

	cr_assert_eq(sql_count(&svc, "SELECT count(*) FROM events"), 4);
	cr_assert_eq(sql_count(&svc, "SELECT count(*) FROM event_ids"), 4);
	cr_assert_eq(sql_count(&svc, "SELECT count(*) FROM rejected_events"),
	             3);
	cr_assert_eq(ic_stop(&svc), 0);
}

/* --- 4. aliases
 * -----------------------------------------------------------------
 */

static char *
customer_of(const ic_service *svc, const char *event_id)
{
	char *sql = strf("SELECT customer_key FROM events WHERE event_id = "
	                 "'%s'",
	                 event_id);
	char *key = pond_test_sql_text(svc->dsn, sql);

	free(sql);
	return (key);
}

static void
expect_customer(const ic_service *svc, const char *event_id, const char *want)
{
	char *key = customer_of(svc, event_id);

	cr_assert_str_eq(key, want, "event %s stored for '%s', expected '%s'",
	                 event_id, key, want);
	free(key);
}

static void
expect_alias(const ic_service *svc, const char *kind, const char *value,
             const char *want)
{
	char hash[POND_PII_HASH_LEN + 1];

	/* Aliases are stored as their keyed hash; these services run with
	 * no POND_PII_KEY, the empty key (docs/security.md). */
	cr_assert_eq(pond_pii_hash("", 0, value, strlen(value), hash), 0);
	char *sql = strf("SELECT customer_key FROM customer_aliases WHERE "
	                 "kind = '%s' AND value = '%s'",
	                 kind, hash);
	char *key = pond_test_sql_text(svc->dsn, sql);

	cr_assert_str_eq(key, want,
	                 "alias %s:%s points at '%s', expected '%s'", kind,
	                 value, key, want);
	free(key);
	free(sql);
}

/* alias_event returns an interaction event with a key ("" for none) and
 * one alias. */
static char *
alias_event(const char *id, const char *key, const char *kind,
            const char *value)
{
	return (strf("{\"event_id\": \"%s\", %s%s%s\"occurred_at\": \"" T
	             "\", \"aliases\": [{\"kind\": \"%s\", \"value\": "
	             "\"%s\"}], \"interaction\": {\"kind\": \"message\"}}",
	             id, *key != '\0' ? "\"customer_key\": \"" : "", key,
	             *key != '\0' ? "\", " : "", kind, value));
}

Test(ingest, aliases_link_resolve_and_the_first_link_wins, .timeout = 60)
{
	ic_service svc;
	char *ev[4];
	reply r;

	ic_start(&svc, "ingest-aliases", NULL);
	/* a1 links phone +86-1 to cust-a; a2, later, has only that phone. */
	ev[0] = alias_event("a1", "cust-a", "phone", "+86-1");
	r = send_json(&svc, VIA_NNG, (const char **)ev, 1);
	expect_result(reply_result(&r, 0), 0, "a1", "accepted", "");
	reply_free(&r);
	ev[1] = alias_event("a2", "", "phone", "+86-1");
	r = send_json(&svc, VIA_HTTP, (const char **)&ev[1], 1);
	expect_result(reply_result(&r, 0), 0, "a2", "accepted", "");
	reply_free(&r);
	expect_customer(&svc, "a2", "cust-a");
	free(ev[0]);
	free(ev[1]);

	/* Linked earlier in the same batch: a4 resolves through a3. */
	ev[0] = alias_event("a3", "cust-c", "openid", "o-c");
	ev[1] = alias_event("a4", "", "openid", "o-c");
	r = send_json(&svc, VIA_NNG, (const char **)ev, 2);
	expect_result(reply_result(&r, 0), 0, "a3", "accepted", "");
	expect_result(reply_result(&r, 1), 1, "a4", "accepted", "");
	reply_free(&r);
	expect_customer(&svc, "a4", "cust-c");
	free(ev[0]);
	free(ev[1]);

	/* The first link wins: a5 is stored for its own key, the phone
	 * still points at cust-a (1 conflict); in one batch, a6 links
	 * member_id m-1 first and a7's claim on it is a conflict too. */
	ev[0] = alias_event("a5", "cust-z", "phone", "+86-1");
	ev[1] = alias_event("a6", "cust-m", "member_id", "m-1");
	ev[2] = alias_event("a7", "cust-n", "member_id", "m-1");
	ev[3] = alias_event("a8", "", "phone", "+86-1");
	r = send_json(&svc, VIA_NNG, (const char **)ev, 4);
	for (size_t i = 0; i < 4; i++) {
		char id[8];
		snprintf(id, sizeof(id), "a%zu", 5 + i);
		expect_result(reply_result(&r, i), i, id, "accepted", "");
	}
	reply_free(&r);
	for (size_t i = 0; i < 4; i++) {
		free(ev[i]);
	}
	expect_customer(&svc, "a5", "cust-z");
	expect_customer(&svc, "a7", "cust-n");
	expect_customer(&svc, "a8", "cust-a");
	expect_alias(&svc, "phone", "+86-1", "cust-a");
	expect_alias(&svc, "member_id", "m-1", "cust-m");
	cr_assert_eq(ic_metric(&svc, "pond_ingest_alias_conflicts_total"), 2);

	/* A keyless event resolved through one alias links its other, new
	 * aliases to the same customer. */
	const char *both = "{\"event_id\": \"a9\", \"occurred_at\": \"" T
	                   "\", \"aliases\": [{\"kind\": \"wecom_external_"
	                   "userid\", \"value\": \"wx-9\"}, {\"kind\": "
	                   "\"phone\", \"value\": \"+86-1\"}], "
	                   "\"interaction\": {\"kind\": \"message\"}}";
	r = send_json(&svc, VIA_HTTP, &both, 1);
	expect_result(reply_result(&r, 0), 0, "a9", "accepted", "");
	reply_free(&r);
	expect_customer(&svc, "a9", "cust-a");
	expect_alias(&svc, "wecom_external_userid", "wx-9", "cust-a");
	cr_assert_eq(sql_count(&svc, "SELECT count(*) FROM customer_aliases"),
	             4);
	cr_assert_eq(ic_stop(&svc), 0);
}

/* --- 5. duplicate_order
 * ------------------------------------------------------------
 */

static char *
order_event(const char *id, const char *order, long long fen)
{
	return (strf("{\"event_id\": \"%s\", \"customer_key\": \"c1\", "
	             "\"occurred_at\": \"" T "\", \"order_paid\": "
	             "{\"order_id\": \"%s\", \"amount_fen\": %lld}}",
	             id, order, fen));
}

Test(ingest, second_order_paid_with_an_order_id_is_duplicate_order,
     .timeout = 60)
{
	ic_service svc;
	const char *other_token = "pub_other_publisher_token";
	char *ev[3];
	reply r;

	ic_start(&svc, "ingest-orders", NULL);
	ev[0] = order_event("d1", "ord-1", 1000);
	r = send_json(&svc, VIA_NNG, (const char **)ev, 1);
	expect_result(reply_result(&r, 0), 0, "d1", "accepted", "");
	reply_free(&r);
	free(ev[0]);

	/* A new event id with an order already paid, in a later batch and
	 * twice within one batch. */
	ev[0] = order_event("d2", "ord-1", 1000);
	ev[1] = order_event("d3", "ord-2", 500);
	ev[2] = order_event("d4", "ord-2", 500);
	r = send_json(&svc, VIA_HTTP, (const char **)ev, 3);
	expect_result(reply_result(&r, 0), 0, "d2", "duplicate",
	              "duplicate_order");
	expect_result(reply_result(&r, 1), 1, "d3", "accepted", "");
	expect_result(reply_result(&r, 2), 2, "d4", "duplicate",
	              "duplicate_order");
	reply_free(&r);
	r = send_json(&svc, VIA_NNG, (const char **)ev, 3);
	expect_result(reply_result(&r, 0), 0, "d2", "duplicate",
	              "duplicate_order");
	expect_result(reply_result(&r, 1), 1, "d3", "duplicate", "");
	expect_result(reply_result(&r, 2), 2, "d4", "duplicate",
	              "duplicate_order");
	reply_free(&r);
	for (int i = 0; i < 3; i++) {
		free(ev[i]);
	}

	/* Validation first: a broken second order is rejected for what is
	 * wrong with it. */
	ev[0] = order_event("d5", "ord-1", -1);
	ev[1] = strf("{\"event_id\": \"d6\", \"customer_key\": \"c1\", "
	             "\"order_paid\": {\"order_id\": \"ord-1\", "
	             "\"amount_fen\": 1000}}");
	r = send_json(&svc, VIA_NNG, (const char **)ev, 2);
	expect_result(reply_result(&r, 0), 0, "d5", "rejected", "bad_amount");
	expect_result(reply_result(&r, 1), 1, "d6", "rejected",
	              "missing_time");
	reply_free(&r);
	free(ev[0]);
	free(ev[1]);

	/* Order ids are per publisher. */
	ic_add_publisher(svc.dsn, "other", other_token);
	ic_service other = svc;
	snprintf(other.token, sizeof(other.token), "%s", other_token);
	ev[0] = order_event("d1", "ord-1", 1000);
	r = send_json(&other, VIA_NNG, (const char **)ev, 1);
	expect_result(reply_result(&r, 0), 0, "d1", "accepted", "");
	reply_free(&r);
	free(ev[0]);

	/* d1 and d3 for acme, d1 for the other publisher. */
	cr_assert_eq(sql_count(&svc, "SELECT count(*) FROM events"), 3);
	cr_assert_eq(sql_count(&svc, "SELECT count(*) FROM order_ids"), 3);
	cr_assert_eq(ic_stop(&svc), 0);
}

/* --- 6. a re-sent batch stores nothing twice
 * -------------------------------------
 */

Test(ingest, resent_batch_stores_nothing_twice, .timeout = 120)
{
	enum { EVENTS = 500, SENDS = 3 };
	ic_service svc;
	ic_batch b = {0};
	ic_nng c;

	ic_start(&svc, "ingest-resend", NULL);
	for (int i = 0; i < EVENTS; i++) {
		ic_batch_add(&b, ic_event_jsonf("{\"event_id\": \"r-%03d\", "
		                                "\"customer_key\": \"k-%d\", "
		                                "\"occurred_at\": \"" T "\", "
		                                "\"interaction\": {\"kind\": "
		                                "\"message\"}}",
		                                i, i % 61));
	}
	ic_nng_open(&c, svc.nng_url, IC_TIMEOUT_MS);
	for (int send = 0; send < SENDS; send++) {
		Pond__IngestAck *ack = ic_nng_send(&c, &b, svc.token);
		const char *want = send == 0 ? "accepted" : "duplicate";

		cr_assert_eq(ack->n_results, EVENTS);
		for (size_t i = 0; i < EVENTS; i++) {
			char id[16];
			snprintf(id, sizeof(id), "r-%03zu", i);
			expect_result(ic_ack_result(ack, i), i, id, want, "");
		}
		ic_ack_free(ack);
	}
	ic_nng_close(&c);
	ic_batch_free(&b);
	cr_assert_eq(sql_count(&svc, "SELECT count(*) FROM events"), EVENTS);
	cr_assert_eq(sql_count(&svc, "SELECT count(DISTINCT event_id) FROM "
	                             "events"),
	             EVENTS);
	cr_assert_eq(sql_count(&svc, "SELECT sum(head) FROM stream_heads "
	                             "WHERE stream = 'events'"),
	             EVENTS);
	cr_assert_eq(ic_stop(&svc), 0);
}

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
	        .events = sql_count(svc, "SELECT count(*) FROM events"),
	        .event_ids = sql_count(svc, "SELECT count(*) FROM event_ids"),
	        .order_ids = sql_count(svc, "SELECT count(*) FROM order_ids"),
	        .rejected = sql_count(svc, "SELECT count(*) FROM "
	                                   "rejected_events"),
	        .aliases = sql_count(svc, "SELECT count(*) FROM "
	                                  "customer_aliases"),
	        .heads = sql_count(svc, "SELECT coalesce(sum(head), 0) FROM "
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
	r = send_json(&svc, VIA_NNG, &before_trigger, 1);
	expect_result(reply_result(&r, 0), 0, "pre", "accepted", "");
	reply_free(&r);
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

	char *body = events_body(batch, 4);
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
	r = send_json(&svc, VIA_HTTP, batch, 4);
	expect_result(reply_result(&r, 0), 0, "ok1", "accepted", "");
	expect_result(reply_result(&r, 1), 1, "boom", "accepted", "");
	expect_result(reply_result(&r, 2), 2, "bad", "rejected", "bad_amount");
	expect_result(reply_result(&r, 3), 3, "ok2", "accepted", "");
	reply_free(&r);
	now = count_store(&svc);
	cr_assert_eq(now.events, before.events + 3);
	cr_assert_eq(now.heads, before.heads + 3);
	cr_assert_eq(now.rejected, before.rejected + 1);
	cr_assert_eq(now.aliases, before.aliases + 1);
	cr_assert_eq(now.order_ids, before.order_ids + 1);
	ack = ic_nng_send(&c, &b, svc.token);
	expect_result(ic_ack_result(ack, 0), 0, "ok1", "duplicate", "");
	expect_result(ic_ack_result(ack, 1), 1, "boom", "duplicate", "");
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
		char *fill = repeat('x', 1u << 20);
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

	cr_assert_eq(sql_count(&svc, "SELECT count(*) FROM events"), 0);
	cr_assert_eq(sql_count(&svc, "SELECT count(*) FROM event_ids"), 0);
	cr_assert_eq(sql_count(&svc, "SELECT count(*) FROM rejected_events"),
	             0);
	cr_assert_eq(ic_metric(&svc, "pond_ingest_unauthorized_total"), 3);
	cr_assert_eq(ic_metric(&svc, "pond_ingest_batch_errors_total"),
	             batch_errors);

	/* At the limits: 1,000 events just under 4 MiB are all taken. Each
	 * event carries 15 attributes of 256 bytes to come close. */
	char *value = repeat('v', MAX_STRING);
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
	cr_assert_eq(sql_count(&svc, "SELECT count(*) FROM events"),
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
		texts[i] = strf("{\"event_id\": \"%s-%d\", \"customer_key\": "
		                "\"k\", \"occurred_at\": \"" T "\", "
		                "\"interaction\": {\"kind\": \"message\"}}",
		                prefix, i);
	}
	body = events_body((const char *const *)texts, (size_t)n);
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
	char *fill = repeat('x', 5u << 20);
	body = strf("{\"events\": [{\"event_id\": \"%s\"}]}", fill);
	free(fill);
	expect_http_error(&svc, svc.token, body, 0, 413, "too_large");
	free(body);

	cr_assert_eq(sql_count(&svc, "SELECT count(*) FROM events"), 0);
	cr_assert_eq(sql_count(&svc, "SELECT count(*) FROM rejected_events"),
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
	cr_assert_eq(sql_count(&svc, "SELECT count(*) FROM events"),
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
	cr_assert_eq(sql_count(&svc, "SELECT count(*) FROM events"), CC_IDS);
	cr_assert_eq(sql_count(&svc, "SELECT count(DISTINCT event_id) FROM "
	                             "events"),
	             CC_IDS);
	/* Seqs are 1..n in every partition, and the heads stand at n. */
	cr_assert_eq(sql_count(&svc, "SELECT count(*) FROM (SELECT partition, "
	                             "count(*) c, min(seq) lo, max(seq) hi "
	                             "FROM events GROUP BY partition) x "
	                             "WHERE lo <> 1 OR hi <> c"),
	             0);
	cr_assert_eq(sql_count(&svc,
	                       "SELECT count(*) FROM stream_heads h "
	                       "LEFT JOIN (SELECT partition, count(*) c "
	                       "FROM events GROUP BY partition) e "
	                       "USING (partition) WHERE h.stream = "
	                       "'events' AND h.head <> coalesce(e.c, 0)"),
	             0);
	cr_log_info("concurrent: %d ids over %d partitions, %d batches",
	            CC_IDS,
	            (int)sql_count(&svc, "SELECT count(DISTINCT partition) "
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
	r = send_json(&svc, VIA_NNG, nng_batch, 6);
	reply_free(&r);
	r = send_json(&svc, VIA_HTTP, http_batch, 2);
	reply_free(&r);

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
	char *cmd = strf("/usr/bin/promtool check metrics < '%s'", path);
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
	cr_assert_eq(sql_count(&svc, "SELECT count(*) FROM (SELECT partition, "
	                             "count(*) c, max(seq) hi FROM events "
	                             "GROUP BY partition) x WHERE hi <> c"),
	             0);
}
