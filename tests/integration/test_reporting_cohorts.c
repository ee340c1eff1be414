/*
 * test_reporting_cohorts.c - lifecycle, portrait, retention, funnel,
 * fission, guides and one customer's view, end to end, against figures
 * worked out by hand in the comments. POND_TZ is Asia/Shanghai (UTC+8);
 * 2025-12-01, 12-08 and 12-15 are Mondays.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_reporting.h"

/* clang-format off */
#define ADD(ch)        "\"contact_added\": {\"channel\": \"" ch "\"}"
#define ORDER(oid, f)  "\"order_paid\": {\"order_id\": \"" oid "\", \"amount_fen\": " f "}"
#define REFUND(oid, f) "\"order_refunded\": {\"order_id\": \"" oid "\", \"amount_fen\": " f "}"
#define MEMBER         "\"member_joined\": {\"tier\": \"gold\"}"
#define TOUCHED        "\"interaction\": {\"kind\": \"message\"}"
#define REGION(r)      "\"profile_updated\": {\"region\": \"" r "\"}"
#define INDUSTRY(i)    "\"profile_updated\": {\"industry\": \"" i "\"}"
/* clang-format on */

/* row_of returns the row whose field key equals the number n. */
static json_t *
stage(json_t *r, const char *name)
{
	return (rw_row(r, "stage", name));
}

/* value_row returns the portrait row of value (NULL: the null row). */
static json_t *
value_row(json_t *r, const char *value)
{
	json_t *row;
	size_t i;

	json_array_foreach(json_object_get(r, "rows"), i, row)
	{
		json_t *v = json_object_get(row, "value");
		if ((value == NULL && json_is_null(v)) ||
		    (value != NULL && json_is_string(v) &&
		     strcmp(json_string_value(v), value) == 0)) {
			return (row);
		}
	}
	cr_assert_fail("no portrait row %s", value ? value : "null");
	return (NULL);
}

/*
 *   b1  added cards 12-01; region Shanghai 12-01, Beijing 12-10;
 *       member_joined 12-20; tag vip on 12-01
 *   b2  added sms 12-01; region Shanghai 12-02; tag vip on 12-01, off 12-10
 *   b3  added cards 12-02; order 12-03; industry retail 12-03 (no region);
 *       tag coupon_hunter on 12-02
 *   b4  added cards 12-02; orders 12-03, 12-04 (02:00); region Shanghai
 *       12-05 02:00; an industry-only update 12-12 keeps the region
 *   b5  added sms 12-03; orders 12-03, 12-04, 12-05, one fully refunded
 *   b6  no add, only region Shenzhen 12-04 02:00
 *   b7  added douyin 12-04 13:00; removed 12-05
 */
