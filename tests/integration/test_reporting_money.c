/*
 * test_reporting_money.c - acquisition, LTV, payback and repurchase, end
 * to end (events through a real pond-ingest, the events stream, a real
 * pond-reporting, the reports over HTTP), compared with figures worked out
 * by hand below. POND_TZ is Asia/Shanghai (UTC+8): a date parameter
 * 2025-12-01 is 2025-11-30T16:00:00Z.
 *
 * The customers (all times UTC; "local" is Shanghai):
 *   a1  added cards 12-01 02:00 (guide g1, store s1); reward 200 at 03:00;
 *       order 3000 at 03:00 (day 1); refund 500 12-05 02:00 (day 5);
 *       order 2000 12-31 02:00 = acquisition + exactly 30 d (day 31);
 *       reward 50 at 2026-01-04 23:00
 *   a2  added cards 12-02 02:00 (guide g1); order 1000 11-30 10:00 (before
 *       the acquisition: in no LTV); order 4000 12-03 02:00 (day 2), fully
 *       refunded 12-04 02:00 (day 3); removed 12-05; re-added 12-10 (not
 *       new again)
 *   a3  added sms 12-03 02:00 (guide g2); order 800 at the very moment of
 *       the acquisition (day 1); order 200 12-07 15:59:59 = local 23:59:59
 *       on 12-07, the last second of the period (day 5); reward 100 12-20
 *   a4  added cards 11-30 16:00:00 = local 12-01 00:00: in the period
 *   a5  added cards 11-30 15:59:59 = local 11-30 23:59:59: not in it
 *   a6  added douyin 12-09 (arrives first), then, arriving later, added
 *       cards 12-04 02:00 (earlier: the acquisition moves to cards, into
 *       the period); order 1500 12-04 03:00 (day 1)
 *   a7  added sms 12-07 16:00:00 = local 12-08 00:00: out of the period
 *   spend  cards 1000 (12-01 05:00), cards 500 (12-06), sms 300 (12-03),
 *          douyin 700 (12-02), cards 9999 (12-07 20:00 = local 12-08 04:00)
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_reporting.h"

/* clang-format off */
#define SPEND(id, at, ch, fen)                                                \
	"{\"event_id\": \"" id "\", \"occurred_at\": \"" at                   \
	"\", \"channel_spend\": {\"channel\": \"" ch "\", \"amount_fen\": " fen \
	", \"item\": \"cards\", \"quantity\": 1}}"
#define ADD(ch)        "\"contact_added\": {\"channel\": \"" ch "\"}"
#define ADD_G(ch, g)   "\"contact_added\": {\"channel\": \"" ch "\", \"guide_id\": \"" g "\"}"
#define ORDER(oid, f)  "\"order_paid\": {\"order_id\": \"" oid "\", \"amount_fen\": " f "}"
#define REFUND(oid, f) "\"order_refunded\": {\"order_id\": \"" oid "\", \"amount_fen\": " f "}"
#define REWARD(f)      "\"reward_paid\": {\"kind\": \"red_packet\", \"amount_fen\": " f "}"
/* clang-format on */

#define PERIOD "from=2025-12-01&to=2025-12-08"

