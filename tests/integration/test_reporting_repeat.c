/*
 * test_reporting_repeat.c - the day cells of 0011_reporting_repeat.sql
 * (repurchase: 'repeat'; fission: 'share', 'share_again', 'invitee')
 * answer exactly what the facts answer.
 *
 * A random history: customers added zero to two times, an add with an
 * inviter (one of a few, so that inviters have several invitees) and a
 * campaign or none, so that a later-arriving add with an earlier time
 * takes the acquisition over and changes an invitee's inviter or
 * campaign; paid orders, some at the very time of the customer's
 * previous one (ties on occurred_at, broken by event_id), several on one
 * day, refunds (which do not count); invite_shared of two campaigns or
 * none. It is sent in a random order in batches of random sizes, with
 * rpt_cells_fold() once in the middle. Then:
 *   1. the cells summed over partitions (the fold moves them into
 *      partition -1) equal rpt_cells_rebuild()'s, from the facts;
 *   2. every request over whole local days answers from the cells, and
 *      the same request on the fact path (the horizon moved to infinity)
 *      gives the very same JSON: repurchase over several periods, fission
 *      with and without campaign_id and invitees_needed 1 to 4;
 *   3. a cell changed by hand changes the answers: the cells answered.
 *
 * The seed is POND_TEST_SEED or the time; it is printed on failure.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_reporting.h"

#define NCUST 120

static const char *const camps[] = {"camp-a", "camp-b", NULL};

/* rep_event is one event of the history: customer c at minute m of
 * 2025-11-01 UTC (m < 3 days: local 11-01 08:00 .. 11-04 08:00 in
 * Asia/Shanghai), formatted as JSON only when it is sent. */
typedef struct rep_event {
	int c, id;
	unsigned m;
	char body[160];
} rep_event;

/* At most 2 adds, 5 orders, a refund and 3 shares a customer. */
#define MAX_EVENTS (NCUST * 11)

typedef struct rep_hist {
	rep_event ev[MAX_EVENTS];
	size_t n;
	unsigned seed;
	int id;
} rep_hist;

static unsigned
draw(rep_hist *h, unsigned n)
{
	return ((unsigned)rand_r(&h->seed) % n);
}

/* push appends event body of customer c at minute m. */
static void
push(rep_hist *h, int c, unsigned m, const char *body)
{
	cr_assert_lt(h->n, MAX_EVENTS);
	rep_event *e = &h->ev[h->n++];
	e->c = c;
	e->id = h->id++;
	e->m = m;
	snprintf(e->body, sizeof(e->body), "%s", body);
}

/* minute is a random quarter hour of the three days (few: ties happen). */
static unsigned
minute(rep_hist *h)
{
	return (draw(h, 3 * 24 * 4) * 15);
}

/* campaign_field writes `, "campaign_id": "X"` for a random campaign, or
 * nothing for none. */
static void
campaign_field(rep_hist *h, char *buf, size_t len)
{
	const char *camp = camps[draw(h, 3)];

	buf[0] = '\0';
	if (camp != NULL) {
		snprintf(buf, len, ", \"campaign_id\": \"%s\"", camp);
	}
}

static void
make_history(rep_hist *h)
{
	char body[200], camp[48], inviter[48];

	for (int c = 0; c < NCUST; c++) {
		for (unsigned k = draw(h, 3); k > 0; k--) {
			inviter[0] = '\0';
			if (draw(h, 3) != 0) {
				snprintf(inviter, sizeof(inviter),
				         ", \"inviter_key\": \"fc%03u\"",
				         draw(h, 8));
			}
			campaign_field(h, camp, sizeof(camp));
			snprintf(body, sizeof(body),
			         "\"contact_added\": {\"channel\": "
			         "\"referral\"%s%s}",
			         inviter, camp);
			push(h, c, minute(h), body);
		}
		unsigned m = minute(h);
		for (unsigned k = draw(h, 6); k > 0; k--) {
			/* One time in three at the previous order's
			 * time, one in three later that day. */
			unsigned how = draw(h, 3);
			m = how == 0   ? m
			    : how == 1 ? m + draw(h, 8) * 15
			               : minute(h);
			snprintf(body, sizeof(body),
			         "\"order_paid\": {\"order_id\": \"o%d\", "
			         "\"amount_fen\": %u}",
			         h->id, 100 + draw(h, 900));
			push(h, c, m % (3 * 1440), body);
		}
		if (draw(h, 4) == 0) {
			snprintf(body, sizeof(body),
			         "\"order_refunded\": {\"order_id\": \"f%d\", "
			         "\"amount_fen\": 50}",
			         h->id);
			push(h, c, minute(h), body);
		}
		for (unsigned k = draw(h, 4); k > 0; k--) {
			campaign_field(h, camp, sizeof(camp));
			snprintf(body, sizeof(body), "\"invite_shared\": {%s}",
			         camp[0] != '\0' ? camp + 2 : "");
			push(h, c, minute(h), body);
		}
	}
}

