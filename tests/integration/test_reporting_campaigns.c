/*
 * test_reporting_campaigns.c - the campaign report from touches-stream
 * records (written here as the scheduler writes them) and orders sent
 * through ingest, against figures worked out by hand. POND_ATTRIBUTION_H
 * is the default 72.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_reporting.h"

/* clang-format off */
#define ADD(ch)       "\"contact_added\": {\"channel\": \"" ch "\"}"
#define ORDER(oid, f) "\"order_paid\": {\"order_id\": \"" oid "\", \"amount_fen\": " f "}"
/* clang-format on */

#define SEL "2025-12-01T00:00:00Z"

/* touch writes a touch's states: each state at its time, all selected
 * at sel. */
static void
touch(rw_world *w, const char *id, const char *key, const char *camp,
      const char *sel, const char *sent_at, const char *receipt,
      const char *receipt_at, int64_t cost)
{
	rw_touch_change(w, id, key, camp, "scheduled", NULL, sel, sel, 0);
	if (sent_at != NULL) {
		rw_touch_change(w, id, key, camp, "sent", NULL, sent_at, sel,
		                cost);
	}
	if (receipt != NULL) {
		rw_touch_change(w, id, key, camp, receipt, NULL, receipt_at,
		                sel, 0);
	}
}

Test(reporting_campaigns, conversions_cost_roi_and_lift, .timeout = 120)
{
	rw_world w;
	json_t *r, *row;

	rw_start(&w, "rpt-camp", NULL);
	/*
	 * Campaign c1 (10 fen a touch), c2 (5 fen), all selected 12-01:
	 *   u1 t1 c1 sent, delivered 12-01 02:00; order 1000 at 12-04
	 *      01:59:59 (within 72 h: a c1 conversion); order 700 at 12-04
	 *      02:00:00 (exactly 72 h: not one)
	 *   u2 t2 c1 delivered 12-02 00:00; t3 c2 (selected 12-02)
	 *      delivered 12-03 00:00; order 2000 at 12-03 12:00 goes to the
	 *      latest delivered touch, t3: a c2 conversion
	 *   u3 t4 c1 sent, failed 12-01 03:00; order 12-02: no conversion
	 *   u4 t5 c1 held out (selected 12-01 00:00); order 500 12-02:
	 *      a hold-out conversion
	 *   u5 t6 c1 held out; order 12-05 (over 72 h): none
	 *   u6 t7 c1 suppressed frequency_cap; u7 t8 c1 suppressed opt_out
	 *   u8 t9 c1 sent; its only receipt is "read" (12-01 05:00): read
	 *      means delivered; order 800 12-02 00:00 is a c1 conversion
	 *   reward 30 paid with campaign c1 (12-03)
	 * c1: audience 8; sent 4; delivered 3; failed 1; suppressed 1 + 1;
	 *     conversions 2, revenue 1000 + 800; cost 10 x 4 + 30 = 70; ROI
	 *     (1800 - 70) / 70; hold-out 2 with 1 conversion; lift = (2/4) /
	 *     (1/2) - 1 = 0.
	 * c2: audience 1; sent 1; delivered 1; conversions 1, revenue 2000;
	 *     cost 5; ROI 1995 / 5 = 399; no hold-out: lift null.
	 */
	/* clang-format off */
	rw_send(&w,
	        EV("u1-a", "u1", "2025-11-01T00:00:00Z", ADD("cards")) ","
	        EV("u1-o1", "u1", "2025-12-04T01:59:59Z", ORDER("u1o1", "1000")) ","
	        EV("u1-o2", "u1", "2025-12-04T02:00:00Z", ORDER("u1o2", "700")) ","
	        EV("u2-o", "u2", "2025-12-03T12:00:00Z", ORDER("u2o", "2000")) ","
	        EV("u3-o", "u3", "2025-12-02T00:00:00Z", ORDER("u3o", "300")) ","
	        EV("u4-o", "u4", "2025-12-02T00:00:00Z", ORDER("u4o", "500")) ","
	        EV("u5-o", "u5", "2025-12-05T00:00:00Z", ORDER("u5o", "500")) ","
	        EV("u8-o", "u8", "2025-12-02T00:00:00Z", ORDER("u8o", "800")) ","
	        EV("u1-rw", "u1", "2025-12-03T00:00:00Z",
	           "\"reward_paid\": {\"kind\": \"coupon\", \"amount_fen\": 30, "
	           "\"campaign_id\": \"c1\"}"));
	/* clang-format on */
	touch(&w, "t1", "u1", "c1", SEL, "2025-12-01T01:00:00Z", "delivered",
	      "2025-12-01T02:00:00Z", 10);
	touch(&w, "t2", "u2", "c1", SEL, "2025-12-01T01:00:00Z", "delivered",
	      "2025-12-02T00:00:00Z", 10);
	touch(&w, "t3", "u2", "c2", "2025-12-02T00:00:00Z",
	      "2025-12-02T01:00:00Z", "delivered", "2025-12-03T00:00:00Z", 5);
	touch(&w, "t4", "u3", "c1", SEL, "2025-12-01T01:00:00Z", "failed",
	      "2025-12-01T03:00:00Z", 10);
	touch(&w, "t9", "u8", "c1", SEL, "2025-12-01T01:00:00Z", "read",
	      "2025-12-01T05:00:00Z", 10);
	rw_touch_change(&w, "t5", "u4", "c1", "held_out", NULL, SEL, SEL, 0);
	rw_touch_change(&w, "t6", "u5", "c1", "held_out", NULL, SEL, SEL, 0);
	rw_touch_change(&w, "t7", "u6", "c1", "suppressed", "frequency_cap",
	                SEL, SEL, 0);
	rw_touch_change(&w, "t8", "u7", "c1", "suppressed", "opt_out", SEL,
	                SEL, 0);
	rw_settle(&w);

	r = rw_get(&w, "/v1/reports/campaigns?from=2025-12-01&to=2025-12-15");
	cr_assert_eq(json_array_size(json_object_get(r, "rows")), 2);
	row = rw_row(r, "campaign_id", "c1");
	RW_NUM(row, "audience", 8);
	RW_NUM(row, "sent", 4);
	RW_NUM(row, "delivered", 3);
	RW_NUM(row, "failed", 1);
	json_t *sup = json_object_get(row, "suppressed");
	RW_NUM(sup, "frequency_cap", 1);
	RW_NUM(sup, "opt_out", 1);
	RW_NUM(row, "conversions", 2);
	RW_NUM(row, "revenue_fen", 1800);
	RW_NUM(row, "cost_fen", 70);
	RW_NUM(row, "roi", 1730.0 / 70.0);
	RW_NUM(row, "holdout_size", 2);
	RW_NUM(row, "holdout_conversions", 1);
	RW_NUM(row, "lift", 0);
	row = rw_row(r, "campaign_id", "c2");
	RW_NUM(row, "audience", 1);
	RW_NUM(row, "conversions", 1);
	RW_NUM(row, "revenue_fen", 2000);
	RW_NUM(row, "cost_fen", 5);
	RW_NUM(row, "roi", 399);
	RW_NULL(row, "lift");
	json_decref(r);

	/* One campaign by path, as_of 12-02 00:00 exactly: t2's delivery
	 * and the orders of u4 and u8 (at that instant) are not yet known,
	 * nor the reward: delivered t1 and t9 (read), hold-out conversions
	 * 0, no conversion yet, cost 4 sent x 10 = 40: ROI -1. */
	r = rw_get(&w, "/v1/reports/campaigns/c1?from=2025-12-01&to=2025-12-15"
	               "&as_of=2025-12-02T00:00:00Z");
	cr_assert_eq(json_array_size(json_object_get(r, "rows")), 1);
	row = rw_row(r, "campaign_id", "c1");
	RW_NUM(row, "delivered", 2);
	RW_NUM(row, "holdout_conversions", 0);
	RW_NUM(row, "conversions", 0);
	RW_NUM(row, "cost_fen", 40);
	RW_NUM(row, "roi", -1);
	json_decref(r);
	rw_stop(&w);
}