static void
send_history(rw_world *w)
{
	/* clang-format off */
	rw_send(w,
	        EV("a1-add", "a1", "2025-12-01T02:00:00Z",
	           "\"contact_added\": {\"channel\": \"cards\", \"guide_id\": "
	           "\"g1\", \"store_id\": \"s1\"}") ","
	        EV("a1-rp", "a1", "2025-12-01T03:00:00Z", REWARD("200")) ","
	        EV("a1-o1", "a1", "2025-12-01T03:00:00Z", ORDER("oa1", "3000")) ","
	        EV("a1-r1", "a1", "2025-12-05T02:00:00Z", REFUND("oa1", "500")) ","
	        EV("a1-o2", "a1", "2025-12-31T02:00:00Z", ORDER("oa2", "2000")) ","
	        EV("a1-rp2", "a1", "2026-01-04T23:00:00Z", REWARD("50")) ","
	        EV("a2-add", "a2", "2025-12-02T02:00:00Z", ADD_G("cards", "g1")) ","
	        EV("a2-o0", "a2", "2025-11-30T10:00:00Z", ORDER("ob0", "1000")) ","
	        EV("a2-o1", "a2", "2025-12-03T02:00:00Z", ORDER("ob1", "4000")) ","
	        EV("a2-r1", "a2", "2025-12-04T02:00:00Z", REFUND("ob1", "4000")) ","
	        EV("a2-rm", "a2", "2025-12-05T02:00:00Z",
	           "\"contact_removed\": {\"by\": \"customer\"}") ","
	        EV("a2-add2", "a2", "2025-12-10T02:00:00Z", ADD("cards")) ","
	        EV("a3-add", "a3", "2025-12-03T02:00:00Z", ADD_G("sms", "g2")) ","
	        EV("a3-o1", "a3", "2025-12-03T02:00:00Z", ORDER("oc1", "800")) ","
	        EV("a3-o2", "a3", "2025-12-07T15:59:59Z", ORDER("oc2", "200")) ","
	        EV("a3-rp", "a3", "2025-12-20T02:00:00Z", REWARD("100")) ","
	        EV("a4-add", "a4", "2025-11-30T16:00:00Z", ADD("cards")) ","
	        EV("a5-add", "a5", "2025-11-30T15:59:59Z", ADD("cards")) ","
	        EV("a6-late", "a6", "2025-12-09T02:00:00Z", ADD("douyin")) ","
	        EV("a6-o1", "a6", "2025-12-04T03:00:00Z", ORDER("of1", "1500")) ","
	        EV("a7-add", "a7", "2025-12-07T16:00:00Z", ADD("sms")) ","
	        SPEND("sp1", "2025-12-01T05:00:00Z", "cards", "1000") ","
	        SPEND("sp2", "2025-12-06T05:00:00Z", "cards", "500") ","
	        SPEND("sp3", "2025-12-03T05:00:00Z", "sms", "300") ","
	        SPEND("sp4", "2025-12-02T05:00:00Z", "douyin", "700") ","
	        SPEND("sp5", "2025-12-07T20:00:00Z", "cards", "9999"));
	/* clang-format on */
	rw_settle(w);
}

/* send_late sends a6's earlier add, which moves its acquisition. */
static void
send_late(rw_world *w)
{
	rw_send(w, EV("a6-early", "a6", "2025-12-04T02:00:00Z", ADD("cards")));
	rw_settle(w);
}

