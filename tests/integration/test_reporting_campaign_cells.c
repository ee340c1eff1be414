/*
 * test_reporting_campaign_cells.c - the campaign day cells of
 * 0012_reporting_campaigns.sql answer exactly what the facts answer.
 *
 * A random history: customers touched zero to three times by three
 * campaigns at random minutes (ties happen), each touch scheduled, then
 * held out, suppressed (two reasons) or sent with a receipt (delivered,
 * read, clicked, failed, or none), receipts sometimes twice and a "read"
 * sometimes earlier than the "delivered" that arrives before it, some
 * states without a time; paid orders at random, and at 72 h minus a minute,
 * exactly 72 h and within the hours after deliveries and hold-out
 * selections; refunds; rewards with and without a campaign id. The events
 * go through ingest in batches of random sizes and the touch changes to
 * the touches stream one by one, the two in a random relative order and
 * each shuffled (orders before and after the deliveries that credit
 * them). rpt_cells_fold() runs once in the middle. Then:
 *   1. the cells, summed over partitions, equal rpt_cells_rebuild()'s;
 *   2. every request over whole local days (per campaign and all)
 *      answers from the cells, and the same request on the fact path
 *      (the horizon moved to infinity) gives the very same JSON;
 *   3. a cell changed by hand changes an answer: the cells did answer;
 *   4. cells kept for other attribution hours are not used (the fact
 *      path answers) and pond-reporting rebuilds them at start.
 *
 * The seed is POND_TEST_SEED or the time; it is printed on failure.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_reporting.h"

#define NCUST  70
#define NCAMPS 3

static const char *const camps[NCAMPS] = {"c1", "c2", "c3"};
static const int64_t costs[NCAMPS] = {10, 5, 0};
static const char *const receipts[] = {"delivered", "read", "clicked",
                                       "failed"};

/* tc is one touch change: times in minutes after 2025-11-01T00:00Z, at
 * -1 for none. */
typedef struct tc {
	char touch[16], key[16];
	const char *camp, *state, *reason;
	int at, sel;
	int64_t cost;
} tc;

typedef struct hist {
	char **ev;
	size_t nev, evcap;
	tc *tcs;
	size_t ntc, tccap;
	unsigned seed;
	int id;
} hist;

static unsigned
pick(hist *h, unsigned n)
{
	return ((unsigned)rand_r(&h->seed) % n);
}

/* when formats minute m after 2025-11-01T00:00Z as RFC 3339. */
static void
when(char *buf, size_t len, int m)
{
	snprintf(buf, len, "2025-11-%02dT%02d:%02d:00Z", 1 + m / 1440,
	         m % 1440 / 60, m % 60);
}

static void
add_event(hist *h, int c, int m, const char *body)
{
	char at[32], *ev;

	when(at, sizeof(at), m);
	cr_assert(asprintf(&ev,
	                   "{\"event_id\": \"k%05d\", \"customer_key\": "
	                   "\"kc%03d\", \"occurred_at\": \"%s\", %s}",
	                   h->id++, c, at, body) >= 0);
	if (h->nev == h->evcap) {
		h->evcap = h->evcap ? 2 * h->evcap : 256;
		cr_assert_not_null(
		        h->ev = realloc(h->ev, h->evcap * sizeof(char *)));
	}
	h->ev[h->nev++] = ev;
}

static void
add_order(hist *h, int c, int m)
{
	char body[160];

	snprintf(body, sizeof(body),
	         "\"order_paid\": {\"order_id\": \"o%d\", \"amount_fen\": %u}",
	         h->id, 100 + pick(h, 900));
	add_event(h, c, m, body);
}

static void
add_tc(hist *h, int c, int t, const char *camp, const char *state,
       const char *reason, int at, int sel, int64_t cost)
{
	if (h->ntc == h->tccap) {
		h->tccap = h->tccap ? 2 * h->tccap : 256;
		cr_assert_not_null(
		        h->tcs = realloc(h->tcs, h->tccap * sizeof(tc)));
	}
	tc *x = &h->tcs[h->ntc++];
	snprintf(x->touch, sizeof(x->touch), "t%03d-%d", c, t);
	snprintf(x->key, sizeof(x->key), "kc%03d", c);
	x->camp = camp;
	x->state = state;
	x->reason = reason;
	x->at = at;
	x->sel = sel;
	x->cost = cost;
}

