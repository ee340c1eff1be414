/*
 * test_scheduler_quota.c - limited quantity and the hold-out share.
 *
 * - quota: two scheduler replicas split the events partitions and race
 *   for one campaign's quota of 5; exactly 5 touches are made, every
 *   other selected customer is suppressed with reason quota;
 * - hold-out: a one-shot campaign over 10,000 customers with
 *   holdout_pct 20 holds out 2,000 +- 200 of them; the scheduler is
 *   SIGKILLed while it goes through the audience and restarted, and the
 *   held-out set is exactly the one the test draws itself (FNV-1a 64 of
 *   "campaign/customer" modulo 10,000 < 2,000): stable across restarts,
 *   no customer selected twice.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_scheduler.h"

Test(scheduler_quota, exactly_n_touches_with_two_replicas)
{
	static const char *const env[] = {"POND_FREQ_CAP=", NULL};
	char events[20000] = "", label[200];
	sw_world w;

	sw_start(&w, "sched-quota", env);
	sw_scheduler_start(&w, 1);
	/* Wait until both replicas own events partitions (8 in all). */
	snprintf(label, sizeof(label),
	         "pond_consumer_owned_partitions{consumer=\"scheduler\","
	         "stream=\"events\"}");
	for (int i = 0; i < 200 && (sw_metric(&w, 0, label) <= 0 ||
	                            sw_metric(&w, 1, label) <= 0);
	     i++) {
		usleep(100000);
	}
	cr_assert_gt(sw_metric(&w, 0, label), 0);
	cr_assert_gt(sw_metric(&w, 1, label), 0);
	free(sw_campaign(&w,
	                 "{\"id\": \"festival\", \"name\": \"festival "
	                 "offer\", \"channel\": \"coupon\", \"template\": "
	                 "\"t\", \"trigger\": {\"event\": \"interaction\"}, "
	                 "\"quota\": 5}"));
	/* 60 customers over the 8 partitions, so both replicas select. */
	for (int i = 0; i < 60; i++) {
		char ev[200];
		snprintf(ev, sizeof(ev),
		         "%s{\"event_id\": \"q%d\", \"customer_key\": "
		         "\"cust-%d\", \"occurred_at\": "
		         "\"2026-01-05T04:00:00Z\", \"interaction\": "
		         "{\"kind\": \"message\"}}",
		         i == 0 ? "" : ",", i, i);
		strcat(events, ev);
	}
	sw_clock(&w, "2026-01-05T04:00:00Z");
	sw_send(&w, "%s", events);
	sw_settle(&w);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touches WHERE "
	                            "campaign_id = 'festival'"),
	             60);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touches WHERE "
	                            "campaign_id = 'festival' AND state <> "
	                            "'suppressed'"),
	             5);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touches WHERE "
	                            "campaign_id = 'festival' AND reason = "
	                            "'quota'"),
	             55);
	cr_assert_eq(sw_sql_int(&w, "SELECT used FROM campaigns WHERE id = "
	                            "'festival'"),
	             5);
	/* Both replicas did select (each wrote touch changes). */
	double a = sw_metric(&w, 0,
	                     "pond_scheduler_touches_total{state="
	                     "\"suppressed\"}");
	double b = sw_metric(&w, 1,
	                     "pond_scheduler_touches_total{state="
	                     "\"suppressed\"}");
	cr_assert_eq(a + b, 55);
	cr_assert_gt(a, 0);
	cr_assert_gt(b, 0);
	sw_stop(&w);
}

/* holdout_draw is the test's own hold-out draw (API.md: deterministic per
 * customer and campaign). */
static int
holdout_draw(const char *campaign, const char *key, int pct)
{
	unsigned long long h = 14695981039346656037ULL;
	char s[128];

	snprintf(s, sizeof(s), "%s/%s", campaign, key);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	return ((int)(h % 10000) < pct * 100);
}

