/*
 * test_demo.c - `pond demo` against a real pond-ingest and pond-tagging:
 * the events it stores, read back from the events table.
 *
 * - the same seed stores the same events (ids, times, payload bytes,
 *   counts by type, sums of money) for two publishers, and the same seed
 *   sent again is all duplicates; another seed stores other events;
 * - nothing is rejected, and every event is before the service clock and
 *   inside the --days window;
 * - what is stored is what `pond demo --out` writes (count and money);
 * - the money adds up by the API's own rules, checked on the decoded
 *   payloads: an order's amount is the sum of qty x price of its items, a
 *   refund never exceeds its order, spend is per channel and day;
 * - the tag rules reach the tagging service; the campaigns are skipped with
 *   a message when no scheduler answers, and when pond-scheduler is built
 *   they are created with the ids the events carry, once however often the
 *   demo runs.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest_client.h"
#include "pond/event.pb-c.h"

#define ADMIN_TOKEN "api_demo_admin_0123456789"
#define DEMO_DAYS   "30"

typedef struct demo_world {
	ic_service ingest;
	uint16_t tagging_port, scheduler_port;
	char tagging_url[64], scheduler_url[64];
	pond_test_proc *tagging, *scheduler;
} demo_world;

static void
demo_start(demo_world *w)
{
	char e_dsn[600], e_port[32], e_sub[96], e_pub[96], e_clock[4200];

	memset(w, 0, sizeof(*w));
	ic_start(&w->ingest, "demo-ingest", NULL);
	pond_test_sql_exec(
	        w->ingest.dsn,
	        "INSERT INTO api_tokens (name, role, token_hash) "
	        "VALUES ('admin', 'admin', sha256(convert_to('" ADMIN_TOKEN
	        "', 'UTF8')))");
	w->tagging_port = pond_test_free_port();
	snprintf(e_dsn, sizeof(e_dsn), "POND_DSN=%s", w->ingest.dsn);
	snprintf(e_port, sizeof(e_port), "POND_HTTP_PORT=%u", w->tagging_port);
	snprintf(e_sub, sizeof(e_sub), "POND_EVENTS_SUB_URLS=%s",
	         w->ingest.pub_url);
	snprintf(e_pub, sizeof(e_pub),
	         "POND_TAG_CHANGES_PUB_URL=tcp://127.0.0.1:%u",
	         pond_test_free_port());
	snprintf(e_clock, sizeof(e_clock), "POND_TEST_CLOCK=%s",
	         w->ingest.clock);
	const char *env[] = {e_dsn, e_port,  e_sub,
	                     e_pub, e_clock, "POND_HTTP_ADDR=127.0.0.1",
	                     NULL};
	w->tagging = pond_test_spawn("pond-tagging", env, "demo-tagging");
	pond_test_wait_ready(w->tagging, w->tagging_port, "/healthz", 30000);
	snprintf(w->tagging_url, sizeof(w->tagging_url), "http://127.0.0.1:%u",
	         w->tagging_port);
	/* A port nobody listens on until demo_start_scheduler. */
	w->scheduler_port = pond_test_free_port();
	snprintf(w->scheduler_url, sizeof(w->scheduler_url),
	         "http://127.0.0.1:%u", w->scheduler_port);
}

/* demo_start_scheduler starts pond-scheduler on w's scheduler port, its
 * touches going to a gateway nobody listens on. */
static void
demo_start_scheduler(demo_world *w)
{
	char e_dsn[600], e_port[32], e_sub[96], e_pub[96], e_gw[96];
	char e_clock[4200];

	snprintf(e_dsn, sizeof(e_dsn), "POND_DSN=%s", w->ingest.dsn);
	snprintf(e_port, sizeof(e_port), "POND_HTTP_PORT=%u",
	         w->scheduler_port);
	snprintf(e_sub, sizeof(e_sub), "POND_EVENTS_SUB_URLS=%s",
	         w->ingest.pub_url);
	snprintf(e_pub, sizeof(e_pub),
	         "POND_TOUCHES_PUB_URL=tcp://127.0.0.1:%u",
	         pond_test_free_port());
	snprintf(e_gw, sizeof(e_gw),
	         "POND_GATEWAY_URLS=wecom_message=tcp://127.0.0.1:%u",
	         pond_test_free_port());
	snprintf(e_clock, sizeof(e_clock), "POND_TEST_CLOCK=%s",
	         w->ingest.clock);
	const char *env[] = {e_dsn,
	                     e_port,
	                     e_sub,
	                     e_pub,
	                     e_gw,
	                     e_clock,
	                     "POND_TAG_CHANGES_SUB_URLS",
	                     "POND_HTTP_ADDR=127.0.0.1",
	                     NULL};
	w->scheduler =
	        pond_test_spawn("pond-scheduler", env, "demo-scheduler");
	pond_test_wait_ready(w->scheduler, w->scheduler_port, "/healthz",
	                     30000);
}

