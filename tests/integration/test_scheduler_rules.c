/*
 * test_scheduler_rules.c - the rules every touch obeys (API.md section 3),
 * each shown on a real pond-ingest, pond-scheduler and pond-gateway-sim
 * with the test clock: opt-out, quiet hours, the frequency cap across
 * campaigns, the campaign window, and a paused campaign.
 *
 * Business time is Asia/Shanghai (UTC+8, no DST): 21:00 local is 13:00Z.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_scheduler.h"

/* touch_state counts key's touches of campaign id in state (and reason). */
static long long
touches(sw_world *w, const char *id, const char *key, const char *state,
        const char *reason)
{
	return (sw_sql_int(w,
	                   "SELECT count(*) FROM touches WHERE campaign_id = "
	                   "'%s' AND customer_key LIKE '%s' AND state = '%s' "
	                   "AND reason LIKE '%s'",
	                   id, key, state, reason != NULL ? reason : "%"));
}

Test(scheduler_rules, opt_out_per_channel_and_all_and_removed_contact)
{
	sw_world w;

	sw_start(&w, "sched-optout", NULL);
	sw_gateway_start(&w, NULL);
	char *id = sw_campaign(
	        &w, "{\"name\": \"reply\", \"channel\": \"wecom_message\", "
	            "\"template\": \"t1\", \"trigger\": {\"event\": "
	            "\"interaction\"}}");
	/* a: out of wecom_message; b: out of all; c: out of sms only (another
	 * channel); d: out, then back in; e: out, then an opt_in that arrives
	 * later but happened earlier (the latest by occurred_at wins: still
	 * out); f removed the contact (suppressed: removed). The
	 * interactions are at 12:00 local. */
	sw_send(&w, "{\"event_id\": \"o1\", \"customer_key\": \"a\", "
	            "\"occurred_at\": \"2026-01-05T03:00:00Z\", \"opt_out\": "
	            "{\"channel\": \"wecom_message\"}},"
	            "{\"event_id\": \"o2\", \"customer_key\": \"b\", "
	            "\"occurred_at\": \"2026-01-05T03:00:00Z\", \"opt_out\": "
	            "{\"channel\": \"all\"}},"
	            "{\"event_id\": \"o3\", \"customer_key\": \"c\", "
	            "\"occurred_at\": \"2026-01-05T03:00:00Z\", \"opt_out\": "
	            "{\"channel\": \"sms\"}},"
	            "{\"event_id\": \"o4\", \"customer_key\": \"d\", "
	            "\"occurred_at\": \"2026-01-05T03:00:00Z\", \"opt_out\": "
	            "{\"channel\": \"all\"}},"
	            "{\"event_id\": \"o5\", \"customer_key\": \"d\", "
	            "\"occurred_at\": \"2026-01-05T03:01:00Z\", \"opt_in\": "
	            "{\"channel\": \"all\"}},"
	            "{\"event_id\": \"o6\", \"customer_key\": \"e\", "
	            "\"occurred_at\": \"2026-01-05T03:00:00Z\", \"opt_out\": "
	            "{\"channel\": \"all\"}},"
	            "{\"event_id\": \"o7\", \"customer_key\": \"e\", "
	            "\"occurred_at\": \"2026-01-05T02:00:00Z\", \"opt_in\": "
	            "{\"channel\": \"all\"}},"
	            "{\"event_id\": \"r1\", \"customer_key\": \"f\", "
	            "\"occurred_at\": \"2026-01-05T03:00:00Z\", "
	            "\"contact_removed\": {\"by\": \"customer\"}}");
	sw_clock(&w, "2026-01-05T04:00:00Z");
	sw_interaction(&w, "a", "2026-01-05T04:00:00Z");
	sw_interaction(&w, "b", "2026-01-05T04:00:00Z");
	sw_interaction(&w, "c", "2026-01-05T04:00:00Z");
	sw_interaction(&w, "d", "2026-01-05T04:00:00Z");
	sw_interaction(&w, "e", "2026-01-05T04:00:00Z");
	sw_interaction(&w, "f", "2026-01-05T04:00:00Z");
	sw_settle(&w);
	cr_assert_eq(touches(&w, id, "f", "suppressed", "removed"), 1);
	cr_assert_eq(touches(&w, id, "a", "suppressed", "opt_out"), 1);
	cr_assert_eq(touches(&w, id, "b", "suppressed", "opt_out"), 1);
	cr_assert_eq(touches(&w, id, "e", "suppressed", "opt_out"), 1);
	/* c and d are touched: sent, then the gateway's receipts arrive. */
	sw_wait_int(&w, 2, 20000,
	            "SELECT count(DISTINCT touch_id) FROM touch_changes WHERE "
	            "campaign_id = '%s' AND state = 'sent' AND customer_key "
	            "IN ('c', 'd')",
	            id);
	cr_assert_eq(sw_sql_int(&w,
	                        "SELECT count(*) FROM touches WHERE "
	                        "campaign_id = '%s'",
	                        id),
	             6);
	/* Every suppression is on the touches stream with its reason. */
	cr_assert_eq(sw_sql_int(&w,
	                        "SELECT count(*) FROM touch_changes WHERE "
	                        "state = 'suppressed' AND reason = 'opt_out'"),
	             3);
	cr_assert_eq(sw_metric(&w, 0,
	                       "pond_scheduler_suppressed_total{reason="
	                       "\"opt_out\"}"),
	             3);
	free(id);
	sw_stop(&w);
}

