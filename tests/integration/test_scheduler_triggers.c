/*
 * test_scheduler_triggers.c - tag triggers and audiences, with a real
 * pond-tagging between ingest and the scheduler.
 *
 * A rule tag "vip" (orders >= 2) goes on for ann (two orders) and not for
 * bob (one): the tag_added campaign touches ann once, with a touch id from
 * the tag_changes record. A one-shot campaign whose audience is "tags
 * contains vip" selects ann only: bob is not in its audience and is not
 * recorded at all. Deleting the rule takes the tag off: the tag_removed
 * campaign touches ann.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_scheduler.h"

#define ORDER(id, key)                                                        \
	"{\"event_id\": \"" id "\", \"customer_key\": \"" key                 \
	"\", \"occurred_at\": \"2026-01-05T03:00:00Z\", \"order_paid\": "     \
	"{\"order_id\": \"" id "\", \"amount_fen\": 1000}}"

static pond_test_proc *
tagging_start(sw_world *w)
{
	char e_dsn[600], e_port[32], e_sub[96], e_pub[96];
	char e_clock[PATH_MAX + 32];
	uint16_t port = pond_test_free_port();

	snprintf(e_dsn, sizeof(e_dsn), "POND_DSN=%s", w->ingest.dsn);
	snprintf(e_port, sizeof(e_port), "POND_HTTP_PORT=%u", port);
	snprintf(e_sub, sizeof(e_sub), "POND_EVENTS_SUB_URLS=%s",
	         w->ingest.pub_url);
	snprintf(e_pub, sizeof(e_pub),
	         "POND_TAG_CHANGES_PUB_URL=tcp://127.0.0.1:%u",
	         pond_test_free_port());
	snprintf(e_clock, sizeof(e_clock), "POND_TEST_CLOCK=%s",
	         w->ingest.clock);
	const char *env[] = {e_dsn,
	                     e_port,
	                     e_sub,
	                     e_pub,
	                     e_clock,
	                     "POND_HTTP_ADDR=127.0.0.1",
	                     "POND_TAGGING_SWEEP_MS=50",
	                     "POND_TZ=Asia/Shanghai",
	                     NULL};
	pond_test_proc *p =
	        pond_test_spawn("pond-tagging", env, "sched-triggers-tagging");
	pond_test_wait_ready(p, port, "/healthz", 30000);
	return (p);
}

static void
wait_tags_applied(sw_world *w)
{
	sw_wait_int(
	        w, 0, 30000,
	        "SELECT (SELECT coalesce(sum(head), 0) FROM stream_heads "
	        "WHERE stream = 'tag_changes') - (SELECT coalesce(sum(seq), "
	        "0) FROM consumer_cursors WHERE consumer = 'scheduler' AND "
	        "stream = 'tag_changes')");
}

Test(scheduler_triggers, tag_added_removed_and_audience)
{
	sw_world w;

	sw_start(&w, "sched-triggers", NULL);
	pond_test_proc *tagging = tagging_start(&w);
	pond_test_sql_exec(w.ingest.dsn,
	                   "INSERT INTO tag_rules (tag, condition) VALUES "
	                   "('vip', '{\"field\": \"orders\", \"op\": \">=\", "
	                   "\"value\": 2}'); UPDATE pond_settings SET value = "
	                   "(value::bigint + 1)::text WHERE key = "
	                   "'tag_rules_version'");
	free(sw_campaign(&w,
	                 "{\"id\": \"vip-hello\", \"name\": \"vip "
	                 "hello\", \"channel\": \"wecom_message\", "
	                 "\"template\": \"t\", \"trigger\": {\"tag_added\": "
	                 "\"vip\"}}"));
	free(sw_campaign(&w,
	                 "{\"id\": \"vip-bye\", \"name\": \"vip bye\", "
	                 "\"channel\": \"wecom_message\", \"template\": "
	                 "\"t\", \"trigger\": {\"tag_removed\": \"vip\"}}"));
	sw_clock(&w, "2026-01-05T04:00:00Z");
	sw_send(&w, ORDER("o1", "ann") "," ORDER("o2", "ann") "," ORDER(
	                    "o3", "bob"));
	sw_settle(&w);
	sw_wait_int(&w, 1, 30000,
	            "SELECT count(*) FROM customer_tags WHERE tag = 'vip'");
	wait_tags_applied(&w);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touches WHERE "
	                            "campaign_id = 'vip-hello'"),
	             1);
	/* The touch id names the tag_changes record that caused it. */
	cr_assert_eq(sw_sql_int(&w,
	                        "SELECT count(*) FROM touches t JOIN "
	                        "tag_changes c ON t.touch_id = 'vip-hello/t' "
	                        "|| c.seq || '/ann' AND c.customer_key = "
	                        "'ann' AND c.tag = 'vip' AND c.added"),
	             1);
	/* A one-shot over "has the vip tag": ann only. */
	free(sw_campaign(&w, "{\"id\": \"vip-offer\", \"name\": \"vip "
	                     "offer\", \"channel\": \"sms\", \"template\": "
	                     "\"t\", \"trigger\": {\"at\": "
	                     "\"2026-01-06T02:00:00Z\"}, \"audience\": "
	                     "{\"field\": \"tags\", \"op\": \"contains\", "
	                     "\"value\": \"vip\"}}"));
	sw_clock(&w, "2026-01-06T02:00:00Z");
	sw_wait_int(&w, 1, 30000,
	            "SELECT at_done::int FROM campaigns WHERE id = "
	            "'vip-offer'");
	cr_assert_eq(sw_sql_int(&w,
	                        "SELECT count(*) FROM touches WHERE "
	                        "campaign_id = 'vip-offer' AND customer_key "
	                        "= 'ann'"),
	             1);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touches WHERE "
	                            "campaign_id = 'vip-offer'"),
	             1);
	/* The rule goes: the tag comes off ann, and vip-bye touches her
	 * (next day, so the frequency cap is not what decides). */
	sw_clock(&w, "2026-01-07T04:00:00Z");
	pond_test_sql_exec(w.ingest.dsn,
	                   "DELETE FROM tag_rules WHERE tag = 'vip'; UPDATE "
	                   "pond_settings SET value = (value::bigint + "
	                   "1)::text WHERE key = 'tag_rules_version'");
	sw_wait_int(&w, 0, 30000,
	            "SELECT count(*) FROM customer_tags WHERE tag = 'vip'");
	wait_tags_applied(&w);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touches WHERE "
	                            "campaign_id = 'vip-bye' AND customer_key "
	                            "= 'ann' AND state <> 'suppressed'"),
	             1);
	cr_assert_eq(pond_test_stop(tagging), 0);
	sw_stop(&w);
}