/* send_batch sends k events drawn at random from the h->n - *sent not
 * yet sent (kept at the front of h->ev; a drawn one is swapped behind
 * them), as one ingest request. */
static void
send_batch(rw_world *w, rep_hist *h, size_t *sent, size_t k)
{
	char *batch, *at;

	cr_assert_not_null(batch = calloc(k, 320));
	at = batch;
	for (size_t j = 0; j < k; j++) {
		size_t left = h->n - *sent - j;
		size_t pick = draw(h, (unsigned)left);
		rep_event t = h->ev[pick];
		h->ev[pick] = h->ev[left - 1];
		h->ev[left - 1] = t;
		at += sprintf(at,
		              "%s{\"event_id\": \"q%05d\", \"customer_key\": "
		              "\"fc%03d\", \"occurred_at\": "
		              "\"2025-11-%02uT%02u:%02u:00Z\", %s}",
		              j > 0 ? ", " : "", t.id, t.c, 1 + t.m / 1440,
		              t.m % 1440 / 60, t.m % 60, t.body);
	}
	rw_send(w, "%s", batch);
	free(batch);
	*sent += k;
}

/* feed sends the history in a random order in batches of 1 to 60 events,
 * folding the cells once half of it has been applied. */
static void
feed(rw_world *w, rep_hist *h)
{
	bool folded = false;

	for (size_t sent = 0; sent < h->n;) {
		size_t k = 1 + draw(h, 60);
		send_batch(w, h, &sent, k < h->n - sent ? k : h->n - sent);
		if (!folded && sent >= h->n / 2) {
			rw_settle(w);
			pond_test_sql_exec(w->ingest.dsn,
			                   "SELECT rpt_cells_fold()");
			folded = true;
		}
	}
	rw_settle(w);
	pond_test_sql_exec(w->ingest.dsn, "SELECT rpt_cells_fold()");
}

#define AS_OF "as_of=2025-11-10T00:00:00Z"

/* Whole local days in Asia/Shanghai (the world's POND_TZ). */
static const char *const periods[] = {
        "from=2025-11-01&to=2025-11-02", "from=2025-11-01&to=2025-11-03",
        "from=2025-11-02&to=2025-11-04", "from=2025-11-03&to=2025-11-05",
        "from=2025-11-02&to=2025-11-03", "from=2025-10-25&to=2025-11-10",
};
#define NPERIODS (sizeof(periods) / sizeof(*periods))

/* The cells summed over partitions, all-zero sums dropped. */
#define CELLS_SUM_SQL                                                         \
	"SELECT COALESCE(string_agg(concat_ws('/', cell, day, key, k, n, i, " \
	"o, f), ',' ORDER BY cell, day, key, k), '') FROM (SELECT cell, "     \
	"day, key, k, sum(n) AS n, sum(incentive_fen) AS i, sum(orders) AS "  \
	"o, sum(net_fen) AS f FROM rpt_cells GROUP BY cell, day, key, k) s "  \
	"WHERE n <> 0 OR i <> 0 OR o <> 0 OR f <> 0"

static char *
dump(json_t *j)
{
	char *s = json_dumps(j, JSON_SORT_KEYS);

	cr_assert_not_null(s);
	return (s);
}

/* ask returns the JSON text of report r over period p at AS_OF. */
static char *
ask(rw_world *w, const char *r, const char *p)
{
	json_t *j = rw_get(w, "/v1/reports/%s%s&" AS_OF, r, p);
	char *s = dump(j);

	json_decref(j);
	return (s);
}