Test(scheduler_rules, quiet_hours_defer_to_nine_business_time)
{
	sw_world w;

	sw_start(&w, "sched-quiet", NULL);
	sw_gateway_start(&w, NULL);
	char *id = sw_campaign(
	        &w, "{\"name\": \"evening\", \"channel\": \"wecom_message\", "
	            "\"template\": \"t1\", \"trigger\": {\"event\": "
	            "\"interaction\"}}");
	/* Tuesday 2026-01-06, the clock following the events: r at 08:59
	 * local (00:59Z) is deferred to 09:00 the same day (01:00Z); s at
	 * 12:00 local is not deferred, and r goes out with it; t at 20:59
	 * local is not deferred; q at 21:00 local (13:00Z) is deferred to
	 * Wednesday 09:00 local (01:00Z). */
	sw_clock(&w, "2026-01-06T00:59:00Z");
	sw_interaction(&w, "r", "2026-01-06T00:59:00Z");
	sw_settle(&w);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touch_changes WHERE "
	                            "customer_key = 'r' AND state = "
	                            "'deferred'"),
	             1);
	cr_assert_eq(sw_sql_int(&w,
	                        "SELECT (extract(epoch FROM due_at))::bigint "
	                        "FROM touches WHERE customer_key = 'r'"),
	             1767661200); /* 2026-01-06T01:00:00Z */
	sw_clock(&w, "2026-01-06T04:00:00Z");
	sw_interaction(&w, "s", "2026-01-06T04:00:00Z");
	sw_wait_int(&w, 2, 20000,
	            "SELECT count(*) FROM touch_changes WHERE state = 'sent' "
	            "AND customer_key IN ('r', 's')");
	sw_clock(&w, "2026-01-06T12:59:00Z");
	sw_interaction(&w, "t", "2026-01-06T12:59:00Z");
	sw_wait_int(&w, 1, 20000,
	            "SELECT count(*) FROM touch_changes WHERE state = 'sent' "
	            "AND customer_key = 't'");
	sw_clock(&w, "2026-01-06T13:00:00Z");
	sw_interaction(&w, "q", "2026-01-06T13:00:00Z");
	sw_settle(&w);
	cr_assert_eq(sw_sql_int(&w,
	                        "SELECT count(*) FROM touches WHERE "
	                        "customer_key = 'q' AND state = 'deferred' "
	                        "AND due_at = '2026-01-07T01:00:00Z'"),
	             1);
	/* An event heard late waits as well: u's interaction happened at
	 * 20:59:30 local, but the scheduler hears of it at 21:00, so its
	 * touch is deferred to 09:00 too, not sent in quiet hours. */
	sw_interaction(&w, "u", "2026-01-06T12:59:30Z");
	sw_settle(&w);
	usleep(300000);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touch_changes WHERE "
	                            "state = 'sent' AND customer_key = 'u'"),
	             0);
	cr_assert_eq(touches(&w, id, "q", "deferred", NULL), 1);
	cr_assert_eq(touches(&w, id, "u", "deferred", NULL), 1);
	/* 08:59:59 Wednesday local: still not due. */
	sw_clock(&w, "2026-01-07T00:59:59Z");
	usleep(300000);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touch_changes WHERE "
	                            "state = 'sent' AND customer_key IN "
	                            "('q', 'u')"),
	             0);
	sw_clock(&w, "2026-01-07T01:00:00Z");
	sw_wait_int(&w, 2, 20000,
	            "SELECT count(*) FROM touch_changes WHERE state = 'sent' "
	            "AND customer_key IN ('q', 'u')");
	free(id);
	sw_stop(&w);
}