static void
send_people(rw_world *w)
{
	/* clang-format off */
	rw_send(w,
	        EV("b1-add", "b1", "2025-12-01T02:00:00Z", ADD("cards")) ","
	        EV("b1-r1", "b1", "2025-12-01T03:00:00Z", REGION("Shanghai")) ","
	        EV("b1-r2", "b1", "2025-12-10T03:00:00Z", REGION("Beijing")) ","
	        EV("b1-m", "b1", "2025-12-20T03:00:00Z", MEMBER) ","
	        EV("b2-add", "b2", "2025-12-01T02:00:00Z", ADD("sms")) ","
	        EV("b2-r1", "b2", "2025-12-02T03:00:00Z", REGION("Shanghai")) ","
	        EV("b3-add", "b3", "2025-12-02T02:00:00Z", ADD("cards")) ","
	        EV("b3-o1", "b3", "2025-12-03T02:00:00Z", ORDER("b3o1", "100")) ","
	        EV("b3-i", "b3", "2025-12-03T03:00:00Z", INDUSTRY("retail")) ","
	        EV("b4-add", "b4", "2025-12-02T02:00:00Z", ADD("cards")) ","
	        EV("b4-o1", "b4", "2025-12-03T02:00:00Z", ORDER("b4o1", "100")) ","
	        EV("b4-o2", "b4", "2025-12-04T02:00:00Z", ORDER("b4o2", "100")) ","
	        EV("b4-r1", "b4", "2025-12-05T02:00:00Z", REGION("Shanghai")) ","
	        EV("b4-i", "b4", "2025-12-12T02:00:00Z", INDUSTRY("food")) ","
	        EV("b5-add", "b5", "2025-12-03T01:00:00Z", ADD("sms")) ","
	        EV("b5-o1", "b5", "2025-12-03T02:00:00Z", ORDER("b5o1", "100")) ","
	        EV("b5-o2", "b5", "2025-12-04T02:00:00Z", ORDER("b5o2", "100")) ","
	        EV("b5-o3", "b5", "2025-12-05T02:00:00Z", ORDER("b5o3", "100")) ","
	        EV("b5-f", "b5", "2025-12-06T02:00:00Z", REFUND("b5o3", "100")) ","
	        EV("b6-r", "b6", "2025-12-04T02:00:00Z", REGION("Shenzhen")) ","
	        EV("b7-add", "b7", "2025-12-04T13:00:00Z", ADD("douyin")) ","
	        EV("b7-rm", "b7", "2025-12-05T02:00:00Z",
	           "\"contact_removed\": {\"by\": \"staff\"}"));
	/* clang-format on */
	rw_tag_change(w, "b1", "vip", true, "2025-12-01T04:00:00Z");
	rw_tag_change(w, "b2", "vip", true, "2025-12-01T04:00:00Z");
	rw_tag_change(w, "b2", "vip", false, "2025-12-10T04:00:00Z");
	rw_tag_change(w, "b3", "coupon_hunter", true, "2025-12-02T04:00:00Z");
	rw_settle(w);
}