static void
demo_stop(demo_world *w)
{
	if (w->scheduler != NULL) {
		cr_assert_eq(pond_test_stop(w->scheduler), 0,
		             "pond-scheduler exit");
	}
	cr_assert_eq(pond_test_stop(w->tagging), 0, "pond-tagging exit");
	cr_assert_eq(ic_stop(&w->ingest), 0, "pond-ingest exit");
}

/* demo_run_from runs `pond demo --seed SEED --customers small --days 30`
 * (from start, unless NULL) as the publisher of token and returns its
 * stdout (the caller frees). */
static char *
demo_run_from(const demo_world *w, const char *seed, const char *token,
              const char *start)
{
	char e_dsn[600], e_clock[4200];
	const char *argv[] = {"pond",
	                      "demo",
	                      "--seed",
	                      seed,
	                      "--customers",
	                      "small",
	                      "--days",
	                      DEMO_DAYS,
	                      "--url",
	                      w->ingest.nng_url,
	                      "--token",
	                      token,
	                      "--admin-token",
	                      ADMIN_TOKEN,
	                      "--tagging-url",
	                      w->tagging_url,
	                      "--scheduler-url",
	                      w->scheduler_url,
	                      start != NULL ? "--start" : NULL,
	                      start,
	                      NULL};
	char *out = NULL;

	snprintf(e_dsn, sizeof(e_dsn), "POND_DSN=%s", w->ingest.dsn);
	snprintf(e_clock, sizeof(e_clock), "POND_TEST_CLOCK=%s",
	         w->ingest.clock);
	const char *env[] = {e_dsn,
	                     e_clock,
	                     "POND_TOKEN",
	                     "POND_INGEST_URL",
	                     "POND_ADMIN_TOKEN",
	                     NULL};
	int status = pond_test_run(argv, env, "demo-cli", &out);
	cr_assert_eq(status, 0, "pond demo exit %d: %s", status, out);
	return (out);
}

/* demo_run is demo_run_from over the 30 days before today. */
static char *
demo_run(const demo_world *w, const char *seed, const char *token)
{
	return (demo_run_from(w, seed, token, NULL));
}

/* demo_sql_text runs sql with the publisher id put in for %lld. */
static char *
demo_sql_text(const demo_world *w, const char *fmt, long long publisher)
{
	char sql[1024];

	snprintf(sql, sizeof(sql), fmt, publisher);
	return (pond_test_sql_text(w->ingest.dsn, sql));
}

/* The identity of a publisher's stored events: every id, type, key, time
 * and payload byte, in event_id order. */
#define FINGERPRINT_SQL                                                       \
	"SELECT md5(string_agg(event_id || '|' || type || '|' || "            \
	"customer_key || '|' || (extract(epoch FROM occurred_at) * 1e6)"      \
	"::bigint || '|' || encode(payload, 'hex'), ',' ORDER BY "            \
	"event_id)) FROM events WHERE publisher_id = %lld"
#define BY_TYPE_SQL                                                           \
	"SELECT string_agg(type || '=' || n, ',' ORDER BY type) FROM "        \
	"(SELECT type, count(*) AS n FROM events WHERE publisher_id = %lld "  \
	"GROUP BY type) t"

/* demo_money sums the money of a publisher's events, decoded from the
 * stored payloads, checking each order and refund on the way. */
typedef struct demo_money {
	long long orders, order_fen, refund_fen, spend_fen, reward_fen;
} demo_money;

