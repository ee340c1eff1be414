/*
 * test_tagging.c - pond-tagging end to end: events go into a real
 * pond-ingest over HTTP, through the events stream, into a real
 * pond-tagging, and the test reads profiles, tags and tag_changes from the
 * store.
 *
 * - every event type of API.md section 1 lands in the profile; lifecycle
 *   by paid orders, member_joined winning; partial refunds change revenue
 *   only; a late contact_added with an earlier time takes the
 *   acquisition over; a re-add after contact_removed;
 * - rules: PUT / GET / DELETE with tokens, a malformed condition's 400, a
 *   new rule reaching existing customers, removal taking the tag off;
 * - time: with the test clock moved (no sleeping), days_since rules and
 *   repurchase_due flip on the right POND_TZ day and go off with an order;
 * - tag_changes carry every change once, nothing when nothing changed.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>

#include "harness.h"
#include "ingest_client.h"
#include "pond/stream.pb-c.h"
#include "pond/tagging.pb-c.h"

#define ADMIN_TOKEN "api_admintoken"
#define READ_TOKEN  "api_readtoken"

typedef struct tg_world {
	ic_service ingest;
	uint16_t http_port;
	char pub_url[64];
	pond_test_proc *proc;
} tg_world;

/* tg_spawn starts one pond-tagging for w's store, logging to log. */
static pond_test_proc *
tg_spawn(tg_world *w, const char *log, const char *batch)
{
	char e_dsn[600], e_port[32], e_sub[96], e_pub[96], e_clock[4200];
	char e_batch[48];
	uint16_t port = pond_test_free_port();

	if (w->http_port == 0) {
		w->http_port = port;
	}
	snprintf(e_dsn, sizeof(e_dsn), "POND_DSN=%s", w->ingest.dsn);
	snprintf(e_port, sizeof(e_port), "POND_HTTP_PORT=%u", port);
	snprintf(e_sub, sizeof(e_sub), "POND_EVENTS_SUB_URLS=%s",
	         w->ingest.pub_url);
	snprintf(w->pub_url, sizeof(w->pub_url), "tcp://127.0.0.1:%u",
	         pond_test_free_port());
	snprintf(e_pub, sizeof(e_pub), "POND_TAG_CHANGES_PUB_URL=%s",
	         w->pub_url);
	snprintf(e_clock, sizeof(e_clock), "POND_TEST_CLOCK=%s",
	         w->ingest.clock);
	snprintf(e_batch, sizeof(e_batch), "POND_TAGGING_BATCH=%s", batch);
	const char *env[] = {e_dsn,
	                     e_port,
	                     e_sub,
	                     e_pub,
	                     e_clock,
	                     e_batch,
	                     "POND_HTTP_ADDR=127.0.0.1",
	                     "POND_TAGGING_SWEEP_MS=50",
	                     "POND_REPURCHASE_CYCLES=default:30,coffee:14",
	                     "POND_TZ=Asia/Shanghai",
	                     NULL};
	pond_test_proc *proc = pond_test_spawn("pond-tagging", env, log);
	pond_test_wait_ready(proc, port, "/healthz", 30000);
	return (proc);
}

/* tg_start_ingest starts w's pond-ingest and adds the API tokens. */
static void
tg_start_ingest(tg_world *w, const char *name)
{
	char log[64];

	memset(w, 0, sizeof(*w));
	snprintf(log, sizeof(log), "%s-ingest", name);
	ic_start(&w->ingest, log, NULL);
	ic_add_api_tokens(w->ingest.dsn, ADMIN_TOKEN, READ_TOKEN);
}

static void
tg_start(tg_world *w, const char *name)
{
	char log[64];

	tg_start_ingest(w, name);
	snprintf(log, sizeof(log), "%s-tagging", name);
	w->proc = tg_spawn(w, log, "500");
}

static void
tg_stop(tg_world *w)
{
	cr_assert_eq(pond_test_stop(w->proc), 0, "pond-tagging exit status");
	cr_assert_eq(ic_stop(&w->ingest), 0);
}

/* tg_send posts events (a JSON array body's elements) and asserts every
 * one was accepted. */
static void __attribute__((format(printf, 2, 3)))
tg_send(tg_world *w, const char *fmt, ...)
{
	char *events, *body;
	va_list ap;
	int status;

	va_start(ap, fmt);
	cr_assert(vasprintf(&events, fmt, ap) >= 0);
	va_end(ap);
	cr_assert(asprintf(&body, "{\"events\": [%s]}", events) >= 0);
	json_t *answer = ic_http_events(&w->ingest, body, &status);
	cr_assert_eq(status, 200, "%s", body);
	json_t *results = json_object_get(answer, "results");
	for (size_t i = 0; i < json_array_size(results); i++) {
		ic_result r = ic_json_result(answer, i);
		cr_assert_str_eq(r.status, "accepted", "%s: %s %s", r.event_id,
		                 r.status, r.code);
	}
	json_decref(answer);
	free(events);
	free(body);
}

/* tg_clock_now writes the test clock's time as RFC 3339. */
static const char *
tg_clock_now(const tg_world *w, char *buf, size_t len)
{
	char text[64] = "";
	FILE *f = fopen(w->ingest.clock, "r");
	pond_time t;

	cr_assert_not_null(f);
	cr_assert_not_null(fgets(text, sizeof(text), f));
	fclose(f);
	text[strcspn(text, "\n")] = '\0';
	if (pond_time_parse_rfc3339(text, &t) != 0) {
		t = strtoll(text, NULL, 10);
	}
	return (pond_time_format_rfc3339(t, buf, len));
}

/* tg_settle waits until tagging has applied every event and the sweeper
 * has nothing due at the clock's time. */