Test(scheduler_rules, frequency_cap_across_three_campaigns)
{
	sw_world w;
	const char *names[] = {"a", "b", "c"};
	char body[300];

	sw_start(&w, "sched-cap", NULL);
	for (int i = 0; i < 3; i++) {
		snprintf(body, sizeof(body),
		         "{\"name\": \"%s\", \"channel\": \"wecom_message\", "
		         "\"template\": \"t\", \"trigger\": {\"event\": "
		         "\"interaction\"}}",
		         names[i]);
		free(sw_campaign(&w, body));
	}
	/* k interacts at 12:00 local (04:00Z) every day from Monday 5 to
	 * Monday 12 January, the clock following it; each interaction
	 * triggers all three campaigns. With 1/day,3/week: Mon, Tue, Wed get
	 * one touch each (the other two capped by the day); Thu..Sun get none
	 * (the week has 3); the next Monday starts a new week: one. Touched
	 * 4, capped 8 x 3 - 4 = 20. m interacts once on Thursday: its own
	 * ledger, touched. */
	for (int d = 5; d <= 12; d++) {
		char at[32];
		snprintf(at, sizeof(at), "2026-01-%02dT04:00:00Z", d);
		sw_clock(&w, at);
		sw_interaction(&w, "k", at);
		if (d == 8) {
			sw_interaction(&w, "m", at);
		}
		sw_settle(&w);
	}
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touches WHERE "
	                            "customer_key = 'k'"),
	             24);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touches WHERE "
	                            "customer_key = 'k' AND state <> "
	                            "'suppressed'"),
	             4);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touches WHERE "
	                            "customer_key = 'k' AND reason = "
	                            "'frequency_cap'"),
	             20);
	/* The touched days are exactly Mon, Tue, Wed and the next Mon. */
	cr_assert_eq(sw_sql_int(&w,
	                        "SELECT count(*) FROM touches WHERE "
	                        "customer_key = 'k' AND state <> 'suppressed' "
	                        "AND (due_at AT TIME ZONE "
	                        "'Asia/Shanghai')::date IN ('2026-01-05', "
	                        "'2026-01-06', '2026-01-07', '2026-01-12')"),
	             4);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touches WHERE "
	                            "customer_key = 'm' AND state <> "
	                            "'suppressed'"),
	             1);
	/* m's one interaction is also wanted by three campaigns: one
	 * touch, two capped by the day. 20 + 2 in the metric. */
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touches WHERE "
	                            "customer_key = 'm' AND reason = "
	                            "'frequency_cap'"),
	             2);
	cr_assert_eq(sw_metric(&w, 0,
	                       "pond_scheduler_suppressed_total{reason="
	                       "\"frequency_cap\"}"),
	             22);
	sw_stop(&w);
}

