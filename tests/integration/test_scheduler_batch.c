/*
 * test_scheduler_batch.c - many selections settled in one transaction.
 *
 * The scheduler settles a consumer batch's selections together (read
 * set-wise, decide in batch order, write set-wise). Here the scheduler is
 * down while one partition receives a burst of causes for the same four
 * customers and three campaigns, so that on restart it settles them in one
 * batch: the frequency cap across campaigns and the quota must run out
 * inside the batch exactly as they would one touch at a time, a consent
 * change in the middle of the batch must only affect the causes after it,
 * and replaying the whole batch must make nothing new.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream.h"
#include "test_scheduler.h"

/* batch_keys picks four customer keys of one events partition. */
static uint32_t
batch_keys(sw_world *w, char keys[4][16])
{
	uint32_t nparts = (uint32_t)sw_sql_int(
	        w,
	        "SELECT count(*) FROM stream_heads WHERE stream = 'events'");
	uint32_t part = pond_partition_of("bk0", nparts);
	int n = 0;

	for (int i = 0; n < 4 && i < 1000; i++) {
		char key[16];
		snprintf(key, sizeof(key), "bk%d", i);
		if (pond_partition_of(key, nparts) == part) {
			snprintf(keys[n++], sizeof(keys[0]), "%s", key);
		}
	}
	cr_assert_eq(n, 4);
	return (part);
}

/* The outcome worked out by hand for each cause, in stream order (see
 * the test): the customer (index into the keys), then aq, b, c. */
static const struct {
	int key;
	const char *aq, *b, *c;
} expected[] = {
        {0, "scheduled", "scheduled", "frequency_cap"},
        {1, "scheduled", "scheduled", "frequency_cap"},
        {2, "scheduled", "scheduled", "frequency_cap"},
        {3, "quota", "scheduled", "scheduled"},
        {0, "frequency_cap", "frequency_cap", "frequency_cap"},
        {2, "frequency_cap", "opt_out", "frequency_cap"},
        {1, "removed", "removed", "removed"},
};