static void
tg_settle(tg_world *w)
{
	for (int i = 0; i < 600; i++) {
		long long lag = pond_test_sql_int(
		        w->ingest.dsn, "SELECT (SELECT coalesce(sum(head), 0) "
		                       "FROM stream_heads "
		                       "WHERE stream = 'events') - (SELECT "
		                       "coalesce(sum(seq), "
		                       "0) FROM consumer_cursors WHERE "
		                       "consumer = 'tagging')");
		if (lag == 0) {
			/* Settled when no profile lags the rules or is due
			 * at the test clock's time. */
			char sql[400], now[40];
			usleep(100000);
			snprintf(
			        sql, sizeof(sql),
			        "SELECT count(*) FROM customer_profiles WHERE "
			        "rules_version < (SELECT value::bigint FROM "
			        "pond_settings WHERE key = "
			        "'tag_rules_version') "
			        "OR due_at <= '%s'",
			        tg_clock_now(w, now, sizeof(now)));
			if (pond_test_sql_int(w->ingest.dsn, sql) == 0) {
				return;
			}
		}
		usleep(50000);
	}
	cr_assert_fail("tagging did not catch up");
}

static char *__attribute__((format(printf, 2, 3)))
tg_text(tg_world *w, const char *fmt, ...)
{
	char *sql, *v;
	va_list ap;

	va_start(ap, fmt);
	cr_assert(vasprintf(&sql, fmt, ap) >= 0);
	va_end(ap);
	v = pond_test_sql_text(w->ingest.dsn, sql);
	free(sql);
	return (v);
}

