/*
 * test_reporting_weeks.c - retention from the week cells of
 * 0010_reporting_weeks.sql answers exactly what the facts answer.
 *
 * A random history over eight weeks: customers added zero to two times
 * (a later add may come with an earlier time, in another week and
 * channel, and take the acquisition over), paid orders, refunds (not
 * activity) and interactions before and after the acquisition, many of
 * them on a Sunday at 23:30 or on the Monday at 00:00 or 00:30 in
 * Asia/Shanghai (the world's POND_TZ), where the local week turns. It is
 * sent in a random order in batches of random sizes, so one consumer
 * batch holds orders and interactions of one customer in one week (one
 * statement, both tables' triggers), with the cells folded
 * (rpt_cells_fold) halfway through the feed. Then:
 *   1. the cells summed over partitions, and each customer's weeks, equal
 *      rpt_cells_rebuild()'s, recomputed from the facts;
 *   2. every retention request over whole local days, with and without a
 *      channel, for weeks = 1, 4, 8 and 104, answers from the cells, and
 *      the same request on the fact path (the horizon moved to infinity)
 *      gives the very same JSON;
 *   3. a retention cell, then an acquisition cell, changed by hand
 *      changes the answer: the cells did answer.
 *
 * The seed is POND_TEST_SEED or the time; it is printed on failure.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test_reporting.h"

#define NCUST 200

static const char *const week_chans[] = {"cards", "sms", "douyin"};

/* A history: events as proto3 JSON, in the order they were made. */
typedef struct weeks_hist {
	char **ev;
	size_t n, cap;
	unsigned seed;
	int next_id;
} weeks_hist;

static unsigned
roll(weeks_hist *h, unsigned n)
{
	return ((unsigned)rand_r(&h->seed) % n);
}

/* event_at writes a random time of the eight weeks from Monday
 * 2025-10-20 (local): half of them on a Sunday (UTC) at 15:30 (23:30
 * local), 16:00 (local midnight, Monday) or 16:30 (Monday 00:30 local),
 * the rest at a random quarter hour of a random day. */