Test(reporting_money, acquisition_moves_with_a_late_add, .timeout = 120)
{
	rw_world w;
	json_t *r, *row;

	rw_start(&w, "rpt-acq", NULL);
	send_history(&w);

	/* Before a6's earlier add arrives: cards has a1, a2, a4 (a5 is a
	 * second before local midnight); spend 1000 + 500 = 1500 (the 9999
	 * is local 12-08); incentive = a1's 200 + 50 = 250 (a2 and a4 got
	 * none). CAC 1500 / 3 = 500; full (1500 + 250) / 3. */
	r = rw_get(&w, "/v1/reports/acquisition?" PERIOD);
	row = rw_row(r, "channel", "cards");
	RW_NUM(row, "new_customers", 3);
	RW_NUM(row, "spend_fen", 1500);
	RW_NUM(row, "cac_fen", 500);
	RW_NUM(row, "incentive_fen", 250);
	RW_NUM(row, "full_cac_fen", 1750.0 / 3.0);
	/* douyin: spend 700, a6's add (12-09) is outside: CAC null. */
	row = rw_row(r, "channel", "douyin");
	RW_NUM(row, "new_customers", 0);
	RW_NUM(row, "spend_fen", 700);
	RW_NULL(row, "cac_fen");
	RW_NULL(row, "full_cac_fen");
	json_decref(r);

	send_late(&w);
	/* a6 is now a cards customer of 12-04: cards 4 new, CAC 1500 / 4 =
	 * 375, full 1750 / 4 = 437.5. sms: a3 only (a7 is local 12-08),
	 * spend 300, incentive 100 (12-20, before as_of): 300 and 400.
	 * Total: 5 new, spend 1500 + 300 + 700 = 2500, CAC 500, incentive
	 * 350, full 2850 / 5 = 570. */
	r = rw_get(&w, "/v1/reports/acquisition?" PERIOD);
	cr_assert_eq(json_array_size(json_object_get(r, "rows")), 3);
	row = rw_row(r, "channel", "cards");
	RW_NUM(row, "new_customers", 4);
	RW_NUM(row, "cac_fen", 375);
	RW_NUM(row, "full_cac_fen", 437.5);
	row = rw_row(r, "channel", "sms");
	RW_NUM(row, "new_customers", 1);
	RW_NUM(row, "spend_fen", 300);
	RW_NUM(row, "cac_fen", 300);
	RW_NUM(row, "incentive_fen", 100);
	RW_NUM(row, "full_cac_fen", 400);
	row = json_object_get(r, "total");
	RW_NUM(row, "new_customers", 5);
	RW_NUM(row, "spend_fen", 2500);
	RW_NUM(row, "cac_fen", 500);
	RW_NUM(row, "incentive_fen", 350);
	RW_NUM(row, "full_cac_fen", 570);
	json_decref(r);

	/* as_of exactly at a1's 50 reward: it does not count (strict).
	 * cards incentive 200, full (1500 + 200) / 4 = 425. */
	r = rw_get(&w, "/v1/reports/acquisition?" PERIOD
	               "&as_of=2026-01-04T23:00:00Z&channel=cards");
	cr_assert_eq(json_array_size(json_object_get(r, "rows")), 1);
	row = rw_row(r, "channel", "cards");
	RW_NUM(row, "incentive_fen", 200);
	RW_NUM(row, "full_cac_fen", 425);
	RW_NUM(json_object_get(r, "total"), "full_cac_fen", 425);
	json_decref(r);

	/* as_of in the past, 12-04 02:00 exactly: a6's add (at that
	 * instant) is not yet known, and a1's 200 reward is: cards = a1,
	 * a2, a4, spend only before as_of = 1000; incentive 200. */
	r = rw_get(&w, "/v1/reports/acquisition?" PERIOD
	               "&as_of=2025-12-04T02:00:00Z&channel=cards");
	row = rw_row(r, "channel", "cards");
	RW_NUM(row, "new_customers", 3);
	RW_NUM(row, "spend_fen", 1000);
	RW_NUM(row, "incentive_fen", 200);
	json_decref(r);

	/* The same week in UTC: a4 (local 12-01 00:00 is 11-30 16:00Z) is
	 * out, a7 (12-07 16:00Z) is in, and the 9999 (12-07 20:00Z) is in.
	 * cards: a1, a2, a6; spend 1500 + 9999 = 11499. sms: a3, a7. */
	r = rw_get(&w, "/v1/reports/acquisition?from=2025-12-01T00:00:00Z"
	               "&to=2025-12-08T00:00:00Z");
	row = rw_row(r, "channel", "cards");
	RW_NUM(row, "new_customers", 3);
	RW_NUM(row, "spend_fen", 11499);
	row = rw_row(r, "channel", "sms");
	RW_NUM(row, "new_customers", 2);
	json_decref(r);
	rw_stop(&w);
}