Test(reporting_cohorts, lifecycle_and_portrait, .timeout = 120)
{
	rw_world w;
	json_t *r;

	rw_start(&w, "rpt-life", NULL);
	send_people(&w);

	/* Now: b1 member; b2, b6 (no add, still a customer), b7 (removed)
	 * potential; b3 one order; b4 two; b5 three (a refund changes
	 * revenue only): 3, 1, 1, 1, 1 of 7. */
	r = rw_get(&w, "/v1/reports/lifecycle");
	cr_assert_eq(json_array_size(json_object_get(r, "rows")), 5);
	RW_NUM(stage(r, "potential"), "customers", 3);
	RW_NUM(stage(r, "first_purchase"), "customers", 1);
	RW_NUM(stage(r, "repurchase"), "customers", 1);
	RW_NUM(stage(r, "loyal"), "customers", 1);
	RW_NUM(stage(r, "member"), "customers", 1);
	RW_NUM(json_object_get(r, "total"), "customers", 7);
	cr_assert(json_is_null(json_object_get(r, "from")));
	json_decref(r);

	/* At 12-04 12:00Z: b7 (13:00) is not yet a customer; b1 not yet a
	 * member (12-20): potential b1, b2, b6; b3 one order; b4 two; b5
	 * two (its third is 12-05): 3, 1, 2, 0, 0. */
	r = rw_get(&w, "/v1/reports/lifecycle?as_of=2025-12-04T12:00:00Z");
	RW_NUM(stage(r, "potential"), "customers", 3);
	RW_NUM(stage(r, "first_purchase"), "customers", 1);
	RW_NUM(stage(r, "repurchase"), "customers", 2);
	RW_NUM(stage(r, "loyal"), "customers", 0);
	RW_NUM(stage(r, "member"), "customers", 0);
	json_decref(r);

	/* Region now: b1 Beijing (latest), b2 Shanghai, b4 Shanghai (an
	 * industry-only update keeps it), b6 Shenzhen, b3 b5 b7 none. */
	r = rw_get(&w, "/v1/reports/portrait?group_by=region");
	cr_assert_eq(json_array_size(json_object_get(r, "rows")), 4);
	RW_NUM(value_row(r, NULL), "customers", 3);
	RW_NUM(value_row(r, NULL), "share", 3.0 / 7.0);
	RW_NUM(value_row(r, "Shanghai"), "customers", 2);
	RW_NUM(value_row(r, "Shanghai"), "share", 2.0 / 7.0);
	RW_NUM(value_row(r, "Beijing"), "customers", 1);
	RW_NUM(value_row(r, "Shenzhen"), "customers", 1);
	json_decref(r);
	/* At local midnight of 12-06 (12-05 16:00Z) b1 was still in
	 * Shanghai, and b4's 12-05 02:00 update is known: Shanghai 3. */
	r = rw_get(&w,
	           "/v1/reports/portrait?group_by=region&as_of=2025-12-06");
	RW_NUM(value_row(r, "Shanghai"), "customers", 3);
	json_decref(r);
	/* Channel: cards b1 b3 b4, sms b2 b5, douyin b7, none b6. */
	r = rw_get(&w, "/v1/reports/portrait?group_by=channel");
	RW_NUM(value_row(r, "cards"), "customers", 3);
	RW_NUM(value_row(r, "sms"), "customers", 2);
	RW_NUM(value_row(r, "douyin"), "customers", 1);
	RW_NUM(value_row(r, NULL), "customers", 1);
	json_decref(r);
	/* Lifecycle as a portrait: the lifecycle report's counts. */
	r = rw_get(&w, "/v1/reports/portrait?group_by=lifecycle");
	RW_NUM(value_row(r, "potential"), "customers", 3);
	RW_NUM(value_row(r, "member"), "customers", 1);
	json_decref(r);
	/* Tags now: vip b1 (b2's went off 12-10), coupon_hunter b3, and
	 * five customers with no tag; at 12-05 vip was on b1 and b2. */
	r = rw_get(&w, "/v1/reports/portrait?group_by=tag");
	RW_NUM(value_row(r, "vip"), "customers", 1);
	RW_NUM(value_row(r, "vip"), "share", 1.0 / 7.0);
	RW_NUM(value_row(r, "coupon_hunter"), "customers", 1);
	RW_NUM(value_row(r, NULL), "customers", 5);
	json_decref(r);
	r = rw_get(&w, "/v1/reports/portrait?group_by=tag&as_of=2025-12-05");
	RW_NUM(value_row(r, "vip"), "customers", 2);
	RW_NUM(value_row(r, NULL), "customers", 4);
	json_decref(r);
	/* Only the vip customers (b1), by region: Beijing, share 1. */
	r = rw_get(&w, "/v1/reports/portrait?group_by=region&tag=vip");
	cr_assert_eq(json_array_size(json_object_get(r, "rows")), 1);
	RW_NUM(value_row(r, "Beijing"), "share", 1);
	json_decref(r);

	/* One customer: b1's profile, stage, tags and its four events,
	 * newest first. */
	r = rw_get(&w, "/v1/customers/b1");
	json_t *profile = json_object_get(r, "profile");
	cr_assert_str_eq(json_string_value(json_object_get(profile, "region")),
	                 "Beijing");
	cr_assert_str_eq(json_string_value(json_object_get(r, "lifecycle")),
	                 "member");
	cr_assert_eq(json_array_size(json_object_get(r, "tags")), 1);
	cr_assert_eq(json_array_size(json_object_get(r, "events")), 4);
	cr_assert_str_eq(
	        json_string_value(json_object_get(
	                json_array_get(json_object_get(r, "events"), 0),
	                "event_id")),
	        "b1-m");
	json_decref(r);
	cr_assert_eq(rw_http(&w, "GET", RW_READ_TOKEN, "/v1/customers/nobody",
	                     NULL, NULL),
	             404);
	rw_stop(&w);
}