/* check_cells runs the whole check for the requests reports (each a
 * path ending in '?' or '&', asked over every period): the history fed,
 * cells of each of the nkinds kinds (a SQL list) present, the cells equal
 * to the rebuild's, the cell path equal to the fact path, and every answer
 * changed by bump (an UPDATE of rpt_cells). */
static void
check_cells(const char *name, const char *const *reports, size_t nreports,
            const char *kinds, long long nkinds, const char *bump)
{
	static rep_hist h;
	rw_world w;
	size_t npaths = nreports * NPERIODS;
	char **fast = calloc(npaths, sizeof(char *));
	char **changed = calloc(npaths, sizeof(char *));
	char sql[256];
	unsigned seed = rw_seed();

	cr_assert_not_null(fast);
	cr_assert_not_null(changed);
	memset(&h, 0, sizeof(h));
	h.seed = seed;
	make_history(&h);
	rw_start(&w, name, NULL);
	pond_test_clock_write(w.ingest.clock, "2025-11-05T00:00:00Z");
	feed(&w, &h);

	for (size_t i = 0; i < npaths; i++) {
		fast[i] =
		        ask(&w, reports[i % nreports], periods[i / nreports]);
	}
	/* Every kind has cells: the history exercises each. */
	snprintf(sql, sizeof(sql),
	         "SELECT count(DISTINCT cell) FROM rpt_cells WHERE cell IN "
	         "(%s)",
	         kinds);
	cr_assert_eq(pond_test_sql_int(w.ingest.dsn, sql), nkinds, "seed %u",
	             seed);

	/* The triggers' cells, folded or not, are the rebuild's. */
	char *incremental = pond_test_sql_text(w.ingest.dsn, CELLS_SUM_SQL);
	pond_test_sql_exec(w.ingest.dsn,
	                   "SELECT rpt_cells_rebuild('Asia/Shanghai')");
	char *rebuilt = pond_test_sql_text(w.ingest.dsn, CELLS_SUM_SQL);
	cr_assert_str_eq(incremental, rebuilt, "seed %u", seed);
	free(incremental);
	free(rebuilt);

	/* A changed cell changes the answer: the cells answered above. */
	pond_test_sql_exec(w.ingest.dsn, bump);
	for (size_t i = 0; i < npaths; i++) {
		changed[i] =
		        ask(&w, reports[i % nreports], periods[i / nreports]);
	}

	/* The fact path gives the same answers. */
	pond_test_sql_exec(
	        w.ingest.dsn,
	        "UPDATE rpt_rollup_horizon SET latest = 'infinity'");
	for (size_t i = 0; i < npaths; i++) {
		char *slow =
		        ask(&w, reports[i % nreports], periods[i / nreports]);
		cr_assert_str_eq(fast[i], slow, "seed %u: %s%s", seed,
		                 reports[i % nreports], periods[i / nreports]);
		cr_assert_str_neq(changed[i], slow,
		                  "seed %u: the cells did not answer %s%s",
		                  seed, reports[i % nreports],
		                  periods[i / nreports]);
		free(slow);
		free(fast[i]);
		free(changed[i]);
	}
	free(fast);
	free(changed);
	rw_stop(&w);
}

Test(reporting_repeat, cells_equal_the_facts_after_random_arrival,
     .timeout = 300)
{
	static const char *const reports[] = {"repurchase?"};

	/* More buyers on every day with a paid order. */
	check_cells("rpt-repeat", reports, 1, "'repeat'", 1,
	            "UPDATE rpt_cells SET n = n + 1 WHERE cell = 'repeat' "
	            "AND key = '0'");
}

Test(reporting_fission_cells, cells_equal_the_facts_after_random_arrival,
     .timeout = 300)
{
	static const char *const reports[] = {
	        "fission?",
	        "fission?campaign_id=camp-a&",
	        "fission?invitees_needed=1&",
	        "fission?invitees_needed=1&campaign_id=camp-b&",
	        "fission?invitees_needed=2&",
	        "fission?invitees_needed=2&campaign_id=camp-a&",
	        "fission?invitees_needed=4&",
	        "fission?invitees_needed=4&campaign_id=camp-b&",
	};

	/* One more share on every day with one, of every campaign. */
	check_cells("rpt-fission-cells", reports,
	            sizeof(reports) / sizeof(*reports),
	            "'share', 'share_again', 'invitee'", 3,
	            "UPDATE rpt_cells SET n = n + 1 WHERE cell = 'share'");
}