#define ASSERT_TEXT(w, expect, ...)                                           \
	do {                                                                  \
		char *v_ = tg_text((w), __VA_ARGS__);                         \
		cr_assert_str_eq(v_ != NULL ? v_ : "(null)", (expect), "%s",  \
		                 #__VA_ARGS__);                               \
		free(v_);                                                     \
	} while (0)

/* tags_of returns the customer's tags, comma-separated, sorted. */
#define TAGS_SQL                                                              \
	"SELECT coalesce(string_agg(tag, ',' ORDER BY tag), '') FROM "        \
	"customer_tags WHERE customer_key = '%s'"

#define EV(id, key, at, body)                                                 \
	"{\"event_id\": \"" id "\", \"customer_key\": \"" key                 \
	"\", \"occurred_at\": \"" at "\", " body "}"

Test(tagging, every_event_type_lands_in_the_profile, .timeout = 120)
{
	tg_world w;

	tg_start(&w, "tagging-events");
	tg_send(&w, EV(
	                    "e1", "c1", "2026-01-01T02:00:00Z",
	                    "\"contact_added\": {\"channel\": \"cards\", "
	                    "\"guide_id\": "
	                    "\"g1\", \"store_id\": \"s1\", \"campaign_id\": "
	                    "\"k1\"}") "," EV("e2", "c1",
	                                      "2026-01-01T03:00:00Z",
	                                      "\"order_paid\": {\"order_id\": "
	                                      "\"o1\", \"amount_fen\": "
	                                      "10000, \"items\": [{\"sku\": "
	                                      "\"a\", \"category\": "
	                                      "\"coffee\", \"qty\": 1, "
	                                      "\"price_fen\": 10000}]}") "," EV("e3",
	                                                                        "c1",
	                                                                        "2026-01-01T04:00:00Z",
	                                                                        "\"order_refunded\": {\"order_id\": \"o1\", \"amount_fen\": "
	                                                                        "2500}") "," EV("e4",
	                                                                                        "c1",
	                                                                                        "2026-01-01T05:00:00Z",
	                                                                                        "\"reward_paid\": {\"kind\": \"red_packet\", "
	                                                                                        "\"amount_fen\": 500}") "," EV("e5", "c1", "2026-01-01T06:00:00Z", "\"interaction\": {\"kind\": \"message\", \"seconds\": 5}") "," EV("e6",
	                                                                                                                                                                                                                              "c1",
	                                                                                                                                                                                                                              "2026-01-01T07:00:00Z",
	                                                                                                                                                                                                                              "\"profile_updated\": {\"region\": \"Shanghai\", "
	                                                                                                                                                                                                                              "\"attributes\": {\"pet\": \"cat\"}}") "," EV("e7", "c1", "2026-01-01T08:00:00Z", "\"opt_out\": {\"channel\": \"sms\"}") "," EV("e8", "c1", "2026-01-01T09:00:00Z", "\"invite_shared\": {\"campaign_id\": \"k1\"}") "," EV("e9", "c1", "2026-01-01T10:00:00Z",
	                                                                                                                                                                                                                                                                                                                                                                                                                                                         "\"touch_receipt\": {\"touch_id\": \"t1\", \"status\": "
	                                                                                                                                                                                                                                                                                                                                                                                                                                                         "\"delivered\"}") "," EV("e10",
	                                                                                                                                                                                                                                                                                                                                                                                                                                                                                  "c1",
	                                                                                                                                                                                                                                                                                                                                                                                                                                                                                  "2026-01-01T11:00:00Z",
	                                                                                                                                                                                                                                                                                                                                                                                                                                                                                  "\"profile_updated\": {\"industry\": \"retail\"}"));
	tg_settle(&w);
	ASSERT_TEXT(
	        &w,
	        "cards|g1|s1|k1|Shanghai|retail|{\"pet\": \"cat\"}|1|7500|"
	        "500|first_purchase|{sms}|14",
	        "SELECT concat_ws('|', channel, guide_id, store_id, "
	        "campaign_id, region, industry, attributes::text, orders, "
	        "net_revenue_fen, rewards_fen, lifecycle, opted_out::text, "
	        "last_order_cycle_days) FROM customer_profiles WHERE "
	        "customer_key = 'c1'");
	ASSERT_TEXT(&w, "2026-01-01 02:00:00+00|2026-01-01 06:00:00+00",
	            "SET TIME ZONE 'UTC'; SELECT concat_ws('|', acquired_at, "
	            "last_interaction_at) FROM customer_profiles WHERE "
	            "customer_key = 'c1'");
	ASSERT_TEXT(&w, "lifecycle:first_purchase", TAGS_SQL, "c1");
	/* opt_in later wins; an older opt_out arriving late does not. */
	tg_send(&w,
	        EV("e11", "c1", "2026-01-02T00:00:00Z", "\"opt_in\": {\"channel\": \"sms\"}") "," EV(
	                "e12", "c1", "2026-01-01T12:00:00Z",
	                "\"opt_out\": {\"channel\": \"sms\"}") "," EV("e13",
	                                                              "c1",
	                                                              "2026-"
	                                                              "01-"
	                                                              "01T12:"
	                                                              "00:00Z",
	                                                              "\"opt_"
	                                                              "out\": "
	                                                              "{\"chan"
	                                                              "nel\": "
	                                                              "\"all\""
	                                                              "}"));
	tg_settle(&w);
	ASSERT_TEXT(&w, "{all}",
	            "SELECT opted_out::text FROM customer_profiles WHERE "
	            "customer_key = 'c1'");
	tg_stop(&w);
}

Test(tagging, lifecycle_by_orders_member_wins_refunds_change_revenue_only,
     .timeout = 120)
{
	tg_world w;

	tg_start(&w, "tagging-lifecycle");
	tg_send(&w, EV("a1", "c2", "2026-01-01T00:00:00Z",
	               "\"contact_added\": {\"channel\": \"sms\"}"));
	tg_settle(&w);
	ASSERT_TEXT(&w, "potential",
	            "SELECT lifecycle FROM customer_profiles WHERE "
	            "customer_key = 'c2'");
	const char *stages[] = {"first_purchase", "repurchase", "loyal",
	                        "loyal"};
	for (int i = 0; i < 4; i++) {
		tg_send(&w,
		        "{\"event_id\": \"o%d\", \"customer_key\": \"c2\", "
		        "\"occurred_at\": \"2026-01-02T0%d:00:00Z\", "
		        "\"order_paid\": {\"order_id\": \"o%d\", "
		        "\"amount_fen\": 1000}}",
		        i, i, i);
		tg_settle(&w);
		ASSERT_TEXT(&w, stages[i],
		            "SELECT lifecycle FROM customer_profiles WHERE "
		            "customer_key = 'c2'");
	}
	/* A full and a partial refund: revenue 4000 - 1000 - 300, still
	 * four paid orders, still loyal. */
	tg_send(&w, EV("r1", "c2", "2026-01-03T00:00:00Z",
	               "\"order_refunded\": {\"order_id\": \"o0\", "
	               "\"amount_fen\": "
	               "1000}") "," EV("r2", "c2", "2026-01-03T00:00:01Z",
	                               "\"order_refunded\": {\"order_id\": "
	                               "\"o1\", \"amount_fen\": "
	                               "300}"));
	tg_settle(&w);
	ASSERT_TEXT(
	        &w, "4|2700|loyal",
	        "SELECT concat_ws('|', orders, net_revenue_fen, lifecycle) "
	        "FROM customer_profiles WHERE customer_key = 'c2'");
	tg_send(&w, EV("m1", "c2", "2026-01-03T01:00:00Z",
	               "\"member_joined\": {\"tier\": \"gold\"}"));
	tg_settle(&w);
	ASSERT_TEXT(&w, "member|lifecycle:member",
	            "SELECT lifecycle || '|' || (SELECT string_agg(tag, ',') "
	            "FROM customer_tags WHERE customer_key = 'c2') FROM "
	            "customer_profiles WHERE customer_key = 'c2'");
	/* The stream: potential on, then each stage off and the next on,
	 * in order; nothing for the refunds (no tag changed). */
	ASSERT_TEXT(&w,
	            "+lifecycle:potential,-lifecycle:potential,"
	            "+lifecycle:first_purchase,-lifecycle:first_purchase,"
	            "+lifecycle:repurchase,-lifecycle:repurchase,"
	            "+lifecycle:loyal,-lifecycle:loyal,+lifecycle:member",
	            "SELECT string_agg(CASE WHEN added THEN '+' ELSE '-' END "
	            "|| tag, ',' ORDER BY seq) FROM tag_changes WHERE "
	            "customer_key = 'c2'");
	ASSERT_TEXT(&w, "9|9",
	            "SELECT count(*) || '|' || count(*) FILTER (WHERE cause = "
	            "'event' AND cause_seq IS NOT NULL) FROM tag_changes");
	tg_stop(&w);
}

Test(tagging, late_earlier_contact_added_takes_over_and_readd_after_removal,
     .timeout = 120)
{
	tg_world w;

	tg_start(&w, "tagging-acquisition");
	tg_send(&w, EV("b", "c3", "2026-01-02T00:00:00Z",
	               "\"contact_added\": {\"channel\": \"sms\", "
	               "\"inviter_key\": \"inv\"}"));
	tg_settle(&w);
	ASSERT_TEXT(&w, "sms|inv|1",
	            "SELECT concat_ws('|', p.channel, p.inviter_key, "
	            "(SELECT invitees FROM customer_profiles WHERE "
	            "customer_key = 'inv')) FROM customer_profiles p WHERE "
	            "customer_key = 'c3'");
	/* Earlier in time, later in arrival: it is the acquisition. Same
	 * time with a smaller event_id wins the tie, a larger one does not. */
	tg_send(&w,
	        EV("z", "c3", "2026-01-01T00:00:00Z", "\"contact_added\": {\"channel\": \"cards\"}") "," EV(
	                "y", "c3",
	                "2026"
	                "-01-"
	                "01T0"
	                "0:"
	                "00:"
	                "00Z",
	                "\"co"
	                "ntac"
	                "t_"
	                "adde"
	                "d\":"
	                " {"
	                "\"ch"
	                "anne"
	                "l\":"
	                " \"p"
	                "oste"
	                "r\""
	                "}") "," EV("zz", "c3", "2026-01-01T00:00:00Z",
	                            "\"contact_added\": {\"channel\": "
	                            "\"call\"}"));
	tg_settle(&w);
	ASSERT_TEXT(&w, "poster|y|2026-01-01 00:00:00+00|0",
	            "SET TIME ZONE 'UTC'; SELECT concat_ws('|', p.channel, "
	            "p.acq_event_id, p.acquired_at, coalesce(p.inviter_key, "
	            "(SELECT invitees FROM customer_profiles WHERE "
	            "customer_key = 'inv')::text)) FROM customer_profiles p "
	            "WHERE customer_key = 'c3'");
	/* Removed, then added again: back, acquisition unchanged. */
	tg_send(&w, EV("rm", "c3", "2026-01-03T00:00:00Z",
	               "\"contact_removed\": {\"by\": \"customer\"}"));
	tg_settle(&w);
	ASSERT_TEXT(&w, "true",
	            "SELECT contact_removed::text FROM customer_profiles "
	            "WHERE customer_key = 'c3'");
	tg_send(&w, EV("re", "c3", "2026-01-04T00:00:00Z",
	               "\"contact_added\": {\"channel\": \"sms\"}"));
	tg_settle(&w);
	ASSERT_TEXT(&w, "false|poster",
	            "SELECT contact_removed::text || '|' || channel FROM "
	            "customer_profiles WHERE customer_key = 'c3'");
	/* A removal older than the re-add, arriving late, changes nothing. */
	tg_send(&w, EV("rm-old", "c3", "2026-01-03T12:00:00Z",
	               "\"contact_removed\": {\"by\": \"staff\"}"));
	tg_settle(&w);
	ASSERT_TEXT(&w, "false",
	            "SELECT contact_removed::text FROM customer_profiles "
	            "WHERE customer_key = 'c3'");
	tg_stop(&w);
}

/* rules_call sends one rule API request and returns its status; *body
 * (may be NULL) gets the parsed answer. */
static int
rules_call(tg_world *w, const char *method, const char *path,
           const char *token, const char *body, json_t **answer)
{
	char auth[128];
	const char *headers[] = {auth, NULL};
	pond_test_http_resp resp;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	cr_assert_eq(pond_test_http(method, w->http_port, path,
	                            token != NULL ? headers : NULL, body, 0,
	                            &resp),
	             0);
	int status = resp.status;
	if (answer != NULL) {
		*answer = pond_test_json(resp.body);
	}
	pond_test_http_resp_free(&resp);
	return (status);
}

Test(tagging, rule_api_and_rules_reach_existing_customers, .timeout = 120)
{
	tg_world w;
	json_t *a;

	tg_start(&w, "tagging-rules");
	tg_send(&w,
	        EV("s1", "sh", "2026-01-01T00:00:00Z", "\"profile_updated\": {\"region\": \"Shanghai\"}") "," EV(
	                "s2", "sh", "2026-01-01T00:00:01Z",
	                "\"order_paid\": {\"order_id\": \"x1\", "
	                "\"amount_fen\": "
	                "200000}") "," EV("s3", "bj", "2026-01-01T00:00:00Z",
	                                  "\"profile_updated\": {\"region\": "
	                                  "\"Beijing\"}") "," EV("s4", "bj",
	                                                         "2026-01-"
	                                                         "01T00:00:"
	                                                         "01Z",
	                                                         "\"order_"
	                                                         "paid\": "
	                                                         "{\"order_"
	                                                         "id\": "
	                                                         "\"x2\", "
	                                                         "\"amount_"
	                                                         "fen\": "
	                                                         "300000}"));
	tg_settle(&w);
	const char *rule = "{\"condition\": {\"all\": [{\"field\": "
	                   "\"region\", \"op\": \"=\", \"value\": "
	                   "\"Shanghai\"}, {\"field\": \"net_revenue_fen\", "
	                   "\"op\": \">=\", \"value\": 100000}]}}";
	cr_assert_eq(rules_call(&w, "PUT", "/v1/tag-rules/high_value_sh", NULL,
	                        rule, NULL),
	             401);
	cr_assert_eq(rules_call(&w, "PUT", "/v1/tag-rules/high_value_sh",
	                        "api_wrong", rule, NULL),
	             401);
	cr_assert_eq(rules_call(&w, "PUT", "/v1/tag-rules/high_value_sh",
	                        READ_TOKEN, rule, NULL),
	             403);
	cr_assert_eq(rules_call(&w, "PUT", "/v1/tag-rules/high_value_sh",
	                        ADMIN_TOKEN,
	                        "{\"condition\": {\"all\": [{\"field\": "
	                        "\"region\", \"op\": \"<\", \"value\": 1}]}}",
	                        &a),
	             400);
	const char *msg = json_string_value(
	        json_object_get(json_object_get(a, "error"), "message"));
	cr_assert(msg != NULL && strstr(msg, "$.all[0].op") != NULL &&
	                  strstr(msg, "numeric field") != NULL,
	          "%s", msg);
	json_decref(a);
	cr_assert_eq(rules_call(&w, "PUT", "/v1/tag-rules/x", ADMIN_TOKEN,
	                        "{\"condition\": {\"all\": [}", &a),
	             400);
	msg = json_string_value(
	        json_object_get(json_object_get(a, "error"), "message"));
	cr_assert(msg != NULL && strstr(msg, "line 1, column") != NULL, "%s",
	          msg);
	json_decref(a);
	cr_assert_eq(rules_call(&w, "PUT", "/v1/tag-rules/lifecycle:x",
	                        ADMIN_TOKEN, rule, NULL),
	             400);
	cr_assert_eq(rules_call(&w, "PUT", "/v1/tag-rules/high_value_sh",
	                        ADMIN_TOKEN, rule, NULL),
	             200);
	tg_settle(&w);
	ASSERT_TEXT(&w, "high_value_sh,lifecycle:first_purchase", TAGS_SQL,
	            "sh");
	ASSERT_TEXT(&w, "lifecycle:first_purchase", TAGS_SQL, "bj");
	ASSERT_TEXT(&w, "rule",
	            "SELECT cause FROM tag_changes WHERE tag = "
	            "'high_value_sh' AND added");
	/* Tags may be Chinese: the path is percent-decoded. */
	cr_assert_eq(rules_call(&w, "PUT",
	                        "/v1/tag-rules/%E9%AB%98%E4%BB%B7%E5%80%BC",
	                        ADMIN_TOKEN,
	                        "{\"condition\": {\"field\": \"orders\", "
	                        "\"op\": \">\", \"value\": 100}}",
	                        NULL),
	             200);
	cr_assert_eq(pond_test_sql_int(w.ingest.dsn,
	                               "SELECT count(*) FROM tag_rules WHERE "
	                               "tag = '高价值'"),
	             1);
	cr_assert_eq(rules_call(&w, "DELETE",
	                        "/v1/tag-rules/%E9%AB%98%E4%BB%B7%E5%80%BC",
	                        ADMIN_TOKEN, NULL, NULL),
	             200);
	cr_assert_eq(
	        rules_call(&w, "GET", "/v1/tag-rules", READ_TOKEN, NULL, &a),
	        200);
	cr_assert_eq(json_array_size(json_object_get(a, "rules")), 1);
	json_decref(a);
	/* An event now keeps the rule in force for new facts. */
	tg_send(&w, EV("s5", "bj", "2026-01-02T00:00:00Z",
	               "\"profile_updated\": {\"region\": \"Shanghai\"}"));
	tg_settle(&w);
	ASSERT_TEXT(&w, "high_value_sh,lifecycle:first_purchase", TAGS_SQL,
	            "bj");
	/* Removing the rule takes the tag off everyone. */
	cr_assert_eq(rules_call(&w, "DELETE", "/v1/tag-rules/high_value_sh",
	                        ADMIN_TOKEN, NULL, NULL),
	             200);
	cr_assert_eq(rules_call(&w, "DELETE", "/v1/tag-rules/high_value_sh",
	                        ADMIN_TOKEN, NULL, NULL),
	             404);
	tg_settle(&w);
	ASSERT_TEXT(&w, "lifecycle:first_purchase", TAGS_SQL, "sh");
	ASSERT_TEXT(&w, "2|2",
	            "SELECT count(*) FILTER (WHERE NOT added) || '|' || "
	            "count(*) FILTER (WHERE added) FROM tag_changes WHERE tag "
	            "= 'high_value_sh'");
	tg_stop(&w);
}

Test(tagging, days_since_and_repurchase_due_flip_with_the_clock,
     .timeout = 120)
{
	tg_world w;
	pond_time t;

	tg_start(&w, "tagging-time");
	/* Clock: 2026-01-05T00:00Z = 08:00 Jan 5 in Shanghai. A coffee
	 * order (cycle 14) on Jan 4 10:00 Shanghai. */
	tg_send(&w,
	        EV("t1", "c4", "2026-01-04T02:00:00Z",
	           "\"order_paid\": {\"order_id\": \"q1\", \"amount_fen\": "
	           "100, \"items\": [{\"sku\": \"b\", \"category\": "
	           "\"coffee\", \"qty\": 1, \"price_fen\": 100}]}"));
	cr_assert_eq(rules_call(&w, "PUT", "/v1/tag-rules/dormant_3",
	                        ADMIN_TOKEN,
	                        "{\"condition\": {\"field\": "
	                        "\"days_since_last_order\", \"op\": \">=\", "
	                        "\"value\": 3}}",
	                        NULL),
	             200);
	tg_settle(&w);
	ASSERT_TEXT(&w, "lifecycle:first_purchase", TAGS_SQL, "c4");
	/* Jan 6 23:59:59 Shanghai: 2 days. Jan 7 00:00 Shanghai: 3. */
	cr_assert_eq(pond_time_parse_rfc3339("2026-01-06T15:59:59Z", &t), 0);
	pond_test_clock_set(w.ingest.clock, t);
	tg_settle(&w);
	ASSERT_TEXT(&w, "lifecycle:first_purchase", TAGS_SQL, "c4");
	pond_test_clock_set(w.ingest.clock, t + POND_USEC_PER_SEC);
	tg_settle(&w);
	ASSERT_TEXT(&w, "dormant_3,lifecycle:first_purchase", TAGS_SQL, "c4");
	ASSERT_TEXT(&w, "time",
	            "SELECT cause FROM tag_changes WHERE tag = 'dormant_3'");
	/* Day 14 after Jan 4 is Jan 18 (Shanghai): repurchase_due then. */
	cr_assert_eq(pond_time_parse_rfc3339("2026-01-17T15:59:59Z", &t), 0);
	pond_test_clock_set(w.ingest.clock, t);
	tg_settle(&w);
	ASSERT_TEXT(&w, "dormant_3,lifecycle:first_purchase", TAGS_SQL, "c4");
	pond_test_clock_set(w.ingest.clock, t + POND_USEC_PER_SEC);
	tg_settle(&w);
	ASSERT_TEXT(&w, "dormant_3,lifecycle:first_purchase,repurchase_due",
	            TAGS_SQL, "c4");
	/* An order takes both off (and moves the stage on). */
	tg_send(&w,
	        EV("t2", "c4", "2026-01-17T16:00:00Z",
	           "\"order_paid\": {\"order_id\": \"q2\", \"amount_fen\": "
	           "100}"));
	tg_settle(&w);
	ASSERT_TEXT(&w, "lifecycle:repurchase", TAGS_SQL, "c4");
	ASSERT_TEXT(&w,
	            "+lifecycle:first_purchase,+dormant_3,+repurchase_due,"
	            "-dormant_3,-lifecycle:first_purchase,-repurchase_due,"
	            "+lifecycle:repurchase",
	            "SELECT string_agg(CASE WHEN added THEN '+' ELSE '-' END "
	            "|| tag, ',' ORDER BY seq) FROM tag_changes WHERE "
	            "customer_key = 'c4'");
	tg_stop(&w);
}

Test(tagging, metrics_show_lag_and_rule_evaluations, .timeout = 60)
{
	tg_world w;
	pond_test_http_resp resp;

	tg_start(&w, "tagging-metrics");
	cr_assert_eq(rules_call(&w, "PUT", "/v1/tag-rules/any_order",
	                        ADMIN_TOKEN,
	                        "{\"condition\": {\"field\": \"orders\", "
	                        "\"op\": \">\", \"value\": 0}}",
	                        NULL),
	             200);
	tg_send(&w, EV("m1", "c5", "2026-01-01T00:00:00Z",
	               "\"order_paid\": {\"order_id\": \"m\", \"amount_fen\": "
	               "1}"));
	tg_settle(&w);
	cr_assert_eq(pond_test_http("GET", w.http_port, "/metrics", NULL, NULL,
	                            0, &resp),
	             0);
	cr_assert(strstr(resp.body, "pond_consumer_lag{") != NULL, "%s",
	          resp.body);
	cr_assert(strstr(resp.body, "pond_tagging_rule_evaluations_total ") !=
	                  NULL,
	          "%s", resp.body);
	cr_assert(strstr(resp.body, "pond_tagging_rule_evaluations_total 0") ==
	          NULL);
	pond_test_http_resp_free(&resp);
	tg_stop(&w);
}

Test(tagging, cli_rules_list_put_rm, .timeout = 60)
{
	char dsn[POND_TEST_DSN_LEN], e_dsn[POND_TEST_DSN_LEN + 16];
	char *out = NULL;

	pond_test_db_create_migrated(dsn, sizeof(dsn), 4);
	snprintf(e_dsn, sizeof(e_dsn), "POND_DSN=%s", dsn);
	const char *env[] = {e_dsn, NULL};
	const char *bad[] = {"pond",
	                     "rules",
	                     "put",
	                     "hunter",
	                     "{\"field\": \"orders\", \"op\": \"contains\", "
	                     "\"value\": \"1\"}",
	                     NULL};
	cr_assert_eq(pond_test_run(bad, env, "tagging-cli", NULL), 1);
	const char *builtin[] = {"pond",
	                         "rules",
	                         "put",
	                         "repurchase_due",
	                         "{\"field\": \"orders\", \"op\": \"=\", "
	                         "\"value\": 0}",
	                         NULL};
	cr_assert_eq(pond_test_run(builtin, env, "tagging-cli", NULL), 2);
	const char *put[] = {"pond",
	                     "rules",
	                     "put",
	                     "hunter",
	                     "{\"all\": [{\"field\": \"rewards_fen\", \"op\": "
	                     "\">\", \"value\": 0}, {\"field\": \"orders\", "
	                     "\"op\": \"=\", \"value\": 0}]}",
	                     NULL};
	cr_assert_eq(pond_test_run(put, env, "tagging-cli", NULL), 0);
	cr_assert_eq(pond_test_sql_int(dsn, "SELECT value::int FROM "
	                                    "pond_settings WHERE key = "
	                                    "'tag_rules_version'"),
	             1);
	const char *list[] = {"pond", "rules", "list", NULL};
	cr_assert_eq(pond_test_run(list, env, "tagging-cli", &out), 0);
	cr_assert(strstr(out, "hunter") != NULL && strstr(out, "rewards_fen"),
	          "%s", out);
	free(out);
	const char *rm[] = {"pond", "rules", "rm", "hunter", NULL};
	cr_assert_eq(pond_test_run(rm, env, "tagging-cli", NULL), 0);
	cr_assert_eq(pond_test_run(rm, env, "tagging-cli", NULL), 1);
	cr_assert_eq(pond_test_sql_int(dsn, "SELECT count(*) FROM tag_rules"),
	             0);
	cr_assert_eq(pond_test_sql_int(dsn, "SELECT value::int FROM "
	                                    "pond_settings WHERE key = "
	                                    "'tag_rules_version'"),
	             2);
}

Test(tagging, invitees_count_for_the_inviter_and_flip_its_rules, .timeout = 90)
{
	tg_world w;

	tg_start(&w, "tagging-invitees");
	cr_assert_eq(rules_call(&w, "PUT", "/v1/tag-rules/fission_star",
	                        ADMIN_TOKEN,
	                        "{\"condition\": {\"field\": \"invitees\", "
	                        "\"op\": \">=\", \"value\": 2}}",
	                        NULL),
	             200);
	tg_send(&w,
	        EV("i0", "boss", "2026-01-01T00:00:00Z",
	           "\"contact_added\": {\"channel\": \"sms\"}") "," EV("i1",
	                                                               "friend"
	                                                               "1",
	                                                               "2026-"
	                                                               "01-"
	                                                               "02T00:"
	                                                               "00:"
	                                                               "00Z",
	                                                               "\"cont"
	                                                               "act_"
	                                                               "added"
	                                                               "\": "
	                                                               "{\"cha"
	                                                               "nnel\""
	                                                               ": "
	                                                               "\"sms"
	                                                               "\", "
	                                                               "\"invi"
	                                                               "ter_"
	                                                               "key\":"
	                                                               " "
	                                                               "\"boss"
	                                                               "\"}"));
	tg_settle(&w);
	ASSERT_TEXT(&w, "lifecycle:potential", TAGS_SQL, "boss");
	/* The second invitee lives in another partition (or the same): the
	 * inviter is re-evaluated by the sweeper either way. */
	tg_send(&w, EV("i2", "friend2", "2026-01-02T00:00:00Z",
	               "\"contact_added\": {\"channel\": \"sms\", "
	               "\"inviter_key\": \"boss\"}"));
	tg_settle(&w);
	ASSERT_TEXT(&w, "2",
	            "SELECT invitees::text FROM customer_profiles "
	            "WHERE customer_key = 'boss'");
	ASSERT_TEXT(&w, "fission_star,lifecycle:potential", TAGS_SQL, "boss");
	ASSERT_TEXT(&w, "time",
	            "SELECT cause FROM tag_changes WHERE tag = "
	            "'fission_star'");
	/* friend2 was in fact acquired earlier, without an inviter: boss
	 * loses the invitee and the tag. */
	tg_send(&w, EV("i3", "friend2", "2026-01-01T00:00:00Z",
	               "\"contact_added\": {\"channel\": \"cards\"}"));
	tg_settle(&w);
	ASSERT_TEXT(&w, "1",
	            "SELECT invitees::text FROM customer_profiles "
	            "WHERE customer_key = 'boss'");
	ASSERT_TEXT(&w, "lifecycle:potential", TAGS_SQL, "boss");
	tg_stop(&w);
}

Test(tagging, changes_are_announced_on_pub_after_commit, .timeout = 60)
{
	nng_socket sub;
	nng_msg *msg;
	tg_world w;

	tg_start(&w, "tagging-pub");
	cr_assert_eq(nng_sub0_open(&sub), 0);
	cr_assert_eq(
	        nng_socket_set(sub, NNG_OPT_SUB_SUBSCRIBE, "tag_changes/", 12),
	        0);
	cr_assert_eq(nng_socket_set_ms(sub, NNG_OPT_RECVTIMEO, 20000), 0);
	cr_assert_eq(nng_dial(sub, w.pub_url, NULL, 0), 0);
	usleep(300000); /* let the subscription reach the publisher */
	tg_send(&w, EV("p1", "c6", "2026-01-01T00:00:00Z",
	               "\"contact_added\": {\"channel\": \"sms\"}"));
	cr_assert_eq(nng_recvmsg(sub, &msg, 0), 0, "no announcement");
	const uint8_t *body = nng_msg_body(msg);
	size_t len = nng_msg_len(msg);
	const uint8_t *nl = memchr(body, '\n', len);
	cr_assert_not_null(nl);
	Pond__StreamRecord *rec = pond__stream_record__unpack(
	        NULL, len - (size_t)(nl + 1 - body), nl + 1);
	cr_assert_not_null(rec);
	cr_assert_str_eq(rec->stream, "tag_changes");
	Pond__TagChange *tc = pond__tag_change__unpack(NULL, rec->payload.len,
	                                               rec->payload.data);
	cr_assert_not_null(tc);
	cr_assert_str_eq(tc->customer_key, "c6");
	cr_assert_str_eq(tc->tag, "lifecycle:potential");
	cr_assert(tc->added);
	cr_assert_str_eq(tc->cause, "event");
	cr_assert_str_eq(tc->event_id, "p1");
	/* What was announced is what the table holds. */
	char sql[200];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM tag_changes WHERE partition = %u AND "
	         "seq = %llu AND customer_key = 'c6'",
	         rec->partition, (unsigned long long)rec->seq);
	cr_assert_eq(pond_test_sql_int(w.ingest.dsn, sql), 1);
	pond__tag_change__free_unpacked(tc, NULL);
	pond__stream_record__free_unpacked(rec, NULL);
	nng_msg_free(msg);
	nng_close(sub);
	tg_stop(&w);
}