static demo_money
demo_money_of(const demo_world *w, long long publisher)
{
	demo_money m = {0};
	char pub[32];
	const char *params[] = {pub};
	PGconn *conn = pond_test_pg_connect(w->ingest.dsn);
	PGresult *res;

	snprintf(pub, sizeof(pub), "%lld", publisher);
	res = PQexecParams(conn,
	                   "SELECT payload FROM events WHERE publisher_id = "
	                   "$1 ORDER BY occurred_at, event_id",
	                   1, NULL, params, NULL, NULL, 1);
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s",
	             PQerrorMessage(conn));
	/* Per order_id: amount paid, amount refunded so far. The demo's
	 * order ids are "<key>-o<k>", so a small open table does. */
	json_t *orders = json_object();
	for (int i = 0; i < PQntuples(res); i++) {
		Pond__Event *ev = pond__event__unpack(
		        NULL, (size_t)PQgetlength(res, i, 0),
		        (const uint8_t *)PQgetvalue(res, i, 0));
		cr_assert_not_null(ev, "payload %d does not decode", i);
		if (ev->body_case == POND__EVENT__BODY_ORDER_PAID) {
			const Pond__OrderPaid *o = ev->order_paid;
			long long items = 0;
			for (size_t k = 0; k < o->n_items; k++) {
				items += (long long)o->items[k]->qty *
				         o->items[k]->price_fen;
			}
			cr_assert_eq(items, o->amount_fen,
			             "order %s: items %lld, amount %lld",
			             o->order_id, items,
			             (long long)o->amount_fen);
			m.orders++;
			m.order_fen += o->amount_fen;
			json_object_set_new(orders, o->order_id,
			                    json_pack("[I, I]", o->amount_fen,
			                              (json_int_t)0));
		} else if (ev->body_case == POND__EVENT__BODY_ORDER_REFUNDED) {
			const Pond__OrderRefunded *r = ev->order_refunded;
			json_t *o = json_object_get(orders, r->order_id);
			cr_assert_not_null(o, "refund of unknown order %s",
			                   r->order_id);
			json_int_t paid =
			        json_integer_value(json_array_get(o, 0));
			json_int_t back =
			        json_integer_value(json_array_get(o, 1)) +
			        r->amount_fen;
			cr_assert(back <= paid,
			          "order %s: refunded %lld of %lld",
			          r->order_id, (long long)back,
			          (long long)paid);
			json_array_set_new(o, 1, json_integer(back));
			m.refund_fen += r->amount_fen;
		} else if (ev->body_case == POND__EVENT__BODY_CHANNEL_SPEND) {
			m.spend_fen += ev->channel_spend->amount_fen;
		} else if (ev->body_case == POND__EVENT__BODY_REWARD_PAID) {
			m.reward_fen += ev->reward_paid->amount_fen;
		}
		pond__event__free_unpacked(ev, NULL);
	}
	json_decref(orders);
	PQclear(res);
	PQfinish(conn);
	return (m);
}

/* demo_file_money runs `pond demo --out` with the same seed and clock and
 * sums the money of the file's events: what the demo meant to send, read
 * from its JSON rather than from the store. *n gets the event count. */
static demo_money
demo_file_money(const demo_world *w, const char *seed, size_t *n)
{
	char e_clock[4200], path[512];
	const char *argv[] = {"pond",        "demo",  "--seed", seed,
	                      "--customers", "small", "--days", DEMO_DAYS,
	                      "--out",       path,    NULL};
	demo_money m = {0};
	json_t *root, *ev;
	size_t i;

	snprintf(path, sizeof(path), "%s/demo-%s-%d.json",
	         pond_test_artifacts_dir(), seed, (int)getpid());
	snprintf(e_clock, sizeof(e_clock), "POND_TEST_CLOCK=%s",
	         w->ingest.clock);
	const char *env[] = {e_clock, NULL};
	cr_assert_eq(pond_test_run(argv, env, "demo-cli", NULL), 0);
	root = json_load_file(path, 0, NULL);
	cr_assert_not_null(root, "%s is not JSON", path);
	json_array_foreach(json_object_get(root, "events"), i, ev)
	{
		json_t *o;
		if ((o = json_object_get(ev, "order_paid")) != NULL) {
			m.orders++;
			m.order_fen += json_integer_value(
			        json_object_get(o, "amount_fen"));
		} else if ((o = json_object_get(ev, "order_refunded")) !=
		           NULL) {
			m.refund_fen += json_integer_value(
			        json_object_get(o, "amount_fen"));
		} else if ((o = json_object_get(ev, "channel_spend")) !=
		           NULL) {
			m.spend_fen += json_integer_value(
			        json_object_get(o, "amount_fen"));
		} else if ((o = json_object_get(ev, "reward_paid")) != NULL) {
			m.reward_fen += json_integer_value(
			        json_object_get(o, "amount_fen"));
		}
	}
	*n = json_array_size(json_object_get(root, "events"));
	json_decref(root);
	unlink(path);
	return (m);
}