Test(reporting_cohorts, retention_in_local_weeks, .timeout = 120)
{
	rw_world w;
	json_t *r, *row, *ret;

	rw_start(&w, "rpt-ret", NULL);
	/*
	 * Week of 12-01 (local): r1 added 12-01 02:00, r2 12-03, r3 at
	 * 11-30 16:30Z = local 12-01 00:30 (in UTC it would be the week
	 * before). Week of 12-08: r4 added 12-08 02:00.
	 *   r1: interaction 12-01 01:00, before its acquisition (not
	 *       counted); order 12-09 -> week 1
	 *   r2: interaction 12-04 -> week 0; interaction 12-21 15:00Z
	 *       (local Sunday 23:00, week 2) but after as_of
	 *   r3: order 12-07 16:30Z = local 12-08 00:30 -> week 1
	 *   r4: interaction 12-15 03:00 -> its week 1
	 * as_of 12-16 00:00Z (local 12-16 08:00), weeks=3:
	 *   12-01: cohort 3; week 0 r2 1/3; week 1 r1 r3 2/3; week 2 (from
	 *          local 12-15, before as_of) nobody yet: 0
	 *   12-08: cohort 1; week 0: 0; week 1: r4 1; week 2 starts local
	 *          12-22, after as_of: null
	 */
	/* clang-format off */
	rw_send(&w,
	        EV("r1-i", "r1", "2025-12-01T01:00:00Z", TOUCHED) ","
	        EV("r1-add", "r1", "2025-12-01T02:00:00Z", ADD("cards")) ","
	        EV("r1-o", "r1", "2025-12-09T02:00:00Z", ORDER("r1o", "100")) ","
	        EV("r2-add", "r2", "2025-12-03T02:00:00Z", ADD("cards")) ","
	        EV("r2-i1", "r2", "2025-12-04T02:00:00Z", TOUCHED) ","
	        EV("r2-i2", "r2", "2025-12-21T15:00:00Z", TOUCHED) ","
	        EV("r3-add", "r3", "2025-11-30T16:30:00Z", ADD("cards")) ","
	        EV("r3-o", "r3", "2025-12-07T16:30:00Z", ORDER("r3o", "100")) ","
	        EV("r4-add", "r4", "2025-12-08T02:00:00Z", ADD("cards")) ","
	        EV("r4-i", "r4", "2025-12-15T03:00:00Z", TOUCHED));
	/* clang-format on */
	rw_settle(&w);
	r = rw_get(&w, "/v1/reports/retention?from=2025-12-01&to=2025-12-15"
	               "&weeks=3&as_of=2025-12-16T00:00:00Z");
	cr_assert_eq(json_array_size(json_object_get(r, "rows")), 2);
	row = rw_row(r, "week", "2025-12-01");
	RW_NUM(row, "cohort_size", 3);
	ret = json_object_get(row, "retained");
	cr_assert_eq(json_array_size(ret), 3);
	rw_assert_num(json_array_get(ret, 0), 1.0 / 3.0, "w1 k0");
	rw_assert_num(json_array_get(ret, 1), 2.0 / 3.0, "w1 k1");
	rw_assert_num(json_array_get(ret, 2), 0, "w1 k2");
	row = rw_row(r, "week", "2025-12-08");
	RW_NUM(row, "cohort_size", 1);
	ret = json_object_get(row, "retained");
	rw_assert_num(json_array_get(ret, 0), 0, "w2 k0");
	rw_assert_num(json_array_get(ret, 1), 1, "w2 k1");
	rw_assert_null(json_array_get(ret, 2), "w2 k2");
	json_decref(r);
	rw_stop(&w);
}