Test(reporting_money, ltv_payback_and_repurchase, .timeout = 120)
{
	rw_world w;
	json_t *r, *row, *ltv;

	rw_start(&w, "rpt-ltv", NULL);
	send_history(&w);
	send_late(&w);

	/* LTV, cards cohort a1, a2, a4, a6 (4). Within 30 days: a1 3000 -
	 * 500 (the 2000 is at exactly 30 days: excluded) = 2500; a2 4000 -
	 * 4000 = 0 (the 1000 before its acquisition is not counted); a6
	 * 1500: 4000 / 4 = 1000. Within 60: + 2000 = 6000 / 4 = 1500.
	 * sms, a3: 800 + 200 = 1000 both. all (5): 5000 / 5 = 1000 and
	 * 7000 / 5 = 1400. */
	r = rw_get(&w, "/v1/reports/ltv?" PERIOD "&days=30,60");
	row = rw_row(r, "channel", "cards");
	RW_NUM(row, "cohort_size", 4);
	ltv = json_object_get(row, "ltv_fen");
	RW_NUM(ltv, "30", 1000);
	RW_NUM(ltv, "60", 1500);
	ltv = json_object_get(rw_row(r, "channel", "sms"), "ltv_fen");
	RW_NUM(ltv, "30", 1000);
	RW_NUM(ltv, "60", 1000);
	row = rw_row(r, "channel", "all");
	RW_NUM(row, "cohort_size", 5);
	ltv = json_object_get(row, "ltv_fen");
	RW_NUM(ltv, "30", 1000);
	RW_NUM(ltv, "60", 1400);
	json_decref(r);

	/* Payback with margin 0.3. cards: full CAC 1750 / 4; cohort net
	 * revenue by day: d1 3000 + 1500 = 4500, d2 + 4000 = 8500, d3 -
	 * 4000, d5 - 500, d31 + 2000. LTV x 0.3 >= 1750 / 4 means revenue
	 * x 0.3 >= 1750: d1 1350 no, d2 2550 yes -> 2 (the least day, though
	 * the refund of d3 takes it back below). sms: cost 400, revenue d1
	 * 800 x 0.3 = 240, d5 1000 x 0.3 = 300: never -> null. all: cost
	 * 2850; d1 5300 x 0.3 = 1590, d2 9300 x 0.3 = 2790 (just short),
	 * d3 5300, d5 5000, d31 7000 -> 2100: null. douyin: no customer:
	 * full CAC and payback null. */
	r = rw_get(&w, "/v1/reports/payback?" PERIOD "&margin=0.3");
	row = rw_row(r, "channel", "cards");
	RW_NUM(row, "full_cac_fen", 437.5);
	RW_NUM(row, "payback_days", 2);
	RW_NULL(rw_row(r, "channel", "sms"), "payback_days");
	RW_NULL(rw_row(r, "channel", "all"), "payback_days");
	RW_NULL(rw_row(r, "channel", "douyin"), "payback_days");
	RW_NULL(rw_row(r, "channel", "douyin"), "full_cac_fen");
	json_decref(r);
	/* Margin 0.5: sms 800 x 0.5 = 400 >= 400 on day 1 (equality
	 * reaches); all 5300 x 0.5 = 2650 < 2850, 9300 x 0.5 = 4650 -> 2. */
	r = rw_get(&w, "/v1/reports/payback?" PERIOD "&margin=0.5");
	RW_NUM(rw_row(r, "channel", "sms"), "payback_days", 1);
	RW_NUM(rw_row(r, "channel", "all"), "payback_days", 2);
	json_decref(r);
	/* Margin 0.2 for cards: d2 8500 x 0.2 = 1700 < 1750 and nothing
	 * later comes higher: null. */
	r = rw_get(&w, "/v1/reports/payback?" PERIOD "&margin=0.2");
	RW_NULL(rw_row(r, "channel", "cards"), "payback_days");
	json_decref(r);

	/* Repurchase in the local week: paid orders a1 1 (12-01), a2 1
	 * (12-03; its 11-30 order is local 11-30 18:00), a3 2 (12-03 and
	 * the local 23:59:59 of 12-07), a6 1: buyers 4, repeat 1 -> 0.25.
	 * Lifetime before as_of: a1 2, a2 2, a3 2, a6 1 (refunds change
	 * nothing): 4 and 3 -> 0.75. */
	r = rw_get(&w, "/v1/reports/repurchase?" PERIOD);
	row = json_object_get(r, "total");
	RW_NUM(row, "buyers", 4);
	RW_NUM(row, "repeat_buyers", 1);
	RW_NUM(row, "repurchase_rate", 0.25);
	RW_NUM(row, "lifetime_buyers", 4);
	RW_NUM(row, "lifetime_repeat_buyers", 3);
	RW_NUM(row, "lifetime_repurchase_rate", 0.75);
	cr_assert_eq(json_array_size(json_object_get(r, "rows")), 0);
	json_decref(r);
	rw_stop(&w);
}