/* demo_acked checks the summary line of pond demo. */
static void
demo_acked(const char *out, long long accepted, long long duplicate)
{
	char want[96];

	snprintf(want, sizeof(want),
	         "%lld accepted, %lld duplicate, 0 rejected\n", accepted,
	         duplicate);
	cr_assert_str_eq(out, want);
}

Test(demo, same_seed_same_events_other_seed_others, .timeout = 240)
{
	demo_world w;
	long long pub2, pub3;
	char *out, *fp1, *fp2, *fp3, *types1, *types2, *types3;
	long long n1, n3;

	demo_start(&w);
	pub2 = ic_add_publisher(w.ingest.dsn, "acme2",
	                        "pub_demo_two_0123456789");
	pub3 = ic_add_publisher(w.ingest.dsn, "acme3",
	                        "pub_demo_three_0123456789");

	out = demo_run(&w, "7", w.ingest.token);
	n1 = pond_test_sql_int(w.ingest.dsn, "SELECT count(*) FROM events");
	/* small is 200 customers: each has its contact_added, and more. */
	cr_assert_gt(n1, 200);
	demo_acked(out, n1, 0);
	free(out);

	/* The same seed again, same publisher: every event a duplicate. */
	out = demo_run(&w, "7", w.ingest.token);
	demo_acked(out, 0, n1);
	free(out);

	/* The same seed from another publisher stores the same events. */
	out = demo_run(&w, "7", "pub_demo_two_0123456789");
	demo_acked(out, n1, 0);
	free(out);
	out = demo_run(&w, "8", "pub_demo_three_0123456789");
	n3 = pond_test_sql_int(w.ingest.dsn, "SELECT count(*) FROM events") -
	     2 * n1;
	demo_acked(out, n3, 0);
	free(out);

	fp1 = demo_sql_text(&w, FINGERPRINT_SQL, w.ingest.publisher_id);
	fp2 = demo_sql_text(&w, FINGERPRINT_SQL, pub2);
	fp3 = demo_sql_text(&w, FINGERPRINT_SQL, pub3);
	cr_assert_str_eq(fp1, fp2);
	cr_assert_str_neq(fp1, fp3);
	types1 = demo_sql_text(&w, BY_TYPE_SQL, w.ingest.publisher_id);
	types2 = demo_sql_text(&w, BY_TYPE_SQL, pub2);
	types3 = demo_sql_text(&w, BY_TYPE_SQL, pub3);
	cr_assert_str_eq(types1, types2);
	cr_assert_str_neq(types1, types3);
	/* Every kind of event of the brand is there. */
	static const char *const kinds[] = {
	        "channel_spend=",   "contact_added=200,", "contact_removed=",
	        "interaction=",     "invite_shared=",     "member_joined=",
	        "opt_out=",         "order_paid=",        "order_refunded=",
	        "profile_updated=", "reward_paid="};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		cr_assert_not_null(strstr(types1, kinds[i]), "%s not in %s",
		                   kinds[i], types1);
	}
	free(fp1), free(fp2), free(fp3);
	free(types1), free(types2), free(types3);

	demo_money m1 = demo_money_of(&w, w.ingest.publisher_id);
	demo_money m2 = demo_money_of(&w, pub2);
	demo_money m3 = demo_money_of(&w, pub3);
	cr_assert(memcmp(&m1, &m2, sizeof(m1)) == 0,
	          "same seed, other money: %lld/%lld orders", m1.order_fen,
	          m2.order_fen);
	cr_assert(m1.order_fen != m3.order_fen ||
	          m1.spend_fen != m3.spend_fen);
	/* What was stored is what the demo writes to a file. */
	size_t nfile;
	demo_money mf = demo_file_money(&w, "7", &nfile);
	cr_assert_eq((long long)nfile, n1);
	cr_assert(memcmp(&m1, &mf, sizeof(m1)) == 0,
	          "stored %lld fen of orders, file %lld", m1.order_fen,
	          mf.order_fen);
	cr_assert_gt(m1.orders, 0);
	cr_assert_gt(m1.refund_fen, 0);
	cr_assert_gt(m1.spend_fen, 0);
	cr_assert_gt(m1.reward_fen, 0);

	/* Nothing rejected; every event before the clock (2026-01-05 00:00
	 * UTC) and in the 30 days before that day's midnight in Shanghai
	 * (2026-01-04 16:00 UTC): from 2025-12-05 16:00 UTC. */
	cr_assert_eq(pond_test_sql_int(w.ingest.dsn,
	                               "SELECT count(*) FROM rejected_events"),
	             0);
	cr_assert_eq(
	        pond_test_sql_int(
	                w.ingest.dsn,
	                "SELECT count(*) FROM events WHERE occurred_at >= "
	                "'2026-01-04T16:00:00Z' OR occurred_at < "
	                "'2025-12-05T16:00:00Z'"),
	        0);
	/* Every customer's first event is its contact_added, or the invite
	 * it shared just before a friend it brought came in: nothing
	 * happens to a customer the brand has not met. */
	cr_assert_eq(pond_test_sql_int(
	                     w.ingest.dsn,
	                     "SELECT count(*) FROM (SELECT DISTINCT ON "
	                     "(publisher_id, customer_key) type FROM events "
	                     "WHERE type <> 'channel_spend' ORDER BY "
	                     "publisher_id, customer_key, occurred_at, "
	                     "event_id) f WHERE type <> 'contact_added'"),
	             0);

	/* The tag rules went to the tagging service. */
	cr_assert_eq(pond_test_sql_int(w.ingest.dsn,
	                               "SELECT count(*) FROM tag_rules"),
	             7);
	cr_assert(pond_test_log_wait("demo-cli", "campaigns skipped", 1000));
	demo_stop(&w);
}