Test(reporting_cohorts, funnel_windows, .timeout = 120)
{
	rw_world w;
	json_t *r, *row;

	rw_start(&w, "rpt-funnel", NULL);
	/*
	 * window_days=10, period local 12-01 .. 12-15:
	 *   f1 added 12-01 00:00; orders 12-02, 12-05; member 12-06: all
	 *   f2 added 12-01 00:00; order 12-11 00:00 = exactly 10 days:
	 *      outside the half-open window
	 *   f3 added 12-02; orders 12-03 00:00 and 12-12 23:59:59 (9 d
	 *      23:59:59 after the first: inside); member 12-01, before the
	 *      second order: not the member step
	 *   f4 added 12-02; an order 12-01 before its acquisition does not
	 *      count; order 12-04 is its first; no second
	 *   f5 added 12-20: not in the period
	 * added 4; first_order f1 f3 f4 = 3; second_order f1 f3 = 2;
	 * member f1 = 1. Rates from previous: -, 3/4, 2/3, 1/2; from the
	 * first: 1, 3/4, 2/4, 1/4.
	 */
	/* clang-format off */
	rw_send(&w,
	        EV("f1-add", "f1", "2025-12-01T00:00:00Z", ADD("cards")) ","
	        EV("f1-o1", "f1", "2025-12-02T00:00:00Z", ORDER("f1o1", "1")) ","
	        EV("f1-o2", "f1", "2025-12-05T00:00:00Z", ORDER("f1o2", "1")) ","
	        EV("f1-m", "f1", "2025-12-06T00:00:00Z", MEMBER) ","
	        EV("f2-add", "f2", "2025-12-01T00:00:00Z", ADD("cards")) ","
	        EV("f2-o1", "f2", "2025-12-11T00:00:00Z", ORDER("f2o1", "1")) ","
	        EV("f3-add", "f3", "2025-12-02T00:00:00Z", ADD("cards")) ","
	        EV("f3-m", "f3", "2025-12-01T00:00:00Z", MEMBER) ","
	        EV("f3-o1", "f3", "2025-12-03T00:00:00Z", ORDER("f3o1", "1")) ","
	        EV("f3-o2", "f3", "2025-12-12T23:59:59Z", ORDER("f3o2", "1")) ","
	        EV("f4-o0", "f4", "2025-12-01T00:00:00Z", ORDER("f4o0", "1")) ","
	        EV("f4-add", "f4", "2025-12-02T00:00:00Z", ADD("cards")) ","
	        EV("f4-o1", "f4", "2025-12-04T00:00:00Z", ORDER("f4o1", "1")) ","
	        EV("f5-add", "f5", "2025-12-20T00:00:00Z", ADD("cards")));
	/* clang-format on */
	rw_settle(&w);
	r = rw_get(&w, "/v1/reports/funnel?from=2025-12-01&to=2025-12-15"
	               "&window_days=10");
	cr_assert_eq(json_array_size(json_object_get(r, "rows")), 4);
	row = rw_row(r, "step", "added");
	RW_NUM(row, "customers", 4);
	RW_NULL(row, "rate_from_previous");
	RW_NUM(row, "rate_from_first", 1);
	row = rw_row(r, "step", "first_order");
	RW_NUM(row, "customers", 3);
	RW_NUM(row, "rate_from_previous", 0.75);
	RW_NUM(row, "rate_from_first", 0.75);
	row = rw_row(r, "step", "second_order");
	RW_NUM(row, "customers", 2);
	RW_NUM(row, "rate_from_previous", 2.0 / 3.0);
	RW_NUM(row, "rate_from_first", 0.5);
	row = rw_row(r, "step", "member");
	RW_NUM(row, "customers", 1);
	RW_NUM(row, "rate_from_previous", 0.5);
	RW_NUM(row, "rate_from_first", 0.25);
	json_decref(r);
	/* An empty period: every step, zero, with null rates. */
	r = rw_get(&w, "/v1/reports/funnel?from=2024-01-01&to=2024-02-01");
	row = rw_row(r, "step", "member");
	RW_NUM(row, "customers", 0);
	RW_NULL(row, "rate_from_first");
	RW_NULL(rw_row(r, "step", "added"), "rate_from_first");
	json_decref(r);
	rw_stop(&w);
}

/* clang-format off */
#define INVITED(inv, camp)                                                    \
	"\"contact_added\": {\"channel\": \"referral\", \"inviter_key\": \"" inv \
	"\", \"campaign_id\": \"" camp "\"}"
#define SHARE(camp) "\"invite_shared\": {\"campaign_id\": \"" camp "\"}"
/* clang-format on */

