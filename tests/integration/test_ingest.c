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
 *
 * test_ingest_batches.c has what happens to whole batches: failed
 * COMMITs, batch errors, concurrency, SIGTERM.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_ingest.h"
#include "token.h"

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
	long long events_before = iw_count(svc, "SELECT count(*) FROM events");
	long long last_reject = iw_count(
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
		iw_reply_free(&r);
		r = iw_send_json(svc, VIA_HTTP, texts, n);
	}

	if (!iw_reply_usable(&r, n)) {
		iw_reply_free(&r);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const ev_case *c = sent[i];
		iw_expect_result(iw_reply_result(&r, i), i, c->id,
		                 c->code != NULL ? "rejected" : "accepted",
		                 c->code != NULL ? c->code : "");
		naccepted += c->code == NULL;
	}

	char *sql = iw_strf("SELECT code, format, coalesce(event_id, ''), "
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

	cr_assert_eq(iw_count(svc, "SELECT count(*) FROM events"),
	             events_before + (long long)naccepted);
	for (size_t i = 0; i < n; i++) {
		if (sent[i]->code == NULL) {
			char *q = iw_strf("SELECT count(*) FROM events WHERE "
			                  "event_id = '%s'",
			                  sent[i]->id);
			cr_assert_eq(iw_count(svc, q), 1,
			             "accepted '%s' is not stored once",
			             sent[i]->id);
			free(q);
		}
	}
	iw_reply_free(&r);
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
	r = iw_send_json(&svc, how, first, 5);
	cr_assert_eq(iw_reply_count(&r), 5);
	iw_expect_result(iw_reply_result(&r, 0), 0, "e1", "accepted", "");
	iw_expect_result(iw_reply_result(&r, 1), 1, "e2", "accepted", "");
	iw_expect_result(iw_reply_result(&r, 2), 2, "e1", "duplicate", "");
	iw_expect_result(iw_reply_result(&r, 3), 3, "e3", "rejected",
	                 "missing_body");
	iw_expect_result(iw_reply_result(&r, 4), 4, "e4", "accepted", "");
	iw_reply_free(&r);

	r = iw_send_json(&svc, how, second, 4);
	cr_assert_eq(iw_reply_count(&r), 4);
	iw_expect_result(iw_reply_result(&r, 0), 0, "e2", "duplicate", "");
	iw_expect_result(iw_reply_result(&r, 1), 1, "e5", "accepted", "");
	iw_expect_result(iw_reply_result(&r, 2), 2, "e1", "duplicate", "");
	iw_expect_result(iw_reply_result(&r, 3), 3, "e3", "rejected",
	                 "missing_body");
	iw_reply_free(&r);

	/* e1, e2, e4, e5 once each; e3 twice in rejected_events. */
	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM events"), 4);
	cr_assert_eq(iw_count(&svc, "SELECT count(DISTINCT event_id) FROM "
	                            "events WHERE event_id IN "
	                            "('e1', 'e2', 'e4', 'e5')"),
	             4);
	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM event_ids"), 4);
	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM rejected_events "
	                            "WHERE event_id = 'e3' AND "
	                            "code = 'missing_body'"),
	             2);
	/* The row copies what was sent, with the service clock as the
	 * arrival time, and the payload is the event as sent (its key was
	 * given, so resolving it changes nothing). */
	char *sql =
	        iw_strf("SELECT count(*) FROM events WHERE event_id = 'e2' "
	                "AND customer_key = 'c2' AND type = 'order_paid' "
	                "AND publisher_id = %lld AND occurred_at = '" T "' "
	                "AND received_at = '" POND_TEST_CLOCK_START "'",
	                svc.publisher_id);
	cr_assert_eq(iw_count(&svc, sql), 1);
	free(sql);
	ic_bytes packed = ic_event_json(e2);
	char *hex = ic_hex(packed.data, packed.len);
	sql = iw_strf("SELECT count(*) FROM events WHERE event_id = 'e2' AND "
	              "payload = decode('%s', 'hex')",
	              hex);
	cr_assert_eq(iw_count(&svc, sql), 1, "payload is not the event");
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
	char *s256 = iw_repeat('s', MAX_STRING),
	     *s257 = iw_repeat('s', MAX_STRING + 1);
	char *k256 = iw_repeat('k', MAX_STRING),
	     *k257 = iw_repeat('k', MAX_STRING + 1);
	static const uint8_t member_joined_gold[] = {0x0a, 4,   'g',
	                                             'o',  'l', 'd'};
	static const uint8_t cut_short[] = {0x0a, 5, 'a'};
	static const uint8_t endless[] = {0xff, 0xff, 0xff};
	ic_bytes b;

	/* "More than 1 day in the future" of the service clock. */
	iw_clock_plus(POND_USEC_PER_DAY, limit, sizeof(limit));
	iw_clock_plus(POND_USEC_PER_DAY + POND_USEC_PER_SEC, past_limit,
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
	char *s257 = iw_repeat('s', MAX_STRING + 1);
	static const uint8_t member_joined_gold[] = {0x0a, 4,   'g',
	                                             'o',  'l', 'd'};
	ic_bytes b;

	iw_clock_plus(POND_USEC_PER_DAY + POND_USEC_PER_SEC, past_limit,
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
	iw_clock_plus(POND_USEC_PER_DAY + POND_USEC_PER_SEC, past_limit,
	              sizeof(past_limit));
	ic_batch_add(&b, ic_event_jsonf("{\"event_id\": \"f1\", "
	                                "\"customer_key\": \"c1\", "
	                                "\"occurred_at\": \"%s\", "
	                                "\"interaction\": {\"kind\": "
	                                "\"message\"}}",
	                                past_limit));
	ic_nng_open(&c, svc.nng_url, IC_TIMEOUT_MS);
	ack = ic_nng_send(&c, &b, svc.token);
	iw_expect_result(ic_ack_result(ack, 0), 0, "f1", "rejected",
	                 "future_time");
	ic_ack_free(ack);

	pond_test_clock_write(svc.clock, iw_clock_plus(POND_USEC_PER_SEC,
	                                               later, sizeof(later)));
	ack = ic_nng_send(&c, &b, svc.token);
	iw_expect_result(ic_ack_result(ack, 0), 0, "f1", "accepted", "");
	ic_ack_free(ack);
	ic_nng_close(&c);
	ic_batch_free(&b);
	cr_assert_eq(
	        iw_count(&svc,
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
	if (iw_reply_usable(&r, 3)) {
		iw_expect_result(iw_reply_result(&r, 0), 0, "u1", "accepted",
		                 "");
		iw_expect_result(iw_reply_result(&r, 1), 1, "u2", "rejected",
		                 "bad_field");
		iw_expect_result(iw_reply_result(&r, 2), 2, "u3", "accepted",
		                 "");
		cr_expect(utf8_ok(r.ack->results[1]->reason),
		          "the reason is not UTF-8");
	}
	iw_reply_free(&r);
	ic_nng_close(&c);
	ic_batch_free(&b);
	cr_expect_eq(iw_count(&svc, "SELECT count(*) FROM rejected_events "
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
	if (iw_reply_usable(&r, 2)) {
		cr_expect_str_neq(iw_reply_result(&r, 1).status, "duplicate",
		                  "two different event ids taken for one");
	}
	iw_reply_free(&r);
	ic_nng_close(&c);
	ic_batch_free(&b);
	cr_expect_eq(iw_count(&svc, "SELECT count(*) FROM events WHERE "
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
	char *by = iw_strf("%s\xc3\xa9",
	                   "nobody-knows-this-kind-of-removal-xxxxx");
	char *key = NULL;

	/* 60 two-byte characters: the path to the value runs past the
	 * codec's 128-byte path buffer. */
	for (int i = 0; i < 60; i++) {
		char *k = iw_strf("%s\xc3\xa9", key != NULL ? key : "");
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
	r = iw_send_json(&svc, VIA_NNG, &bad, 1);
	iw_expect_result(iw_reply_result(&r, 0), 0, "n1", "rejected",
	                 "bad_amount");
	iw_reply_free(&r);
	r = iw_send_json(&svc, VIA_NNG, &good, 1);
	iw_expect_result(iw_reply_result(&r, 0), 0, "n1", "accepted", "");
	iw_reply_free(&r);
	r = iw_send_json(&svc, VIA_HTTP, &good, 1);
	iw_expect_result(iw_reply_result(&r, 0), 0, "n1", "duplicate", "");
	iw_reply_free(&r);

	r = iw_send_json(&svc, VIA_HTTP, &stranger, 1);
	iw_expect_result(iw_reply_result(&r, 0), 0, "n2", "rejected",
	                 "unknown_customer");
	iw_reply_free(&r);
	r = iw_send_json(&svc, VIA_NNG, &link, 1);
	iw_expect_result(iw_reply_result(&r, 0), 0, "n3", "accepted", "");
	iw_reply_free(&r);
	r = iw_send_json(&svc, VIA_HTTP, &stranger, 1);
	iw_expect_result(iw_reply_result(&r, 0), 0, "n2", "accepted", "");
	iw_reply_free(&r);
	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM events WHERE "
	                            "event_id = 'n2' AND customer_key = 'c3'"),
	             1);

	/* Within one batch too: the fixed copy after the broken one. */
	const char *bad4 = "{\"event_id\": \"n4\", \"customer_key\": \"c1\"}";
	const char *good4 = "{\"event_id\": \"n4\", \"customer_key\": \"c1\", "
	                    "\"occurred_at\": \"" T "\", "
	                    "\"interaction\": {\"kind\": \"message\"}}";
	bad_then_good[0] = bad4;
	bad_then_good[1] = good4;
	r = iw_send_json(&svc, VIA_NNG, bad_then_good, 2);
	iw_expect_result(iw_reply_result(&r, 0), 0, "n4", "rejected",
	                 "missing_body");
	iw_expect_result(iw_reply_result(&r, 1), 1, "n4", "accepted", "");
	iw_reply_free(&r);

	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM events"), 4);
	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM event_ids"), 4);
	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM rejected_events"),
	             3);
	cr_assert_eq(ic_stop(&svc), 0);
}

/* --- 4. aliases
 * -----------------------------------------------------------------
 */

static char *
customer_of(const ic_service *svc, const char *event_id)
{
	char *sql = iw_strf("SELECT customer_key FROM events WHERE event_id = "
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
	char *sql = iw_strf("SELECT customer_key FROM customer_aliases WHERE "
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
	return (iw_strf("{\"event_id\": \"%s\", %s%s%s\"occurred_at\": \"" T
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
	r = iw_send_json(&svc, VIA_NNG, (const char **)ev, 1);
	iw_expect_result(iw_reply_result(&r, 0), 0, "a1", "accepted", "");
	iw_reply_free(&r);
	ev[1] = alias_event("a2", "", "phone", "+86-1");
	r = iw_send_json(&svc, VIA_HTTP, (const char **)&ev[1], 1);
	iw_expect_result(iw_reply_result(&r, 0), 0, "a2", "accepted", "");
	iw_reply_free(&r);
	expect_customer(&svc, "a2", "cust-a");
	free(ev[0]);
	free(ev[1]);

	/* Linked earlier in the same batch: a4 resolves through a3. */
	ev[0] = alias_event("a3", "cust-c", "openid", "o-c");
	ev[1] = alias_event("a4", "", "openid", "o-c");
	r = iw_send_json(&svc, VIA_NNG, (const char **)ev, 2);
	iw_expect_result(iw_reply_result(&r, 0), 0, "a3", "accepted", "");
	iw_expect_result(iw_reply_result(&r, 1), 1, "a4", "accepted", "");
	iw_reply_free(&r);
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
	r = iw_send_json(&svc, VIA_NNG, (const char **)ev, 4);
	for (size_t i = 0; i < 4; i++) {
		char id[8];
		snprintf(id, sizeof(id), "a%zu", 5 + i);
		iw_expect_result(iw_reply_result(&r, i), i, id, "accepted",
		                 "");
	}
	iw_reply_free(&r);
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
	r = iw_send_json(&svc, VIA_HTTP, &both, 1);
	iw_expect_result(iw_reply_result(&r, 0), 0, "a9", "accepted", "");
	iw_reply_free(&r);
	expect_customer(&svc, "a9", "cust-a");
	expect_alias(&svc, "wecom_external_userid", "wx-9", "cust-a");
	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM customer_aliases"),
	             4);
	cr_assert_eq(ic_stop(&svc), 0);
}

/* --- 5. duplicate_order
 * ------------------------------------------------------------
 */

static char *
order_event(const char *id, const char *order, long long fen)
{
	return (iw_strf("{\"event_id\": \"%s\", \"customer_key\": \"c1\", "
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
	r = iw_send_json(&svc, VIA_NNG, (const char **)ev, 1);
	iw_expect_result(iw_reply_result(&r, 0), 0, "d1", "accepted", "");
	iw_reply_free(&r);
	free(ev[0]);

	/* A new event id with an order already paid, in a later batch and
	 * twice within one batch. */
	ev[0] = order_event("d2", "ord-1", 1000);
	ev[1] = order_event("d3", "ord-2", 500);
	ev[2] = order_event("d4", "ord-2", 500);
	r = iw_send_json(&svc, VIA_HTTP, (const char **)ev, 3);
	iw_expect_result(iw_reply_result(&r, 0), 0, "d2", "duplicate",
	                 "duplicate_order");
	iw_expect_result(iw_reply_result(&r, 1), 1, "d3", "accepted", "");
	iw_expect_result(iw_reply_result(&r, 2), 2, "d4", "duplicate",
	                 "duplicate_order");
	iw_reply_free(&r);
	r = iw_send_json(&svc, VIA_NNG, (const char **)ev, 3);
	iw_expect_result(iw_reply_result(&r, 0), 0, "d2", "duplicate",
	                 "duplicate_order");
	iw_expect_result(iw_reply_result(&r, 1), 1, "d3", "duplicate", "");
	iw_expect_result(iw_reply_result(&r, 2), 2, "d4", "duplicate",
	                 "duplicate_order");
	iw_reply_free(&r);
	for (int i = 0; i < 3; i++) {
		free(ev[i]);
	}

	/* Validation first: a broken second order is rejected for what is
	 * wrong with it. */
	ev[0] = order_event("d5", "ord-1", -1);
	ev[1] = iw_strf("{\"event_id\": \"d6\", \"customer_key\": \"c1\", "
	                "\"order_paid\": {\"order_id\": \"ord-1\", "
	                "\"amount_fen\": 1000}}");
	r = iw_send_json(&svc, VIA_NNG, (const char **)ev, 2);
	iw_expect_result(iw_reply_result(&r, 0), 0, "d5", "rejected",
	                 "bad_amount");
	iw_expect_result(iw_reply_result(&r, 1), 1, "d6", "rejected",
	                 "missing_time");
	iw_reply_free(&r);
	free(ev[0]);
	free(ev[1]);

	/* Order ids are per publisher. */
	ic_add_publisher(svc.dsn, "other", other_token);
	ic_service other = svc;
	snprintf(other.token, sizeof(other.token), "%s", other_token);
	ev[0] = order_event("d1", "ord-1", 1000);
	r = iw_send_json(&other, VIA_NNG, (const char **)ev, 1);
	iw_expect_result(iw_reply_result(&r, 0), 0, "d1", "accepted", "");
	iw_reply_free(&r);
	free(ev[0]);

	/* d1 and d3 for acme, d1 for the other publisher. */
	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM events"), 3);
	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM order_ids"), 3);
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
			iw_expect_result(ic_ack_result(ack, i), i, id, want,
			                 "");
		}
		ic_ack_free(ack);
	}
	ic_nng_close(&c);
	ic_batch_free(&b);
	cr_assert_eq(iw_count(&svc, "SELECT count(*) FROM events"), EVENTS);
	cr_assert_eq(iw_count(&svc, "SELECT count(DISTINCT event_id) FROM "
	                            "events"),
	             EVENTS);
	cr_assert_eq(iw_count(&svc, "SELECT sum(head) FROM stream_heads "
	                            "WHERE stream = 'events'"),
	             EVENTS);
	cr_assert_eq(ic_stop(&svc), 0);
}