/* --- crashes and replicas
 * ------------------------------------------------------------ */

#define CRASH_BATCHES   30
#define CRASH_PER_BATCH 100
#define CRASH_KEYS      80

/* crash_events returns CRASH_BATCHES request bodies of a deterministic
 * mix of every customer event type, some arriving out of time order (no
 * inviters: an inviter is re-evaluated by the sweeper, whose timing is
 * not part of the stream's order). */
static char **
crash_events(void)
{
	static const char *channels[] = {"cards", "sms", "poster", "call"};
	static const char *regions[] = {"Shanghai", "Beijing", "Hangzhou"};
	static const char *cats[] = {"coffee", "tea", "cups"};
	char **bodies = calloc(CRASH_BATCHES, sizeof(char *));
	unsigned seed = 20261123;

	cr_assert_not_null(bodies);
	for (int b = 0; b < CRASH_BATCHES; b++) {
		size_t cap = 64 * 1024, o = 0;
		char *body = malloc(cap);
		cr_assert_not_null(body);
		o += (size_t)snprintf(body + o, cap - o, "{\"events\": [");
		for (int i = 0; i < CRASH_PER_BATCH; i++) {
			int n = b * CRASH_PER_BATCH + i;
			int key = rand_r(&seed) % CRASH_KEYS;
			int kind = rand_r(&seed) % 10;
			/* Event time mostly rises; one in eight is a day
			 * early (late arrival). */
			long secs = 1767139200L + n * 60L -
			            (rand_r(&seed) % 8 == 0 ? 86400L : 0L);
			char at[40], ev[512];
			pond_time_format_rfc3339(secs * POND_USEC_PER_SEC, at,
			                         sizeof(at));
			switch (kind) {
			case 0:
				snprintf(ev, sizeof(ev),
				         "\"contact_added\": {\"channel\": "
				         "\"%s\"}",
				         channels[rand_r(&seed) % 4]);
				break;
			case 1:
			case 2:
				snprintf(ev, sizeof(ev),
				         "\"order_paid\": {\"order_id\": "
				         "\"o%d\", "
				         "\"amount_fen\": %d, \"items\": "
				         "[{\"sku\": \"s\", \"category\": "
				         "\"%s\", "
				         "\"qty\": 1, \"price_fen\": 1}]}",
				         n, 1000 + rand_r(&seed) % 30000,
				         cats[rand_r(&seed) % 3]);
				break;
			case 3:
				snprintf(ev, sizeof(ev),
				         "\"order_refunded\": {\"order_id\": "
				         "\"o%d\", \"amount_fen\": %d}",
				         n - 1, rand_r(&seed) % 5000);
				break;
			case 4:
				snprintf(ev, sizeof(ev),
				         "\"reward_paid\": {\"kind\": "
				         "\"coupon\", "
				         "\"amount_fen\": %d}",
				         rand_r(&seed) % 1000);
				break;
			case 5:
				snprintf(ev, sizeof(ev),
				         "\"profile_updated\": {\"region\": "
				         "\"%s\"}",
				         regions[rand_r(&seed) % 3]);
				break;
			case 6:
				snprintf(ev, sizeof(ev), "%s",
				         rand_r(&seed) % 4 == 0
				                 ? "\"member_joined\": "
				                   "{\"tier\": "
				                   "\"gold\"}"
				                 : "\"interaction\": "
				                   "{\"kind\": "
				                   "\"message\"}");
				break;
			case 7:
				snprintf(ev, sizeof(ev),
				         "\"contact_removed\": {\"by\": "
				         "\"customer\"}");
				break;
			case 8:
				snprintf(
				        ev, sizeof(ev),
				        "\"opt_out\": {\"channel\": \"sms\"}");
				break;
			default:
				snprintf(ev, sizeof(ev),
				         "\"invite_shared\": {}");
				break;
			}
			o += (size_t)snprintf(
			        body + o, cap - o,
			        "%s{\"event_id\": \"x%d\", \"customer_key\": "
			        "\"k%d\", \"occurred_at\": \"%s\", %s}",
			        i > 0 ? "," : "", n, key, at, ev);
			cr_assert_lt(o, cap - 1);
		}
		snprintf(body + o, cap - o, "]}");
		bodies[b] = body;
	}
	return (bodies);
}