Test(reporting_cohorts, fission, .timeout = 120)
{
	rw_world w;
	json_t *r, *t;

	rw_start(&w, "rpt-fission", NULL);
	/*
	 * Period local 12-01 .. 12-15, invitees_needed=2:
	 *   p1 shares twice in the period (campaign cf) and once before it;
	 *   p2 shares once (campaign other); p3 never shares
	 *   n1, n2 acquired with inviter p1 (cf); n3 with p2 (cf); n4 with
	 *   p3 (cf); n5 with p1 but before the period; n1 re-added later
	 *   with inviter p2 (not its acquisition)
	 * invites_shared 3, inviters 2 (p1 p2), invitees_added 4, successful
	 * (>= 2 invitees) p1 = 1, K = 4 / 2 = 2; top: p1 2, p2 1, p3 1 (ties
	 * by key). With campaign_id=cf: shares 2 (p1's), inviters 1,
	 * invitees 4 (all cf), K 4.
	 */
	/* clang-format off */
	rw_send(&w,
	        EV("p1-s0", "p1", "2025-11-20T00:00:00Z", SHARE("cf")) ","
	        EV("p1-s1", "p1", "2025-12-02T00:00:00Z", SHARE("cf")) ","
	        EV("p1-s2", "p1", "2025-12-03T00:00:00Z", SHARE("cf")) ","
	        EV("p2-s1", "p2", "2025-12-03T00:00:00Z", SHARE("other")) ","
	        EV("n1-add", "n1", "2025-12-04T00:00:00Z", INVITED("p1", "cf")) ","
	        EV("n2-add", "n2", "2025-12-05T00:00:00Z", INVITED("p1", "cf")) ","
	        EV("n3-add", "n3", "2025-12-05T00:00:00Z", INVITED("p2", "cf")) ","
	        EV("n4-add", "n4", "2025-12-06T00:00:00Z", INVITED("p3", "cf")) ","
	        EV("n5-add", "n5", "2025-11-21T00:00:00Z", INVITED("p1", "cf")) ","
	        EV("n1-add2", "n1", "2025-12-07T00:00:00Z", INVITED("p2", "cf")));
	/* clang-format on */
	rw_settle(&w);
	r = rw_get(&w, "/v1/reports/fission?from=2025-12-01&to=2025-12-15"
	               "&invitees_needed=2");
	t = json_object_get(r, "total");
	RW_NUM(t, "invites_shared", 3);
	RW_NUM(t, "inviters", 2);
	RW_NUM(t, "invitees_added", 4);
	RW_NUM(t, "successful_inviters", 1);
	RW_NUM(t, "k_factor", 2);
	json_t *top = json_object_get(t, "top_inviters");
	cr_assert_eq(json_array_size(top), 3);
	const char *keys[] = {"p1", "p2", "p3"};
	const int counts[] = {2, 1, 1};
	for (size_t i = 0; i < 3; i++) {
		json_t *e = json_array_get(top, i);
		cr_assert_str_eq(
		        json_string_value(json_object_get(e, "customer_key")),
		        keys[i]);
		RW_NUM(e, "invitees", counts[i]);
	}
	json_decref(r);
	r = rw_get(&w, "/v1/reports/fission?from=2025-12-01&to=2025-12-15"
	               "&campaign_id=cf");
	t = json_object_get(r, "total");
	RW_NUM(t, "invites_shared", 2);
	RW_NUM(t, "inviters", 1);
	RW_NUM(t, "invitees_added", 4);
	RW_NUM(t, "successful_inviters", 0); /* default needs 3 */
	RW_NUM(t, "k_factor", 4);
	json_decref(r);
	rw_stop(&w);
}

/* clang-format off */
#define OWNED(g, s)                                                           \
	"\"contact_added\": {\"channel\": \"store\", \"guide_id\": \"" g      \
	"\", \"store_id\": \"" s "\"}"
/* clang-format on */

