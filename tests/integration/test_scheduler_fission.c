/*
 * test_scheduler_fission.c - fission and conversion rewards, end to end
 * through ingest.
 *
 * - invite 3 friends: the inviter shares, referral contact_added events
 *   (inviter_key set) arrive one by one, a re-add of the same invitee
 *   counts once; at the third invitee the inviter gets exactly one reward
 *   touch, and a fourth invitee changes nothing; another inviter with two
 *   invitees gets none;
 * - a conversion reward: an order within 72 h after a delivered touch
 *   grants the campaign's reward once; a second order does not, nor an
 *   order 73 h after; the touch carries the customer's phone alias.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_scheduler.h"

#define ADDED(id, key, inviter)                                               \
	"{\"event_id\": \"" id "\", \"customer_key\": \"" key                 \
	"\", \"occurred_at\": \"2026-01-05T03:00:00Z\", \"contact_added\": "  \
	"{\"channel\": \"referral\", \"inviter_key\": \"" inviter             \
	"\", \"campaign_id\": \"invite3\"}}"

static long long
rewards(sw_world *w, const char *key)
{
	return (sw_sql_int(w,
	                   "SELECT count(*) FROM touches WHERE customer_key = "
	                   "'%s' AND kind = 'reward'",
	                   key));
}

Test(scheduler_fission, third_invitee_earns_one_reward)
{
	sw_world w;

	sw_start(&w, "sched-fission", NULL);
	sw_gateway_start(&w, NULL);
	free(sw_campaign(&w, "{\"id\": \"invite3\", \"name\": \"invite 3 "
	                     "friends\", \"channel\": \"wecom_message\", "
	                     "\"template\": \"invite_poster\", \"trigger\": "
	                     "{\"event\": \"invite_shared\"}, \"fission\": "
	                     "{\"invitees_needed\": 3, \"reward\": {\"kind\": "
	                     "\"gift\", \"amount_fen\": 2000}}}"));
	sw_clock(&w, "2026-01-05T04:00:00Z");
	sw_send(&w, "{\"event_id\": \"s1\", \"customer_key\": \"ivy\", "
	            "\"occurred_at\": \"2026-01-05T02:00:00Z\", "
	            "\"invite_shared\": {\"campaign_id\": \"invite3\"}}");
	sw_send(&w,
	        ADDED("x1", "xa", "ivy") "," ADDED("x2", "xb", "ivy") "," ADDED(
	                "x2b", "xb",
	                "ivy") "," ADDED("j1", "ya",
	                                 "jon") "," ADDED("j2", "yb", "jon"));
	sw_settle(&w);
	/* ivy has 2 distinct invitees (xb twice counts once); jon 2. */
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM fission_invitees "
	                            "WHERE customer_key = 'ivy'"),
	             2);
	cr_assert_eq(rewards(&w, "ivy"), 0);
	sw_send(&w, ADDED("x3", "xc", "ivy"));
	sw_settle(&w);
	cr_assert_eq(rewards(&w, "ivy"), 1);
	sw_send(&w, ADDED("x4", "xd", "ivy"));
	sw_settle(&w);
	cr_assert_eq(rewards(&w, "ivy"), 1);
	cr_assert_eq(rewards(&w, "jon"), 0);
	/* The reward carries what to give, and is sent to the gateway. */
	cr_assert_eq(sw_sql_int(&w,
	                        "SELECT count(*) FROM touches WHERE "
	                        "customer_key = 'ivy' AND kind = 'reward' AND "
	                        "params->>'reward_kind' = 'gift' AND "
	                        "params->>'reward_amount_fen' = '2000'"),
	             1);
	sw_wait_int(&w, 1, 20000,
	            "SELECT count(*) FROM touch_changes WHERE customer_key = "
	            "'ivy' AND state = 'sent' AND touch_id = "
	            "'invite3/fission/ivy'");
	/* The share itself triggered the campaign's poster touch. */
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touches WHERE "
	                            "customer_key = 'ivy' AND kind = "
	                            "'marketing'"),
	             1);
	sw_stop(&w);
}

Test(scheduler_fission, conversion_reward_once)
{
	static const char *const gw_env[] = {"POND_GATEWAY_DELIVER_PCT=100",
	                                     NULL};
	sw_world w;

	sw_start(&w, "sched-reward", NULL);
	sw_gateway_start(&w, gw_env);
	free(sw_campaign(&w, "{\"id\": \"welcome\", \"name\": \"welcome red "
	                     "packet\", \"channel\": \"wecom_message\", "
	                     "\"template\": \"welcome\", \"trigger\": "
	                     "{\"event\": \"contact_added\"}, \"reward\": "
	                     "{\"kind\": \"red_packet\", \"amount_fen\": "
	                     "500}}"));
	sw_clock(&w, "2026-01-05T04:00:00Z");
	sw_send(&w, "{\"event_id\": \"a1\", \"customer_key\": \"ann\", "
	            "\"occurred_at\": \"2026-01-05T04:00:00Z\", "
	            "\"aliases\": [{\"kind\": \"phone\", \"value\": "
	            "\"13800000000\"}], "
	            "\"contact_added\": {\"channel\": \"cards\"}}");
	/* Delivered at the clock's 04:00Z (the gateway's receipt time). */
	sw_wait_int(&w, 1, 20000,
	            "SELECT count(*) FROM touches WHERE customer_key = 'ann' "
	            "AND delivered_at = '2026-01-05T04:00:00Z'");
	/* The touch reached the gateway with the customer's phone. */
	cr_assert(pond_test_log_wait("sched-reward-gateway-0",
	                             "touch_id=welcome/", 10000));
	cr_assert(pond_test_log_wait("sched-reward-gateway-0", "aliases=1",
	                             10000));
	/* An order 71 h later converts (72 h window): one reward of 500. */
	sw_clock(&w, "2026-01-08T03:00:00Z");
	sw_send(&w, "{\"event_id\": \"o1\", \"customer_key\": \"ann\", "
	            "\"occurred_at\": \"2026-01-08T03:00:00Z\", "
	            "\"order_paid\": {\"order_id\": \"o1\", \"amount_fen\": "
	            "9900}},"
	            "{\"event_id\": \"o2\", \"customer_key\": \"ann\", "
	            "\"occurred_at\": \"2026-01-08T03:30:00Z\", "
	            "\"order_paid\": {\"order_id\": \"o2\", \"amount_fen\": "
	            "100}}");
	sw_settle(&w);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touch_changes WHERE "
	                            "state = 'reward' AND reason = "
	                            "'red_packet'"),
	             1);
	/* bob's order comes 73 h after his delivery: no conversion. */
	sw_send(&w, "{\"event_id\": \"b1\", \"customer_key\": \"bob\", "
	            "\"occurred_at\": \"2026-01-08T03:00:00Z\", "
	            "\"contact_added\": {\"channel\": \"cards\"}}");
	sw_wait_int(&w, 1, 20000,
	            "SELECT count(*) FROM touches WHERE customer_key = 'bob' "
	            "AND delivered_at IS NOT NULL");
	sw_clock(&w, "2026-01-11T04:00:00Z");
	sw_send(&w, "{\"event_id\": \"b2\", \"customer_key\": \"bob\", "
	            "\"occurred_at\": \"2026-01-11T04:00:00Z\", "
	            "\"order_paid\": {\"order_id\": \"b2\", \"amount_fen\": "
	            "100}}");
	sw_settle(&w);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touch_changes WHERE "
	                            "state = 'reward'"),
	             1);
	sw_stop(&w);
}