/* orders_near adds orders of customer c around minute m: 72 h minus a
 * minute, exactly 72 h, or a random time in the 100 h after it. */
static void
orders_near(hist *h, int c, int m)
{
	unsigned w = pick(h, 4);

	if (w == 0) {
		add_order(h, c, m + 72 * 60 - 1);
	} else if (w == 1) {
		add_order(h, c, m + 72 * 60);
	} else if (w == 2) {
		add_order(h, c, m + (int)pick(h, 100 * 60));
	}
}

/* add_touch adds touch t of customer c: selected at a random quarter
 * hour of 2025-11-01 .. 11-04, then its states. */
static void
add_touch(hist *h, int c, int t)
{
	unsigned ci = pick(h, NCAMPS), what = pick(h, 6);
	const char *camp = camps[ci];
	int sel = (int)pick(h, 4 * 24 * 4) * 15;

	add_tc(h, c, t, camp, "scheduled", NULL, sel, sel, 0);
	if (what == 0) {
		add_tc(h, c, t, camp, "held_out", NULL,
		       pick(h, 4) == 0 ? -1 : sel, sel, 0);
		orders_near(h, c, sel);
		return;
	}
	if (what == 1) {
		add_tc(h, c, t, camp, "suppressed",
		       pick(h, 2) ? "frequency_cap" : "opt_out", sel, sel, 0);
		return;
	}
	int sent = sel + (int)pick(h, 120);
	add_tc(h, c, t, camp, "sent", NULL, sent, sel, costs[ci]);
	if (pick(h, 5) == 0) {
		return; /* no receipt */
	}
	const char *r = receipts[pick(h, 4)];
	int at = sent + (int)pick(h, 600);
	add_tc(h, c, t, camp, r, NULL, pick(h, 8) == 0 ? -1 : at, sel, 0);
	if (pick(h, 3) == 0) { /* the receipt twice, later */
		add_tc(h, c, t, camp, r, NULL, at + (int)pick(h, 300), sel, 0);
	}
	if (pick(h, 4) == 0) { /* a read receipt, maybe earlier */
		add_tc(h, c, t, camp, "read", NULL, sent + (int)pick(h, 600),
		       sel, 0);
	}
	orders_near(h, c, at);
}

static void
make_history(hist *h)
{
	char body[200];

	for (int c = 0; c < NCUST; c++) {
		add_event(h, c, 0,
		          "\"contact_added\": {\"channel\": \"sms\"}");
		for (unsigned k = pick(h, 4); k > 0; k--) {
			add_touch(h, c, (int)k);
		}
		for (unsigned k = pick(h, 3); k > 0; k--) {
			add_order(h, c, (int)pick(h, 8 * 24 * 60));
		}
		if (pick(h, 5) == 0) {
			snprintf(body, sizeof(body),
			         "\"order_refunded\": {\"order_id\": \"f%d\", "
			         "\"amount_fen\": 50}",
			         h->id);
			add_event(h, c, (int)pick(h, 8 * 24 * 60), body);
		}
		for (unsigned k = pick(h, 3); k > 0; k--) {
			unsigned ci = pick(h, NCAMPS + 1);
			char camp[40] = "";
			if (ci < NCAMPS) {
				snprintf(camp, sizeof(camp),
				         ", \"campaign_id\": \"%s\"",
				         camps[ci]);
			}
			snprintf(body, sizeof(body),
			         "\"reward_paid\": {\"kind\": \"coupon\", "
			         "\"amount_fen\": %u%s}",
			         10 + pick(h, 90), camp);
			add_event(h, c, (int)pick(h, 6 * 24 * 60), body);
		}
	}
}