Test(scheduler_quota, holdout_share_stable_across_restart, .timeout = 240)
{
	static const char *const env[] = {
	        "POND_FREQ_CAP=", "POND_SCHEDULER_BATCH=250", NULL};
	sw_world w;
	int expected = 0;

	sw_start(&w, "sched-holdout", env);
	/* 10,000 customers as tagging would have them (the audience of a
	 * one-shot campaign is read from customer_profiles). */
	sw_send(&w, "{\"event_id\": \"x\", \"customer_key\": \"x\", "
	            "\"occurred_at\": \"2026-01-04T00:00:00Z\", "
	            "\"interaction\": {\"kind\": \"message\"}}");
	pond_test_sql_exec(w.ingest.dsn,
	                   "INSERT INTO customer_profiles (partition, "
	                   "customer_key) SELECT g % 8, 'm' || g FROM "
	                   "generate_series(1, 10000) g");
	for (int i = 1; i <= 10000; i++) {
		char key[32];
		snprintf(key, sizeof(key), "m%d", i);
		expected += holdout_draw("spring", key, 20);
	}
	/* The draw itself is within 2 points of 20 %. */
	cr_assert(expected >= 1800 && expected <= 2200, "%d", expected);
	free(sw_campaign(&w, "{\"id\": \"spring\", \"name\": \"spring "
	                     "sale\", \"channel\": \"wecom_message\", "
	                     "\"template\": \"t\", \"trigger\": {\"at\": "
	                     "\"2026-01-05T02:00:00Z\"}, \"holdout_pct\": "
	                     "20}"));
	sw_clock(&w, "2026-01-05T02:00:00Z");
	/* Kill the scheduler once it is part way through the audience. */
	sw_wait_int(&w, 1, 60000,
	            "SELECT (count(*) >= 1000)::int FROM touches WHERE "
	            "campaign_id = 'spring'");
	sw_kill_scheduler(&w, 0);
	long long before = sw_sql_int(&w, "SELECT count(*) FROM touches WHERE "
	                                  "campaign_id = 'spring'");
	cr_assert_lt(before, 10000);
	sw_scheduler_start(&w, 0);
	sw_wait_int(&w, 1, 120000,
	            "SELECT at_done::int FROM campaigns WHERE id = 'spring'");
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touches WHERE "
	                            "campaign_id = 'spring'"),
	             10000);
	long long held = sw_sql_int(&w, "SELECT count(*) FROM touches WHERE "
	                                "campaign_id = 'spring' AND state = "
	                                "'held_out'");
	cr_assert_eq(held, expected);
	/* And it is the same set, customer by customer: the test's draw
	 * written to a table and compared. */
	pond_test_sql_exec(w.ingest.dsn, "CREATE TABLE drawn (k text)");
	char *sql = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&sql, &len);
	fprintf(f, "INSERT INTO drawn VALUES ('x')");
	for (int i = 1; i <= 10000; i++) {
		char key[32];
		snprintf(key, sizeof(key), "m%d", i);
		if (holdout_draw("spring", key, 20)) {
			fprintf(f, ",('%s')", key);
		}
	}
	fclose(f);
	pond_test_sql_exec(w.ingest.dsn, sql);
	free(sql);
	cr_assert_eq(sw_sql_int(&w,
	                        "SELECT count(*) FROM (SELECT customer_key "
	                        "FROM touches WHERE campaign_id = 'spring' "
	                        "AND state = 'held_out' EXCEPT SELECT k FROM "
	                        "drawn) d"),
	             0);
	/* One touch_changes record per customer: none selected twice. */
	long long changes =
	        sw_sql_int(&w, "SELECT count(DISTINCT touch_id) FROM "
	                       "touch_changes WHERE campaign_id = "
	                       "'spring' AND state IN ('held_out', "
	                       "'scheduled', 'deferred')");
	long long all =
	        sw_sql_int(&w, "SELECT count(*) FROM touch_changes WHERE "
	                       "campaign_id = 'spring' AND state IN "
	                       "('held_out', 'scheduled', 'deferred')");
	cr_assert_eq(changes, 10000, "%lld distinct, %lld in all", changes,
	             all);
	cr_assert_eq(all, 10000);
	sw_stop(&w);
}