Test(demo, window_past_now_fills_in_as_time_passes, .timeout = 180)
{
	demo_world w;
	long long pub2, n5, n12;
	char *out, *fp1, *fp2;

	demo_start(&w);
	pub2 = ic_add_publisher(w.ingest.dsn, "acme2",
	                        "pub_demo_two_0123456789");
	/* 2025-12-20 + 30 days runs past the clock (2026-01-05 00:00 UTC):
	 * only what is before the clock goes. */
	out = demo_run_from(&w, "5", w.ingest.token, "2025-12-20");
	n5 = pond_test_sql_int(w.ingest.dsn, "SELECT count(*) FROM events");
	demo_acked(out, n5, 0);
	free(out);
	cr_assert_eq(
	        pond_test_sql_int(
	                w.ingest.dsn,
	                "SELECT count(*) FROM events WHERE occurred_at >= "
	                "'2026-01-05T00:00:00Z' OR occurred_at < "
	                "'2025-12-19T16:00:00Z'"),
	        0);
	/* A week later the same command adds the week's events and sends
	 * the earlier ones as duplicates. */
	pond_test_clock_write(w.ingest.clock, "2026-01-12T00:00:00Z");
	out = demo_run_from(&w, "5", w.ingest.token, "2025-12-20");
	n12 = pond_test_sql_int(w.ingest.dsn, "SELECT count(*) FROM events");
	cr_assert_gt(n12, n5);
	demo_acked(out, n12 - n5, n5);
	free(out);
	cr_assert_eq(
	        pond_test_sql_int(w.ingest.dsn,
	                          "SELECT count(*) FROM events WHERE "
	                          "occurred_at >= '2026-01-12T00:00:00Z'"),
	        0);
	/* And the two runs stored what one run at the later time stores:
	 * an id's content does not depend on when it was sent. */
	out = demo_run_from(&w, "5", "pub_demo_two_0123456789", "2025-12-20");
	demo_acked(out, n12, 0);
	free(out);
	fp1 = demo_sql_text(&w, FINGERPRINT_SQL, w.ingest.publisher_id);
	fp2 = demo_sql_text(&w, FINGERPRINT_SQL, pub2);
	cr_assert_str_eq(fp1, fp2);
	free(fp1);
	free(fp2);
	demo_stop(&w);
}