static void
shuffle(hist *h, void *base, size_t n, size_t size)
{
	char tmp[sizeof(tc)], *b = base;

	cr_assert(size <= sizeof(tmp));
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = pick(h, (unsigned)i + 1);
		memcpy(tmp, b + i * size, size);
		memcpy(b + i * size, b + j * size, size);
		memcpy(b + j * size, tmp, size);
	}
}

static void
send_touch_change(rw_world *w, const tc *x)
{
	char at[32], sel[32];

	when(sel, sizeof(sel), x->sel);
	if (x->at >= 0) {
		when(at, sizeof(at), x->at);
	}
	rw_touch_change(w, x->touch, x->key, x->camp, x->state, x->reason,
	                x->at >= 0 ? at : NULL, sel, x->cost);
}

/* send_mixed sends the shuffled events (batches of 1 to 30) and touch
 * changes in a random relative order, folding the cells once half-way. */
static void
send_mixed(rw_world *w, hist *h)
{
	size_t i = 0, j = 0;
	bool folded = false;

	shuffle(h, h->ev, h->nev, sizeof(char *));
	shuffle(h, h->tcs, h->ntc, sizeof(tc));
	while (i < h->nev || j < h->ntc) {
		if (!folded && 2 * (i + j) >= h->nev + h->ntc) {
			rw_settle(w);
			pond_test_sql_exec(w->ingest.dsn,
			                   "SELECT rpt_cells_fold()");
			folded = true;
		}
		if (j < h->ntc && (i == h->nev || pick(h, 3) != 0)) {
			for (unsigned k = 1 + pick(h, 6); k > 0 && j < h->ntc;
			     k--) {
				send_touch_change(w, &h->tcs[j++]);
			}
		} else {
			size_t k = 1 + pick(h, 30);
			if (k > h->nev - i) {
				k = h->nev - i;
			}
			rw_send_list(w, &h->ev[i], k);
			i += k;
		}
	}
	rw_settle(w);
}

#define AS_OF "as_of=2025-11-20T00:00:00Z"

/* Whole local days in Asia/Shanghai: selections fall on local 11-01 to
 * 11-05, orders up to 11-12. */
static const char *const periods[] = {
        "from=2025-11-01&to=2025-11-03", "from=2025-11-02&to=2025-11-05",
        "from=2025-11-03&to=2025-11-04", "from=2025-11-04&to=2025-11-06",
        "from=2025-10-25&to=2025-11-10",
};
static const char *const reports[] = {"campaigns?", "campaigns/c1?",
                                      "campaigns/c2?", "campaigns/c3?"};
#define NPERIODS (sizeof(periods) / sizeof(*periods))
#define NREPORTS (sizeof(reports) / sizeof(*reports))
#define NPATHS   (NPERIODS * NREPORTS)

/* The cells summed over partitions, as the reports read them. */
#define CELLS_SQL                                                             \
	"SELECT COALESCE(string_agg(concat_ws('/', cell, day, key, k, n, "    \
	"inc, orders, net), ',' ORDER BY cell, day, key, k), '') FROM "       \
	"(SELECT cell, day, key, k, sum(n) AS n, sum(incentive_fen) AS inc, " \
	"sum(orders) AS orders, sum(net_fen) AS net FROM rpt_cells GROUP BY " \
	"cell, day, key, k) s WHERE n <> 0 OR inc <> 0 OR orders <> 0 OR "    \
	"net <> 0"

static char *
get(rw_world *w, size_t i)
{
	json_t *j = rw_get(w, "/v1/reports/%s%s&" AS_OF, reports[i % NREPORTS],
	                   periods[i / NREPORTS]);
	char *s = json_dumps(j, JSON_SORT_KEYS);

	cr_assert_not_null(s);
	json_decref(j);
	return (s);
}

/* has_rows tells whether the report s has a row. */
static bool
has_rows(const char *s)
{
	json_t *j = json_loads(s, 0, NULL);
	bool rows = json_array_size(json_object_get(j, "rows")) > 0;

	json_decref(j);
	return (rows);
}

/* wait_hours waits until the cells are kept for 72 attribution hours. */
static void
wait_hours(rw_world *w)
{
	for (int i = 0; i < 600; i++) {
		if (pond_test_sql_int(w->ingest.dsn,
		                      "SELECT attribution_h FROM "
		                      "rpt_cells_zone") == 72) {
			return;
		}
		usleep(100000);
	}
	cr_assert_fail("the cells were not rebuilt for 72 hours");
}