static const char *crash_rules =
        "INSERT INTO tag_rules (tag, condition) VALUES "
        "('high_value', '{\"field\": \"net_revenue_fen\", \"op\": \">=\", "
        "\"value\": 50000}'),"
        "('hunter', '{\"all\": [{\"field\": \"rewards_fen\", \"op\": \">\", "
        "\"value\": 0}, {\"field\": \"orders\", \"op\": \"=\", \"value\": "
        "0}]}'),"
        "('sh_vip', '{\"all\": [{\"field\": \"region\", \"op\": \"=\", "
        "\"value\": \"Shanghai\"}, {\"field\": \"tags\", \"op\": "
        "\"contains\", \"value\": \"high_value\"}]}'),"
        "('card_buyers', '{\"all\": [{\"field\": \"channel\", \"op\": "
        "\"in\", \"value\": [\"cards\", \"poster\"]}, {\"not\": {\"field\": "
        "\"orders\", \"op\": \"<\", \"value\": 2}}]}');"
        "UPDATE pond_settings SET value = '1' WHERE key = "
        "'tag_rules_version'";

#define CRASH_DUMP_SQL                                                        \
	"SELECT coalesce(string_agg(concat_ws(':', partition, seq, "          \
	"customer_key, tag, added, cause, cause_seq, encode(payload, "        \
	"'hex')), E'\\n' ORDER BY partition, seq), '') FROM tag_changes"