Test(reporting_cohorts, guides_and_commission, .timeout = 120)
{
	rw_world w;
	json_t *r, *row;
	const char *env[] = {"POND_COMMISSION_TIERS=0:0.03,10000:0.05,"
	                     "50000:0.08",
	                     NULL};

	rw_start(&w, "rpt-guides", env);
	/*
	 * Period local 12-01 .. 12-15; tiers 0 3 %, 10000 5 %, 50000 8 %.
	 *   q1 (g1, s1) added 12-01: order 8000, refund 1000 -> 7000
	 *   q2 (g1, s2) added 11-20 (before the period; still g1's): order
	 *      3000 on 12-05 -> 3000
	 *   g1: 7000 + 3000 = 10000, exactly the threshold: tier 1, 5 %,
	 *       commission 500; customers_added 1 (q2 is older)
	 *   s1: 7000 -> tier 0, 3 %: 210. s2: 3000 -> 90; added 0
	 *   q3 (g2, s3) added 12-02: 1050 -> 3 % = 31.5 -> 32 (half up)
	 *   q4 (g3, s3) added 12-02: order 500, refund 800 -> -300: no tier,
	 *      rate null, commission 0
	 *   q5 (g4, s4) added 12-03; its order 12-02 is before the
	 *      acquisition: net 0 -> tier 0, commission 0
	 *   s3: 1050 - 300 = 750 -> 22.5 -> 23; added 2
	 */
	/* clang-format off */
	rw_send(&w,
	        EV("q1-add", "q1", "2025-12-01T00:00:00Z", OWNED("g1", "s1")) ","
	        EV("q1-o", "q1", "2025-12-02T00:00:00Z", ORDER("q1o", "8000")) ","
	        EV("q1-r", "q1", "2025-12-03T00:00:00Z", REFUND("q1o", "1000")) ","
	        EV("q2-add", "q2", "2025-11-20T00:00:00Z", OWNED("g1", "s2")) ","
	        EV("q2-o", "q2", "2025-12-05T00:00:00Z", ORDER("q2o", "3000")) ","
	        EV("q3-add", "q3", "2025-12-02T00:00:00Z", OWNED("g2", "s3")) ","
	        EV("q3-o", "q3", "2025-12-03T00:00:00Z", ORDER("q3o", "1050")) ","
	        EV("q4-add", "q4", "2025-12-02T00:00:00Z", OWNED("g3", "s3")) ","
	        EV("q4-o", "q4", "2025-12-03T00:00:00Z", ORDER("q4o", "500")) ","
	        EV("q4-r", "q4", "2025-12-04T00:00:00Z", REFUND("q4o", "800")) ","
	        EV("q5-o", "q5", "2025-12-02T00:00:00Z", ORDER("q5o", "2000")) ","
	        EV("q5-add", "q5", "2025-12-03T00:00:00Z", OWNED("g4", "s4")));
	/* clang-format on */
	rw_settle(&w);
	r = rw_get(&w, "/v1/reports/guides?from=2025-12-01&to=2025-12-15");
	cr_assert_eq(json_array_size(json_object_get(r, "rows")), 8);
	row = rw_row(r, "guide_id", "g1");
	RW_NUM(row, "customers_added", 1);
	RW_NUM(row, "net_revenue_fen", 10000);
	RW_NUM(row, "tier", 1);
	RW_NUM(row, "rate", 0.05);
	RW_NUM(row, "commission_fen", 500);
	row = rw_row(r, "store_id", "s1");
	RW_NUM(row, "net_revenue_fen", 7000);
	RW_NUM(row, "commission_fen", 210);
	row = rw_row(r, "store_id", "s2");
	RW_NUM(row, "customers_added", 0);
	RW_NUM(row, "commission_fen", 90);
	RW_NUM(rw_row(r, "guide_id", "g2"), "commission_fen", 32);
	row = rw_row(r, "guide_id", "g3");
	RW_NUM(row, "net_revenue_fen", -300);
	RW_NULL(row, "tier");
	RW_NULL(row, "rate");
	RW_NUM(row, "commission_fen", 0);
	row = rw_row(r, "guide_id", "g4");
	RW_NUM(row, "net_revenue_fen", 0);
	RW_NUM(row, "tier", 0);
	RW_NUM(row, "commission_fen", 0);
	row = rw_row(r, "store_id", "s3");
	RW_NUM(row, "customers_added", 2);
	RW_NUM(row, "net_revenue_fen", 750);
	RW_NUM(row, "commission_fen", 23);
	json_decref(r);
	rw_stop(&w);
}