Test(reporting_money, ties_break_by_event_id_bytes, .timeout = 120)
{
	rw_world w;
	json_t *r;

	rw_start(&w, "rpt-ties", NULL);
	/* Two adds at the same instant: "Zed" < "alpha" in byte order
	 * ('Z' is 0x5a, 'a' 0x61), though a linguistic order would put
	 * alpha first. The acquisition is Zed's channel, sms, whichever
	 * arrives first. */
	rw_send(&w, EV("alpha", "t1", "2025-12-02T00:00:00Z", ADD("cards")));
	rw_settle(&w);
	rw_send(&w, EV("Zed", "t1", "2025-12-02T00:00:00Z", ADD("sms")));
	rw_settle(&w);
	r = rw_get(&w, "/v1/reports/acquisition?" PERIOD);
	cr_assert_eq(json_array_size(json_object_get(r, "rows")), 1);
	RW_NUM(rw_row(r, "channel", "sms"), "new_customers", 1);
	json_decref(r);
	rw_stop(&w);
}

Test(reporting_money, bad_parameters_and_tokens, .timeout = 120)
{
	rw_world w;
	json_t *r;

	rw_start(&w, "rpt-bad", NULL);
	cr_assert_eq(rw_http(&w, "GET", NULL,
	                     "/v1/reports/acquisition?" PERIOD, NULL, NULL),
	             401);
	cr_assert_eq(rw_http(&w, "GET", "api_nope",
	                     "/v1/reports/acquisition?" PERIOD, NULL, NULL),
	             401);
	cr_assert_eq(rw_http(&w, "GET", RW_READ_TOKEN,
	                     "/v1/reports/acquisition?from=2025-12-01", NULL,
	                     &r),
	             400);
	cr_assert_str_eq(json_string_value(json_object_get(
	                         json_object_get(r, "error"), "message")),
	                 "to: required (RFC 3339 or YYYY-MM-DD)");
	json_decref(r);
	cr_assert_eq(rw_http(&w, "GET", RW_READ_TOKEN,
	                     "/v1/reports/acquisition?from=yesterday&to="
	                     "2025-12-08",
	                     NULL, NULL),
	             400);
	cr_assert_eq(rw_http(&w, "GET", RW_READ_TOKEN,
	                     "/v1/reports/acquisition?from=2025-12-08&to="
	                     "2025-12-01",
	                     NULL, NULL),
	             400);
	cr_assert_eq(rw_http(&w, "GET", RW_READ_TOKEN,
	                     "/v1/reports/ltv?" PERIOD "&days=30,x", NULL,
	                     NULL),
	             400);
	cr_assert_eq(rw_http(&w, "GET", RW_READ_TOKEN,
	                     "/v1/reports/payback?" PERIOD "&margin=-1", NULL,
	                     NULL),
	             400);
	cr_assert_eq(rw_http(&w, "GET", RW_READ_TOKEN,
	                     "/v1/reports/portrait?group_by=shoe_size", NULL,
	                     NULL),
	             400);
	cr_assert_eq(rw_http(&w, "GET", RW_READ_TOKEN,
	                     "/v1/reports/2025-12-31", NULL, NULL),
	             404);
	cr_assert_eq(rw_http(&w, "GET", RW_READ_TOKEN,
	                     "/v1/reports/acquisition?from=2025-02-30&to="
	                     "2025-12-08",
	                     NULL, NULL),
	             400);
	rw_stop(&w);
}