static void
event_at(weeks_hist *h, char *buf, size_t len)
{
	static const int sunday_minutes[] = {15 * 60 + 30, 16 * 60,
	                                     16 * 60 + 30};
	struct tm tm = {.tm_year = 125, .tm_mon = 9, .tm_mday = 19};
	time_t t = timegm(&tm); /* Sunday 2025-10-19T00:00:00Z */

	if (roll(h, 2) == 0) {
		t += (time_t)(7 * (1 + roll(h, 8))) * 86400 +
		     sunday_minutes[roll(h, 3)] * 60;
	} else {
		t += (time_t)(1 + roll(h, 56)) * 86400 +
		     (time_t)roll(h, 96) * 900;
	}
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* emit appends an event of customer c with body at a random time. */
static void
emit(weeks_hist *h, int c, const char *body)
{
	char at[32], *ev;

	event_at(h, at, sizeof(at));
	cr_assert(asprintf(&ev,
	                   "{\"event_id\": \"w%05d\", \"customer_key\": "
	                   "\"wc%03d\", \"occurred_at\": \"%s\", %s}",
	                   h->next_id++, c, at, body) >= 0);
	if (h->n == h->cap) {
		h->cap = h->cap ? 2 * h->cap : 512;
		cr_assert_not_null(
		        h->ev = realloc(h->ev, h->cap * sizeof(char *)));
	}
	h->ev[h->n++] = ev;
}

static void
make_weeks_history(weeks_hist *h)
{
	char body[160];

	for (int c = 0; c < NCUST; c++) {
		for (unsigned k = roll(h, 3); k > 0; k--) {
			snprintf(body, sizeof(body),
			         "\"contact_added\": {\"channel\": \"%s\"}",
			         week_chans[roll(h, 3)]);
			emit(h, c, body);
		}
		for (unsigned k = roll(h, 4); k > 0; k--) {
			snprintf(body, sizeof(body),
			         "\"order_paid\": {\"order_id\": \"wo%d\", "
			         "\"amount_fen\": 500}",
			         h->next_id);
			emit(h, c, body);
		}
		if (roll(h, 4) == 0) {
			snprintf(
			        body, sizeof(body),
			        "\"order_refunded\": {\"order_id\": \"wf%d\", "
			        "\"amount_fen\": 100}",
			        h->next_id);
			emit(h, c, body);
		}
		for (unsigned k = roll(h, 6); k > 0; k--) {
			emit(h, c, "\"interaction\": {\"kind\": \"message\"}");
		}
	}
}

#define CELLS_SUM_SQL                                                         \
	"SELECT COALESCE(string_agg(concat_ws('/', cell, day, key, k, n, i, " \
	"o, f), ',' ORDER BY cell, day, key, k), '') FROM (SELECT cell, "     \
	"day, "                                                               \
	"key, k, sum(n) AS n, sum(incentive_fen) AS i, sum(orders) AS o, "    \
	"sum(net_fen) AS f FROM rpt_cells GROUP BY cell, day, key, k) s "     \
	"WHERE n <> 0 OR i <> 0 OR o <> 0 OR f <> 0"
#define WEEKS_SQL                                                             \
	"SELECT COALESCE(string_agg(concat_ws('/', partition, customer_key, " \
	"day, channel, weeks), ',' ORDER BY partition, customer_key), '') "   \
	"FROM rpt_retention_weeks WHERE weeks <> B'0'::bit(104)"

/* Whole local days (Asia/Shanghai): all of it, two weeks from a Monday,
 * one Sunday, and three weeks from a Wednesday. */
static const char *const week_periods[] = {
        "from=2025-10-13&to=2025-12-22",
        "from=2025-10-27&to=2025-11-10",
        "from=2025-11-09&to=2025-11-10",
        "from=2025-11-05&to=2025-11-26",
};
static const char *const week_args[] = {
        "weeks=1",
        "weeks=4",
        "weeks=8",
        "weeks=104",
        "weeks=1&channel=sms",
        "weeks=4&channel=cards",
        "weeks=8&channel=douyin",
        "weeks=104&channel=sms",
};
#define NWPERIODS   (sizeof(week_periods) / sizeof(*week_periods))
#define NWARGS      (sizeof(week_args) / sizeof(*week_args))
#define NWPATHS     (NWPERIODS * NWARGS)
#define WEEKS_AS_OF "as_of=2026-01-01T00:00:00Z"

static char *
get_dump(rw_world *w, size_t i)
{
	json_t *j = rw_get(w, "/v1/reports/retention?%s&%s&" WEEKS_AS_OF,
	                   week_periods[i / NWARGS], week_args[i % NWARGS]);
	char *s = json_dumps(j, JSON_SORT_KEYS);

	cr_assert_not_null(s);
	json_decref(j);
	return (s);
}

/* send_in_batches sends h's events in a random order, in batches of 1 to
 * 50, and folds the cells once half of them are sent. */
static void
send_in_batches(rw_world *w, weeks_hist *h)
{
	size_t left = h->n, sent = 0;
	bool folded = false;

	while (left > 0) {
		size_t k = 1 + roll(h, 50);
		char *batch = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&batch, &len);

		cr_assert_not_null(f);
		if (k > left) {
			k = left;
		}
		for (size_t j = 0; j < k; j++) {
			/* Take a random event still unsent: swap it to
			 * the end of the unsent ones. */
			size_t pick = roll(h, (unsigned)left);
			char *ev = h->ev[pick];
			h->ev[pick] = h->ev[left - 1];
			h->ev[left - 1] = ev;
			left--;
			fprintf(f, "%s%s", j > 0 ? ", " : "", ev);
		}
		fclose(f);
		rw_send(w, "%s", batch);
		free(batch);
		sent += k;
		if (!folded && 2 * sent >= h->n) {
			pond_test_sql_exec(w->ingest.dsn,
			                   "SELECT rpt_cells_fold()");
			folded = true;
		}
	}
}