Test(scheduler_batch, cap_quota_and_consent_inside_one_batch_replay_is_noop)
{
	static const char *const env[] = {"POND_FREQ_CAP=2/day,3/week",
	                                  "POND_QUIET_HOURS=", NULL};
	char k[4][16];
	sw_world w;

	sw_start(&w, "sched-batch", env);
	/* Selected in id order per cause: aq (wecom_message, quota 3), b
	 * (sms), c (wecom_message). */
	free(sw_campaign(&w, "{\"id\": \"aq\", \"name\": \"limited\", "
	                     "\"channel\": \"wecom_message\", \"template\": "
	                     "\"t\", "
	                     "\"trigger\": {\"event\": \"interaction\"}, "
	                     "\"quota\": 3}"));
	free(sw_campaign(&w, "{\"id\": \"b\", \"name\": \"b\", \"channel\": "
	                     "\"sms\", \"template\": \"t\", \"trigger\": "
	                     "{\"event\": \"interaction\"}}"));
	free(sw_campaign(&w, "{\"id\": \"c\", \"name\": \"c\", \"channel\": "
	                     "\"wecom_message\", \"template\": \"t\", "
	                     "\"trigger\": {\"event\": \"interaction\"}}"));
	uint32_t part = batch_keys(&w, k);
	/* A record of the partition that selects nothing (k3 opting in to
	 * sms, as it already is), so that its cursor row exists. */
	sw_send(&w,
	        "{\"event_id\": \"b0\", \"customer_key\": \"%s\", "
	        "\"occurred_at\": \"2026-01-05T03:00:00Z\", \"opt_in\": "
	        "{\"channel\": \"sms\"}}",
	        k[3]);
	sw_settle(&w);
	long long before = sw_sql_int(&w,
	                              "SELECT coalesce(max(seq), 0) FROM "
	                              "consumer_cursors WHERE consumer = "
	                              "'scheduler' AND stream = 'events' AND "
	                              "partition = %u",
	                              part);
	sw_kill_scheduler(&w, 0);
	/* All in one partition, in this stream order, on Monday 12:00
	 * local: k0, k1, k2 interact; k2 opts out of sms; k3 interacts; k0
	 * and k2 interact again. */
	sw_clock(&w, "2026-01-05T04:00:00Z");
	sw_send(&w,
	        "{\"event_id\": \"b1\", \"customer_key\": \"%s\", "
	        "\"occurred_at\": \"2026-01-05T04:00:01Z\", \"interaction\": "
	        "{\"kind\": \"message\"}},"
	        "{\"event_id\": \"b2\", \"customer_key\": \"%s\", "
	        "\"occurred_at\": \"2026-01-05T04:00:02Z\", \"interaction\": "
	        "{\"kind\": \"message\"}},"
	        "{\"event_id\": \"b3\", \"customer_key\": \"%s\", "
	        "\"occurred_at\": \"2026-01-05T04:00:03Z\", \"interaction\": "
	        "{\"kind\": \"message\"}},"
	        "{\"event_id\": \"b4\", \"customer_key\": \"%s\", "
	        "\"occurred_at\": \"2026-01-05T04:00:04Z\", \"opt_out\": "
	        "{\"channel\": \"sms\"}},"
	        "{\"event_id\": \"b5\", \"customer_key\": \"%s\", "
	        "\"occurred_at\": \"2026-01-05T04:00:05Z\", \"interaction\": "
	        "{\"kind\": \"message\"}},"
	        "{\"event_id\": \"b6\", \"customer_key\": \"%s\", "
	        "\"occurred_at\": \"2026-01-05T04:00:06Z\", \"interaction\": "
	        "{\"kind\": \"message\"}},"
	        "{\"event_id\": \"b7\", \"customer_key\": \"%s\", "
	        "\"occurred_at\": \"2026-01-05T04:00:07Z\", \"interaction\": "
	        "{\"kind\": \"message\"}},"
	        "{\"event_id\": \"b8\", \"customer_key\": \"%s\", "
	        "\"occurred_at\": \"2026-01-05T04:00:08Z\", "
	        "\"contact_removed\": {\"by\": \"customer\"}},"
	        "{\"event_id\": \"b9\", \"customer_key\": \"%s\", "
	        "\"occurred_at\": \"2026-01-05T04:00:09Z\", \"interaction\": "
	        "{\"kind\": \"message\"}},"
	        "{\"event_id\": \"b10\", \"customer_key\": \"%s\", "
	        "\"occurred_at\": \"2026-01-05T04:00:10Z\", "
	        "\"contact_added\": {\"channel\": \"poster\"}}",
	        k[0], k[1], k[2], k[2], k[3], k[0], k[2], k[1], k[1], k[1]);
	sw_scheduler_start(&w, 0);
	sw_settle(&w);
	/* By hand, with 2/day and a quota of 3, one cause at a time:
	 *   k0 #1: aq scheduled (quota 2 left), b scheduled, c capped (2)
	 *   k1 #1: aq scheduled (1 left), b scheduled, c capped
	 *   k2 #1: aq scheduled (0 left), b scheduled (its opt-out comes
	 *          after it), c capped
	 *   k3 #1: aq quota (none left; not counted), b, c scheduled
	 *   k0 #2: all three capped (the cap comes before the quota)
	 *   k2 #2: aq capped, b opt_out (consent before the cap), c capped
	 *   k1 removes the contact, interacts (#2: all three removed, the
	 *          first rule), then adds the contact again (after #2)
	 * 21 touches: 8 scheduled, 8 capped, 1 quota, 1 opt_out, 3 removed.
	 */
	char want[2000] = "";
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
		const char *o[] = {expected[i].aq, expected[i].b,
		                   expected[i].c};
		for (int c = 0; c < 3; c++) {
			char one[80];
			snprintf(one, sizeof(one), "%s%s %s %s",
			         *want != '\0' ? ", " : "", k[expected[i].key],
			         c == 0   ? "aq"
			         : c == 1 ? "b"
			                  : "c",
			         o[c]);
			strcat(want, one);
		}
	}
	char *got = pond_test_sql_text(
	        w.ingest.dsn,
	        "SELECT string_agg(customer_key || ' ' || campaign_id || ' ' "
	        "|| CASE WHEN state = 'suppressed' THEN reason ELSE state "
	        "END, "
	        "', ' ORDER BY selected_at, campaign_id) FROM touches");
	cr_assert_str_eq(got, want);
	free(got);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touches"), 21);
	cr_assert_eq(sw_sql_int(&w, "SELECT used FROM campaigns WHERE id = "
	                            "'aq'"),
	             3);
	/* The ledger: two touches each, on Monday. */
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM freq_ledger WHERE "
	                            "day = '2026-01-05' AND touches = 2"),
	             4);
	cr_assert_eq(sw_sql_int(&w, "SELECT coalesce(sum(touches), 0) FROM "
	                            "freq_ledger"),
	             8);
	/* One transaction settled them all (touch_changes rows are never
	 * updated, so their xmin is the inserting transaction). */
	cr_assert_eq(sw_sql_int(&w, "SELECT count(DISTINCT xmin::text) FROM "
	                            "touch_changes WHERE state IN "
	                            "('scheduled', 'suppressed')"),
	             1);
	long long changes =
	        sw_sql_int(&w, "SELECT count(*) FROM touch_changes "
	                       "WHERE state IN ('scheduled', "
	                       "'suppressed')");
	cr_assert_eq(changes, 21);

	/* Replay the whole batch: rewind the cursor to before it. */
	sw_kill_scheduler(&w, 0);
	cr_assert_eq(
	        sw_sql_int(&w,
	                   "WITH u AS (UPDATE consumer_cursors SET seq = "
	                   "%lld WHERE consumer = 'scheduler' AND stream = "
	                   "'events' AND partition = %u RETURNING 1) "
	                   "SELECT count(*) FROM u",
	                   before, part),
	        1);
	sw_scheduler_start(&w, 0);
	sw_settle(&w);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touches"), 21);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touch_changes WHERE "
	                            "state IN ('scheduled', 'suppressed')"),
	             changes);
	cr_assert_eq(sw_sql_int(&w, "SELECT used FROM campaigns WHERE id = "
	                            "'aq'"),
	             3);
	cr_assert_eq(sw_sql_int(&w, "SELECT coalesce(sum(touches), 0) FROM "
	                            "freq_ledger"),
	             8);
	sw_stop(&w);
}