#define PROFILE_DUMP_SQL                                                      \
	"SELECT string_agg(concat_ws('|', customer_key, lifecycle, orders, "  \
	"net_revenue_fen, rewards_fen, channel, region, acquired_at, "        \
	"contact_removed, opted_out), E'\\n' ORDER BY customer_key) FROM "    \
	"customer_profiles"

static void
crash_send(tg_world *w, char *body)
{
	int status;
	json_t *answer = ic_http_events(&w->ingest, body, &status);

	cr_assert_eq(status, 200);
	json_decref(answer);
}

/* crash_run sends every batch into a fresh world. kills > 0: tagging is
 * SIGKILLed that many times at random moments and restarted; replicas:
 * how many taggings run side by side. Returns the tag_changes and
 * profile dumps (the caller frees). */
static void
crash_run(const char *name, char **bodies, int kills, int replicas,
          char **changes, char **profiles)
{
	pond_test_proc *procs[2] = {0};
	unsigned seed = 7;
	char log[64];
	tg_world w;
	int killed = 0;

	tg_start_ingest(&w, name);
	pond_test_sql_exec(w.ingest.dsn, crash_rules);
	for (int r = 0; r < replicas; r++) {
		snprintf(log, sizeof(log), "%s-tagging-%d", name, r);
		procs[r] = tg_spawn(&w, log, "17");
	}
	for (int b = 0; b < CRASH_BATCHES; b++) {
		crash_send(&w, bodies[b]);
		if (kills > 0 && b % (CRASH_BATCHES / kills) == 1 &&
		    killed < kills) {
			usleep(rand_r(&seed) % 150000);
			pond_test_kill(procs[0], SIGKILL);
			(void)pond_test_stop(procs[0]);
			snprintf(log, sizeof(log), "%s-tagging-0", name);
			procs[0] = tg_spawn(&w, log, "17");
			killed++;
		}
	}
	tg_settle(&w);
	*changes = pond_test_sql_text(w.ingest.dsn, CRASH_DUMP_SQL);
	*profiles = pond_test_sql_text(w.ingest.dsn, PROFILE_DUMP_SQL);
	for (int r = 0; r < replicas; r++) {
		cr_assert_eq(pond_test_stop(procs[r]), 0);
	}
	cr_assert_eq(ic_stop(&w.ingest), 0);
	cr_assert_eq(killed, kills);
}

Test(tagging, sigkill_and_replicas_give_the_same_tag_changes, .timeout = 600)
{
	char **bodies = crash_events();
	char *c0, *p0, *c1, *p1, *c2, *p2;

	crash_run("tagging-crash-ref", bodies, 0, 1, &c0, &p0);
	cr_assert_gt(strlen(c0), 1000, "the reference run changed few tags");
	crash_run("tagging-crash-kill", bodies, 6, 1, &c1, &p1);
	crash_run("tagging-crash-two", bodies, 0, 2, &c2, &p2);
	cr_assert(strcmp(c0, c1) == 0,
	          "tag_changes differ after SIGKILLs (see the test's logs)");
	cr_assert_str_eq(p0, p1);
	cr_assert(strcmp(c0, c2) == 0, "tag_changes differ with two replicas");
	cr_assert_str_eq(p0, p2);
	for (int b = 0; b < CRASH_BATCHES; b++) {
		free(bodies[b]);
	}
	free(bodies);
	free(c0);
	free(p0);
	free(c1);
	free(p1);
	free(c2);
	free(p2);
}