Test(scheduler_rules, campaign_window_is_half_open)
{
	sw_world w;

	sw_start(&w, "sched-window", NULL);
	char *id = sw_campaign(
	        &w, "{\"name\": \"new year\", \"channel\": \"wecom_message\", "
	            "\"template\": \"t\", \"trigger\": {\"event\": "
	            "\"interaction\"}, \"starts_at\": "
	            "\"2026-01-06T00:00:00Z\", \"ends_at\": "
	            "\"2026-01-08T00:00:00Z\"}");
	/* w1 before the start, w2 at it (in), w3 a second before the end
	 * (in), w4 at the end (out): two in, two suppressed by the window. */
	sw_clock(&w, "2026-01-08T06:00:00Z");
	sw_interaction(&w, "w1", "2026-01-05T23:59:59Z");
	sw_interaction(&w, "w2", "2026-01-06T00:00:00Z");
	sw_interaction(&w, "w3", "2026-01-07T23:59:59Z");
	sw_interaction(&w, "w4", "2026-01-08T00:00:00Z");
	sw_settle(&w);
	cr_assert_eq(touches(&w, id, "w1", "suppressed", "window"), 1);
	cr_assert_eq(touches(&w, id, "w4", "suppressed", "window"), 1);
	cr_assert_eq(sw_sql_int(&w,
	                        "SELECT count(*) FROM touches WHERE "
	                        "customer_key IN ('w2', 'w3') AND state IN "
	                        "('scheduled', 'deferred')"),
	             2);
	free(id);
	sw_stop(&w);
}

Test(scheduler_rules, api_auth_validation_pause_and_resume)
{
	sw_world w;
	json_t *reply;

	sw_start(&w, "sched-api", NULL);
	const char *spec = "{\"id\": \"promo\", \"name\": \"promo\", "
	                   "\"channel\": \"sms\", \"template\": \"t\", "
	                   "\"trigger\": {\"event\": \"interaction\"}, "
	                   "\"quota\": 100, \"holdout_pct\": 10}";
	cr_assert_eq(sw_http(&w, "POST", "/v1/campaigns", NULL, spec, NULL),
	             401);
	cr_assert_eq(sw_http(&w, "POST", "/v1/campaigns", SW_READ_TOKEN, spec,
	                     NULL),
	             403);
	/* Both refusals are counted, by reason. */
	cr_assert_eq(sw_metric(&w, 0,
	                       "pond_auth_failures_total{reason=\"missing\"}"),
	             1);
	cr_assert_eq(
	        sw_metric(&w, 0, "pond_auth_failures_total{reason=\"role\"}"),
	        1);
	/* A bad spec names the field. */
	cr_assert_eq(sw_http(&w, "POST", "/v1/campaigns", SW_ADMIN_TOKEN,
	                     "{\"name\": \"x\", \"channel\": \"fax\", "
	                     "\"template\": \"t\", \"trigger\": {\"event\": "
	                     "\"interaction\"}}",
	                     &reply),
	             400);
	cr_assert_not_null(
	        strstr(json_string_value(json_object_get(
	                       json_object_get(reply, "error"), "message")),
	               "channel"));
	json_decref(reply);
	cr_assert_eq(sw_http(&w, "POST", "/v1/campaigns", SW_ADMIN_TOKEN,
	                     "{\"name\": \"x\", \"channel\": \"sms\", "
	                     "\"template\": \"t\", \"trigger\": {\"event\": "
	                     "\"interaction\"}, \"holdout_pct\": 51}",
	                     NULL),
	             400);
	cr_assert_eq(sw_http(&w, "POST", "/v1/campaigns", SW_ADMIN_TOKEN,
	                     "{\"name\": \"x\", \"channel\": \"sms\", "
	                     "\"template\": \"t\", \"trigger\": {\"event\": "
	                     "\"interaction\"}, \"audience\": {\"field\": "
	                     "\"nope\", \"op\": \"=\", \"value\": 1}}",
	                     NULL),
	             400);
	free(sw_campaign(&w, spec));
	cr_assert_eq(sw_http(&w, "POST", "/v1/campaigns", SW_ADMIN_TOKEN, spec,
	                     NULL),
	             409);
	cr_assert_eq(sw_http(&w, "GET", "/v1/campaigns/promo", SW_READ_TOKEN,
	                     NULL, &reply),
	             200);
	cr_assert_eq(json_integer_value(json_object_get(reply, "quota")), 100);
	cr_assert_str_eq(json_string_value(json_object_get(reply, "status")),
	                 "active");
	json_decref(reply);
	cr_assert_eq(sw_http(&w, "GET", "/v1/campaigns/none", SW_READ_TOKEN,
	                     NULL, NULL),
	             404);
	cr_assert_eq(sw_http(&w, "POST", "/v1/campaigns/promo/pause",
	                     SW_ADMIN_TOKEN, "", &reply),
	             200);
	cr_assert_str_eq(json_string_value(json_object_get(reply, "status")),
	                 "paused");
	json_decref(reply);
	sw_clock(&w, "2026-01-05T04:00:00Z");
	sw_interaction(&w, "p1", "2026-01-05T04:00:00Z");
	sw_settle(&w);
	cr_assert_eq(touches(&w, "promo", "p1", "suppressed", "paused"), 1);
	cr_assert_eq(sw_http(&w, "POST", "/v1/campaigns/promo/resume",
	                     SW_ADMIN_TOKEN, "", NULL),
	             200);
	sw_interaction(&w, "p2", "2026-01-05T04:00:00Z");
	sw_settle(&w);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touches WHERE "
	                            "customer_key = 'p2' AND reason = ''"),
	             1);
	cr_assert_eq(sw_http(&w, "GET", "/v1/campaigns", SW_READ_TOKEN, NULL,
	                     &reply),
	             200);
	cr_assert_eq(json_array_size(json_object_get(reply, "campaigns")), 1);
	json_decref(reply);
	sw_stop(&w);
}