/* ORDER is a paid order of key at local day D (2025-11-D 10:00 in
 * Asia/Shanghai, 02:00 UTC). */
#define ORDER(id, key, d)                                                     \
	EV(id, key, "2025-11-" d "T02:00:00Z",                                \
	   "\"order_paid\": {\"order_id\": \"" id "\", \"amount_fen\": 100}")

/* ask_buyers asserts the repurchase figures over local days from .. to. */
static void
ask_buyers(rw_world *w, const char *from, const char *to, int buyers,
           int repeat)
{
	json_t *r = rw_get(w,
	                   "/v1/reports/repurchase?from=2025-11-%s&to="
	                   "2025-11-%s&" AS_OF,
	                   from, to);
	json_t *t = json_object_get(r, "total");

	RW_NUM(t, "buyers", buyers);
	RW_NUM(t, "repeat_buyers", repeat);
	json_decref(r);
}

Test(reporting_repeat, late_earlier_orders_by_hand, .timeout = 120)
{
	rw_world w;

	rw_start(&w, "rpt-repeat-hand", NULL);
	pond_test_clock_write(w.ingest.clock, "2025-11-07T00:00:00Z");
	/*
	 * r1 pays on local 11-01, twice on 11-02 at the same instant (the
	 * event_id breaks the tie) and on 11-04; r2 on 11-03, with a refund
	 * on 11-02 (not an order); r3 on 11-01 and 11-05. The 11-01 orders
	 * arrive last.
	 */
	rw_send(&w, "%s, %s", ORDER("h4", "r1", "04"),
	        ORDER("h7", "r3", "05"));
	rw_send(&w, "%s, %s", ORDER("h5", "r2", "03"),
	        EV("h6", "r2", "2025-11-02T02:00:00Z",
	           "\"order_refunded\": {\"order_id\": \"h5\", "
	           "\"amount_fen\": 100}"));
	rw_send(&w, "%s, %s", ORDER("h3", "r1", "02"),
	        ORDER("h2", "r1", "02"));
	rw_settle(&w);
	/* 11-01 .. 11-03 before the late orders: r1 twice. */
	ask_buyers(&w, "01", "03", 1, 1);
	rw_send(&w, "%s", ORDER("h1", "r1", "01"));
	rw_send(&w, "%s", ORDER("h0", "r3", "01"));
	rw_settle(&w);

	/* r1 (3 orders) and r2 (1); r3's are outside. */
	ask_buyers(&w, "02", "05", 2, 1);
	/* r1 (3) and r3 (1). */
	ask_buyers(&w, "01", "03", 2, 1);
	/* r1 and r3 once each. */
	ask_buyers(&w, "04", "06", 2, 0);
	ask_buyers(&w, "01", "02", 2, 0);
	/* r1 twice on 11-02, r2 once (its refund is no order). */
	ask_buyers(&w, "02", "04", 2, 1);
	ask_buyers(&w, "03", "04", 1, 0);
	json_t *r = rw_get(&w, "/v1/reports/repurchase?from=2025-11-01&to="
	                       "2025-11-08&" AS_OF);
	json_t *t = json_object_get(r, "total");
	RW_NUM(t, "buyers", 3);
	RW_NUM(t, "repeat_buyers", 2);
	RW_NUM(t, "lifetime_buyers", 3);
	RW_NUM(t, "lifetime_repeat_buyers", 2);
	json_decref(r);

	/* The cells answered: one more order on 11-04 is one more buyer. */
	pond_test_sql_exec(w.ingest.dsn,
	                   "UPDATE rpt_cells SET n = n + 1 WHERE cell = "
	                   "'repeat' AND key = '0' AND day = '2025-11-04' "
	                   "AND partition = (SELECT min(partition) FROM "
	                   "rpt_cells WHERE cell = 'repeat' AND key = '0' AND "
	                   "day = '2025-11-04')");
	ask_buyers(&w, "04", "06", 3, 0);
	rw_stop(&w);
}