Test(reporting_weeks, equal_the_facts_after_random_arrival, .timeout = 300)
{
	static weeks_hist h;
	static char *fast[NWPATHS];
	rw_world w;
	unsigned seed = rw_seed();

	h.seed = seed;
	make_weeks_history(&h);
	rw_start(&w, "rpt-weeks", NULL);
	pond_test_clock_write(w.ingest.clock, "2025-12-20T00:00:00Z");
	send_in_batches(&w, &h);
	rw_settle(&w);
	pond_test_sql_exec(w.ingest.dsn, "SELECT rpt_cells_fold()");

	/* Every fact is before as_of: the cells answer. */
	cr_assert_eq(
	        pond_test_sql_int(w.ingest.dsn,
	                          "SELECT count(*) FROM rpt_rollup_horizon "
	                          "WHERE latest >= '2026-01-01T00:00:00Z'"),
	        0, "seed %u", seed);
	for (size_t i = 0; i < NWPATHS; i++) {
		fast[i] = get_dump(&w, i);
	}
	/* Someone was retained in a later week: the check can fail. */
	cr_assert_gt(
	        pond_test_sql_int(w.ingest.dsn,
	                          "SELECT count(*) FROM rpt_cells WHERE "
	                          "cell = 'retention' AND k > 0 AND n > 0"),
	        0, "seed %u", seed);

	/* The triggers' cells and weeks are the set-based recomputation's. */
	char *cells = pond_test_sql_text(w.ingest.dsn, CELLS_SUM_SQL);
	char *weeks = pond_test_sql_text(w.ingest.dsn, WEEKS_SQL);
	pond_test_sql_exec(w.ingest.dsn,
	                   "SELECT rpt_cells_rebuild('Asia/Shanghai')");
	char *cells_rebuilt = pond_test_sql_text(w.ingest.dsn, CELLS_SUM_SQL);
	char *weeks_rebuilt = pond_test_sql_text(w.ingest.dsn, WEEKS_SQL);
	cr_assert_str_eq(cells, cells_rebuilt, "seed %u", seed);
	cr_assert_str_eq(weeks, weeks_rebuilt, "seed %u", seed);
	cr_assert_neq(strlen(weeks_rebuilt), 0);
	free(cells);
	free(weeks);
	free(cells_rebuilt);
	free(weeks_rebuilt);

	/* A changed retention cell, then a changed acquisition cell, change
	 * the answer over the whole history: both kinds answered. */
	char *before = get_dump(&w, 3);
	pond_test_sql_exec(w.ingest.dsn, "UPDATE rpt_cells SET n = n + 1 "
	                                 "WHERE cell = 'retention' AND k = 0");
	char *changed = get_dump(&w, 3);
	cr_assert_str_neq(before, changed,
	                  "seed %u: the retention cells did not answer", seed);
	pond_test_sql_exec(w.ingest.dsn, "UPDATE rpt_cells SET n = n + 1000 "
	                                 "WHERE cell = 'acq'");
	char *resized = get_dump(&w, 3);
	cr_assert_str_neq(changed, resized,
	                  "seed %u: the acq cells did not answer", seed);
	free(before);
	free(changed);
	free(resized);

	/* The fact path gives the same answers. */
	pond_test_sql_exec(
	        w.ingest.dsn,
	        "UPDATE rpt_rollup_horizon SET latest = 'infinity'");
	for (size_t i = 0; i < NWPATHS; i++) {
		char *slow = get_dump(&w, i);
		cr_assert_str_eq(fast[i], slow, "seed %u: %s&%s", seed,
		                 week_periods[i / NWARGS],
		                 week_args[i % NWARGS]);
		free(slow);
		free(fast[i]);
	}
	for (size_t i = 0; i < h.n; i++) {
		free(h.ev[i]);
	}
	free(h.ev);
	rw_stop(&w);
}