Test(scheduler_rules, cli_reads_the_same_json)
{
	char dsn[POND_TEST_DSN_LEN + 16], path[PATH_MAX], *out = NULL;
	sw_world w;
	FILE *f;

	sw_start(&w, "sched-cli", NULL);
	snprintf(dsn, sizeof(dsn), "POND_DSN=%s", w.ingest.dsn);
	snprintf(path, sizeof(path), "%s/sched-cli-%d.json",
	         pond_test_artifacts_dir(), (int)getpid());
	const char *env[] = {dsn, NULL};
	cr_assert_not_null(f = fopen(path, "w"));
	fprintf(f, "{\"id\": \"rebuy\", \"name\": \"repurchase reminder\", "
	           "\"channel\": \"wecom_message\", \"template\": \"rebuy\", "
	           "\"trigger\": {\"tag_added\": \"repurchase_due\"}, "
	           "\"delay_s\": 3600}");
	fclose(f);
	const char *create[] = {"pond", "campaigns", "create", path, NULL};
	cr_assert_eq(pond_test_run(create, env, "sched-cli-run", &out), 0);
	json_t *j = pond_test_json(out);
	cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "rebuy");
	json_decref(j);
	free(out);
	/* The API sees it; the CLI pauses it. */
	cr_assert_eq(sw_http(&w, "GET", "/v1/campaigns/rebuy", SW_READ_TOKEN,
	                     NULL, NULL),
	             200);
	const char *pause[] = {"pond", "campaigns", "pause", "rebuy", NULL};
	cr_assert_eq(pond_test_run(pause, env, "sched-cli-run", NULL), 0);
	cr_assert_eq(sw_sql_int(&w, "SELECT paused::int FROM campaigns"), 1);
	/* The list shows it paused; an argument it takes none of is
	 * refused. */
	const char *list[] = {"pond", "campaigns", "list", NULL};
	cr_assert_eq(pond_test_run(list, env, "sched-cli-run", &out), 0);
	cr_assert_not_null(strstr(out, "rebuy"), "%s", out);
	cr_assert_not_null(strstr(out, "tag_added:repurchase_due"), "%s", out);
	cr_assert_not_null(strstr(out, "paused"), "%s", out);
	free(out);
	const char *list_extra[] = {"pond", "campaigns", "list", "x", NULL};
	cr_assert_eq(pond_test_run(list_extra, env, "sched-cli-run", NULL), 2);
	/* A spec the API refuses the CLI refuses too. */
	cr_assert_not_null(f = fopen(path, "w"));
	fprintf(f, "{\"name\": \"x\", \"channel\": \"sms\", \"template\": "
	           "\"t\", \"trigger\": {\"soon\": \"x\"}}");
	fclose(f);
	cr_assert_eq(pond_test_run(create, env, "sched-cli-run", NULL), 1);
	const char *show[] = {"pond", "campaigns", "show", "nope", NULL};
	cr_assert_eq(pond_test_run(show, env, "sched-cli-run", NULL), 1);
	unlink(path);
	sw_stop(&w);
}