Test(reporting_campaign_cells, equal_the_facts_after_random_arrival,
     .timeout = 300)
{
	static hist h;
	static char *fast[NPATHS], *changed[NPATHS];
	rw_world w;
	unsigned seed = rw_seed();
	size_t answered = 0;

	h.seed = seed;
	make_history(&h);
	rw_start(&w, "rpt-camp-cells", NULL);
	pond_test_clock_write(w.ingest.clock, "2025-11-19T00:00:00Z");
	send_mixed(&w, &h);

	/* Every fact is before as_of: the cells answer. */
	cr_assert_eq(
	        pond_test_sql_int(w.ingest.dsn,
	                          "SELECT count(*) FROM rpt_rollup_horizon "
	                          "WHERE latest >= '2025-11-20T00:00:00Z'"),
	        0, "seed %u", seed);
	for (size_t i = 0; i < NPATHS; i++) {
		fast[i] = get(&w, i);
	}

	/* The triggers' cells are the set-based recomputation's. */
	pond_test_sql_exec(w.ingest.dsn, "SELECT rpt_cells_fold()");
	char *incremental = pond_test_sql_text(w.ingest.dsn, CELLS_SQL);
	pond_test_sql_exec(w.ingest.dsn,
	                   "SELECT rpt_cells_rebuild('Asia/Shanghai')");
	char *rebuilt = pond_test_sql_text(w.ingest.dsn, CELLS_SQL);
	cr_assert_str_eq(incremental, rebuilt, "seed %u", seed);
	cr_assert_gt(pond_test_sql_int(w.ingest.dsn,
	                               "SELECT count(DISTINCT cell) FROM "
	                               "rpt_cells WHERE cell LIKE 'camp%'"),
	             6, "seed %u", seed);
	free(incremental);
	free(rebuilt);

	/* Cells kept for other attribution hours are not read. */
	pond_test_sql_exec(w.ingest.dsn,
	                   "UPDATE rpt_cells_zone SET attribution_h = 24");
	for (size_t i = 0; i < NPATHS; i++) {
		char *s = get(&w, i);
		cr_assert_str_eq(fast[i], s, "seed %u: %s%s (24 h cells)",
		                 seed, reports[i % NREPORTS],
		                 periods[i / NREPORTS]);
		free(s);
	}
	/* pond-reporting rebuilds them at start. */
	rw_restart_reporting(&w, "rpt-camp-cells");
	wait_hours(&w);

	/* A changed cell changes the answer: the cells answer. */
	pond_test_sql_exec(w.ingest.dsn,
	                   "UPDATE rpt_cells SET n = n + 1, orders = orders + "
	                   "1, net_fen = net_fen + 100000 WHERE cell LIKE "
	                   "'camp%'");
	for (size_t i = 0; i < NPATHS; i++) {
		changed[i] = get(&w, i);
	}

	/* The fact path gives the same answers as the cells did. */
	pond_test_sql_exec(
	        w.ingest.dsn,
	        "UPDATE rpt_rollup_horizon SET latest = 'infinity'");
	for (size_t i = 0; i < NPATHS; i++) {
		char *slow = get(&w, i);
		cr_assert_str_eq(fast[i], slow, "seed %u: %s%s", seed,
		                 reports[i % NREPORTS], periods[i / NREPORTS]);
		if (has_rows(slow)) {
			cr_assert_str_neq(
			        changed[i], slow,
			        "seed %u: the cells did not answer %s%s", seed,
			        reports[i % NREPORTS], periods[i / NREPORTS]);
			answered++;
		}
		free(slow);
		free(fast[i]);
		free(changed[i]);
	}
	cr_assert_gt(answered, NPATHS / 2, "seed %u", seed);
	for (size_t i = 0; i < h.nev; i++) {
		free(h.ev[i]);
	}
	free(h.ev);
	free(h.tcs);
	rw_stop(&w);
}