Test(demo, bad_options_are_usage_errors)
{
	static const char *const cases[][4] = {
	        {"--customers", "tiny", NULL},
	        {"--days", "0", NULL},
	        {"--start", "2026-13-45", NULL},
	        {"--seed", "minus", NULL},
	};
	char e_clock[4200];

	pond_test_clock_file(e_clock + 16, sizeof(e_clock) - 16);
	memcpy(e_clock, "POND_TEST_CLOCK=", 16);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *argv[] = {"pond",      "demo",      "--token", "t",
		                      cases[i][0], cases[i][1], NULL};
		const char *env[] = {e_clock, NULL};
		cr_assert_eq(pond_test_run(argv, env, "demo-usage", NULL), 2,
		             "%s %s", cases[i][0], cases[i][1]);
	}
	/* --start in the future of the clock (2026-01-05). */
	const char *argv[] = {"pond",    "demo",       "--token", "t",
	                      "--start", "2026-02-01", NULL};
	const char *env[] = {e_clock, NULL};
	cr_assert_eq(pond_test_run(argv, env, "demo-usage", NULL), 2);
}

/* demo_campaign_ids returns the ids GET /v1/campaigns lists, sorted and
 * comma-separated (the caller frees). */
static char *
demo_campaign_ids(const demo_world *w)
{
	const char *headers[] = {"Authorization: Bearer " ADMIN_TOKEN, NULL};
	pond_test_http_resp resp;
	json_t *answer, *c;
	char *ids = NULL, *joined;
	size_t i;

	cr_assert_eq(pond_test_http("GET", w->scheduler_port, "/v1/campaigns",
	                            headers, NULL, 0, &resp),
	             0);
	cr_assert_eq(resp.status, 200, "%s", resp.body);
	answer = pond_test_json(resp.body);
	pond_test_http_resp_free(&resp);
	/* A small insertion sort keeps the list independent of the order
	 * the scheduler lists in. */
	const char *sorted[16];
	size_t n = 0;
	json_array_foreach(json_object_get(answer, "campaigns"), i, c)
	{
		const char *id = json_string_value(json_object_get(c, "id"));
		cr_assert_not_null(id);
		cr_assert_lt(n, 16);
		size_t k = n++;
		while (k > 0 && strcmp(sorted[k - 1], id) > 0) {
			sorted[k] = sorted[k - 1];
			k--;
		}
		sorted[k] = id;
	}
	for (i = 0; i < n; i++) {
		cr_assert(asprintf(&joined, "%s%s%s", ids != NULL ? ids : "",
		                   i > 0 ? "," : "", sorted[i]) > 0);
		free(ids);
		ids = joined;
	}
	json_decref(answer);
	return (ids != NULL ? ids : strdup(""));
}

Test(demo, campaigns_reach_the_scheduler, .timeout = 120)
{
	const char *bindir = getenv("POND_BIN_DIR");
	char path[512], *ids;
	demo_world w;

	snprintf(path, sizeof(path), "%s/pond-scheduler",
	         bindir != NULL ? bindir : ".");
	if (access(path, X_OK) != 0) {
		cr_skip_test("pond-scheduler is not built in this tree");
	}
	demo_start(&w);
	demo_start_scheduler(&w);
	/* The five of the demo, with the ids its events carry; the second
	 * run adds nothing and still succeeds. */
	for (int run = 0; run < 2; run++) {
		free(demo_run(&w, "3", w.ingest.token));
		ids = demo_campaign_ids(&w);
		cr_assert_str_eq(ids,
		                 "dormant-win-back,festival-offer,"
		                 "invite-3,repurchase-reminder,"
		                 "welcome-red-packet",
		                 "run %d", run);
		free(ids);
	}
	cr_assert(pond_test_log_wait(
	        "demo-cli", "campaign invite-3-friends is already there",
	        1000));
	demo_stop(&w);
}
