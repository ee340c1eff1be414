/*
 * test_reporting_rollups.c - the rollups of 0007_reporting_rollups.sql
 * (lifecycle, portrait by region / industry / channel / lifecycle,
 * lifetime repurchase) answer exactly what the facts answer; the portrait
 * by tag (no rollup) is asked too, with tag changes of customers that
 * may have no event at all.
 *
 * A random history (customers added zero to two times, orders, refunds,
 * members, profile updates carrying a region, an industry or both, with
 * ties in time) is sent in a random order in batches of random sizes (and
 * tag changes adding and removing tags, in a random order), so
 * that one consumer batch holds several facts of one customer and later
 * facts arrive before earlier ones. Then, at an as_of after every event:
 *   1. each report is asked on the rollup path (the horizon is before
 *      as_of);
 *   2. the counts equal rpt_rollups_rebuild()'s, recomputed from the facts
 *      in one set-based pass (not the triggers' incremental path);
 *   3. with the horizon moved to infinity, the same requests take the
 *      fact path (the code that predates the rollups) and give the very
 *      same JSON.
 *
 * The seed is POND_TEST_SEED or the time; it is printed on failure.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrate.h"
#include "test_reporting.h"

#define NCUST 150

static const char *const regions[] = {"east", "west", "north", "south"};
static const char *const industries[] = {"retail", "food", "tech"};
static const char *const chans[] = {"cards", "sms", "douyin"};
static const char *const tags[] = {"vip", "coupon_hunter", "churn_risk"};

/* The UTC days a history's events fall on, and the test clock (after
 * them: ingest refuses events more than a day ahead of it). */
typedef struct calendar {
	const char *const *days;
	unsigned ndays;
	const char *clock;
} calendar;

static const char *const november_days[] = {"2025-11-01", "2025-11-02",
                                            "2025-11-03"};
static const calendar november = {november_days, 3, "2025-11-05T00:00:00Z"};

typedef struct hist {
	char **ev;
	size_t n, cap;
	unsigned seed;
	int id;
	const calendar *cal; /* november unless make chose another */
} hist;

static unsigned
pick(hist *h, unsigned n)
{
	return ((unsigned)rand_r(&h->seed) % n);
}

/* add appends one event of customer c at a random quarter hour of one
 * of its calendar's days (few distinct minutes: ties happen) with body. */
static void
add(hist *h, int c, const char *body)
{
	char *ev;
	const char *day = h->cal->days[pick(h, h->cal->ndays)];
	unsigned m = pick(h, 24 * 4) * 15;

	cr_assert(asprintf(&ev,
	                   "{\"event_id\": \"r%05d\", \"customer_key\": "
	                   "\"rc%03d\", \"occurred_at\": "
	                   "\"%sT%02u:%02u:00Z\", %s}",
	                   h->id++, c, day, m / 60, m % 60, body) >= 0);
	if (h->n == h->cap) {
		h->cap = h->cap ? 2 * h->cap : 256;
		cr_assert_not_null(
		        h->ev = realloc(h->ev, h->cap * sizeof(char *)));
	}
	h->ev[h->n++] = ev;
}

/* add_orders appends zero to four paid orders of customer c, and one
 * time in four a refund. */
static void
add_orders(hist *h, int c)
{
	char body[160];

	for (unsigned k = pick(h, 5); k > 0; k--) {
		snprintf(body, sizeof(body),
		         "\"order_paid\": {\"order_id\": \"o%d\", "
		         "\"amount_fen\": %u}",
		         h->id, 100 + pick(h, 900));
		add(h, c, body);
	}
	if (pick(h, 4) == 0) {
		snprintf(body, sizeof(body),
		         "\"order_refunded\": {\"order_id\": \"f%d\", "
		         "\"amount_fen\": 50}",
		         h->id);
		add(h, c, body);
	}
}

static void
make_history(hist *h)
{
	char body[160];

	for (int c = 0; c < NCUST; c++) {
		for (unsigned k = pick(h, 3); k > 0; k--) {
			snprintf(body, sizeof(body),
			         "\"contact_added\": {\"channel\": \"%s\"}",
			         chans[pick(h, 3)]);
			add(h, c, body);
		}
		add_orders(h, c);
		if (pick(h, 5) == 0) {
			add(h, c, "\"member_joined\": {\"tier\": \"gold\"}");
		}
		for (unsigned k = pick(h, 4); k > 0; k--) {
			unsigned which = pick(h, 3);
			const char *r = regions[pick(h, 4)];
			const char *i = industries[pick(h, 3)];
			if (which == 0) {
				snprintf(body, sizeof(body),
				         "\"profile_updated\": {\"region\": "
				         "\"%s\"}",
				         r);
			} else if (which == 1) {
				snprintf(body, sizeof(body),
				         "\"profile_updated\": {\"industry\": "
				         "\"%s\"}",
				         i);
			} else {
				snprintf(body, sizeof(body),
				         "\"profile_updated\": {\"region\": "
				         "\"%s\", \"industry\": \"%s\"}",
				         r, i);
			}
			add(h, c, body);
		}
	}
}

/* send_shuffled sends the events in a random order, in batches of 1 to
 * 60 events. */
static void
send_shuffled(rw_world *w, hist *h)
{
	for (size_t i = h->n - 1; i > 0; i--) {
		size_t j = pick(h, (unsigned)i + 1);
		char *t = h->ev[i];
		h->ev[i] = h->ev[j];
		h->ev[j] = t;
	}
	for (size_t i = 0; i < h->n;) {
		size_t k = 1 + pick(h, 60);
		if (k > h->n - i) {
			k = h->n - i;
		}
		rw_send_list(w, &h->ev[i], k);
		i += k;
	}
}

/* start_shuffled makes a history with make from the test's seed (on
 * november's days unless make chooses another calendar), starts the world
 * (reporting with extra_env, or NULL) with the calendar's clock and sends
 * the history shuffled; returns the seed. */
static unsigned
start_shuffled(rw_world *w, hist *h, void (*make)(hist *), const char *name,
               const char *const *extra_env)
{
	unsigned seed = rw_seed();

	h->seed = seed;
	h->cal = &november;
	make(h);
	rw_start(w, name, extra_env);
	pond_test_clock_write(w->ingest.clock, h->cal->clock);
	send_shuffled(w, h);
	return (seed);
}

#define AS_OF "as_of=2025-11-10T00:00:00Z"

static const char *const paths[] = {
        "lifecycle?" AS_OF,
        "portrait?group_by=region&" AS_OF,
        "portrait?group_by=industry&" AS_OF,
        "portrait?group_by=channel&" AS_OF,
        "portrait?group_by=lifecycle&" AS_OF,
        "portrait?group_by=tag&" AS_OF,
        "repurchase?from=2025-11-01&to=2025-11-04&" AS_OF,
};
#define NPATHS (sizeof(paths) / sizeof(*paths))

#define COUNTS_SQL                                                            \
	"SELECT COALESCE(string_agg(partition || '/' || dim || '/' || value " \
	"|| '=' || n, ',' ORDER BY partition, dim, value), '') FROM "         \
	"rpt_rollup_counts WHERE n <> 0"

Test(reporting_rollups, equal_the_facts_after_random_arrival, .timeout = 300)
{
	static hist h;
	rw_world w;
	json_t *fast[NPATHS];
	unsigned seed =
	        start_shuffled(&w, &h, make_history, "rpt-rollups", NULL);

	/* Tag changes of random customers in a random order: adds and
	 * removes of three tags, ties in time broken by seq. */
	for (int i = 0; i < 2 * NCUST; i++) {
		char key[16], at[32];
		unsigned m = pick(&h, 3 * 24 * 2) * 30;
		snprintf(key, sizeof(key), "rc%03u", pick(&h, NCUST));
		snprintf(at, sizeof(at), "2025-11-%02uT%02u:%02u:00Z",
		         1 + m / 1440, m % 1440 / 60, m % 60);
		rw_tag_change(&w, key, tags[pick(&h, 3)], pick(&h, 3) != 0,
		              at);
	}
	rw_settle(&w);

	/* Every event is before as_of: the rollups answer. */
	cr_assert_eq(
	        pond_test_sql_int(w.ingest.dsn,
	                          "SELECT count(*) FROM rpt_rollup_horizon "
	                          "WHERE latest >= '2025-11-10T00:00:00Z'"),
	        0, "seed %u", seed);
	for (size_t i = 0; i < NPATHS; i++) {
		fast[i] = rw_get(&w, "/v1/reports/%s", paths[i]);
	}
	/* The lifecycle counts every customer that had an event. */
	json_t *total = json_object_get(fast[0], "total");
	cr_assert_eq(json_integer_value(json_object_get(total, "customers")),
	             pond_test_sql_int(w.ingest.dsn,
	                               "SELECT count(DISTINCT "
	                               "customer_key) FROM events "
	                               "WHERE customer_key IS NOT "
	                               "NULL"),
	             "seed %u", seed);

	/* The triggers' counts are the set-based recomputation's. */
	char *incremental = pond_test_sql_text(w.ingest.dsn, COUNTS_SQL);
	pond_test_sql_exec(w.ingest.dsn, "SELECT rpt_rollups_rebuild()");
	char *rebuilt = pond_test_sql_text(w.ingest.dsn, COUNTS_SQL);
	cr_assert_str_eq(incremental, rebuilt, "seed %u", seed);
	cr_assert_neq(strlen(rebuilt), 0);
	free(incremental);
	free(rebuilt);

	/* The fact path gives the same answers. */
	pond_test_sql_exec(
	        w.ingest.dsn,
	        "UPDATE rpt_rollup_horizon SET latest = 'infinity'");
	for (size_t i = 0; i < NPATHS; i++) {
		json_t *slow = rw_get(&w, "/v1/reports/%s", paths[i]);
		char *a = json_dumps(fast[i], JSON_SORT_KEYS);
		char *b = json_dumps(slow, JSON_SORT_KEYS);
		cr_assert_str_eq(a, b, "seed %u: %s", seed, paths[i]);
		free(a);
		free(b);
		json_decref(slow);
		json_decref(fast[i]);
	}
	for (size_t i = 0; i < h.n; i++) {
		free(h.ev[i]);
	}
	free(h.ev);
	rw_stop(&w);
}

/*
 * The day cells of 0008_reporting_cells.sql (acquisition, ltv, payback,
 * guides, funnel): a random history of customers added zero to two times (a
 * later add may come with an earlier time and take the acquisition over, with
 * another channel, guide and store), orders and refunds before and after
 * the acquisition, rewards and members, sent in a random order in batches of
 * random sizes. Then:
 *   1. the cells equal rpt_cells_rebuild()'s, recomputed from the facts;
 *   2. every request over whole local days (POND_TZ) answers from the
 *      cells, and the same request on the fact path (the horizon moved to
 *      infinity) gives the very same JSON;
 *   3. a cell changed by hand changes an answer: the cells did answer;
 *   4. cells rebuilt in another zone are rebuilt in POND_TZ when
 *      pond-reporting starts.
 */

static const char *const guides[] = {"g1", "g2", "g3"};
static const char *const stores[] = {"s1", "s2"};

static void
make_cells_history(hist *h)
{
	char body[200], guide[32], store[32];

	for (int c = 0; c < NCUST; c++) {
		for (unsigned k = pick(h, 3); k > 0; k--) {
			unsigned g = pick(h, 4), s = pick(h, 3);
			guide[0] = store[0] = '\0';
			if (g < 3) {
				snprintf(guide, sizeof(guide),
				         ", \"guide_id\": \"%s\"", guides[g]);
			}
			if (s < 2) {
				snprintf(store, sizeof(store),
				         ", \"store_id\": \"%s\"", stores[s]);
			}
			snprintf(
			        body, sizeof(body),
			        "\"contact_added\": {\"channel\": \"%s\"%s%s}",
			        chans[pick(h, 3)], guide, store);
			add(h, c, body);
		}
		add_orders(h, c);
		for (unsigned k = pick(h, 3); k > 0; k--) {
			snprintf(body, sizeof(body),
			         "\"reward_paid\": {\"kind\": \"red_packet\", "
			         "\"amount_fen\": %u}",
			         100 + pick(h, 200));
			add(h, c, body);
		}
		for (unsigned k = pick(h, 3); k > 0; k--) {
			add(h, c, "\"member_joined\": {\"tier\": \"gold\"}");
		}
	}
}

/* Whole local days in Asia/Shanghai (the world's POND_TZ): the history's
 * minutes (2025-11-01 to 11-03 UTC) fall on local 11-01 to 11-04. */
static const char *const periods[] = {
        "from=2025-11-01&to=2025-11-03",
        "from=2025-11-02&to=2025-11-04",
        "from=2025-11-03&to=2025-11-04",
        "from=2025-10-25&to=2025-11-10",
};
static const char *const cell_reports[] = {
        "acquisition?",
        "acquisition?channel=sms&",
        "ltv?days=1,2,3&",
        "ltv?days=1,3&channel=cards&",
        "payback?margin=0.5&",
        "payback?channel=douyin&",
        "guides?",
        "funnel?window_days=1&",
        "funnel?window_days=2&channel=sms&",
        "funnel?",
};
/* The requests that must change when the cells do. */
static const char *const probes[] = {"acquisition?", "ltv?days=3&", "guides?",
                                     "funnel?window_days=2&"};
#define NPROBES       (sizeof(probes) / sizeof(*probes))
#define NPERIODS      (sizeof(periods) / sizeof(*periods))
#define NCELL_REPORTS (sizeof(cell_reports) / sizeof(*cell_reports))
#define NCELL_PATHS   (NPERIODS * NCELL_REPORTS)

/* The cells summed over partitions (what every request reads; the fold
 * moves them between partitions). */
#define CELLS_SQL                                                             \
	"SELECT COALESCE(string_agg(concat_ws('/', cell, day, key, k, n, "    \
	"i, o, f), ',' ORDER BY cell, day, key, k), '') FROM (SELECT cell, "  \
	"day, key, k, sum(n) AS n, sum(incentive_fen) AS i, sum(orders) AS "  \
	"o, sum(net_fen) AS f FROM rpt_cells GROUP BY cell, day, key, k) s "  \
	"WHERE n <> 0 OR i <> 0 OR o <> 0 OR f <> 0"

/* pond-reporting folds the cells every 50 ms while the history arrives. */
static const char *const fold_often[] = {"POND_CELLS_FOLD_MS=50", NULL};

static char *
dump(json_t *j)
{
	char *s = json_dumps(j, JSON_SORT_KEYS);

	cr_assert_not_null(s);
	return (s);
}

Test(reporting_cells, equal_the_facts_after_random_arrival, .timeout = 300)
{
	static hist h;
	static char *fast[NCELL_PATHS], *changed[NPROBES];
	rw_world w;
	unsigned seed = start_shuffled(&w, &h, make_cells_history, "rpt-cells",
	                               fold_often);

	rw_settle(&w);
	/* pond-reporting's folds ran (the answers below are over folded
	 * cells, and the comparison with the rebuild shows that folding
	 * beside the consumers lost nothing). */
	cr_assert_gt(pond_test_sql_int(w.ingest.dsn,
	                               "SELECT count(*) FROM rpt_cells WHERE "
	                               "partition = -1"),
	             0, "seed %u", seed);

	for (size_t i = 0; i < NCELL_PATHS; i++) {
		json_t *j = rw_get(&w, "/v1/reports/%s%s&" AS_OF,
		                   cell_reports[i % NCELL_REPORTS],
		                   periods[i / NCELL_REPORTS]);
		fast[i] = dump(j);
		json_decref(j);
	}

	/* The triggers' cells are the set-based recomputation's. */
	char *incremental = pond_test_sql_text(w.ingest.dsn, CELLS_SQL);
	pond_test_sql_exec(w.ingest.dsn,
	                   "SELECT rpt_cells_rebuild('Asia/Shanghai')");
	char *rebuilt = pond_test_sql_text(w.ingest.dsn, CELLS_SQL);
	cr_assert_str_eq(incremental, rebuilt, "seed %u", seed);
	cr_assert_neq(strlen(rebuilt), 0);
	free(incremental);

	/* A changed cell changes the answer: the cells answered above. */
	pond_test_sql_exec(w.ingest.dsn,
	                   "UPDATE rpt_cells SET n = n + 1, net_fen = net_fen "
	                   "+ 100000");
	for (size_t i = 0; i < NPROBES; i++) {
		json_t *j = rw_get(&w, "/v1/reports/%s%s&" AS_OF, probes[i],
		                   periods[3]);
		changed[i] = dump(j);
		json_decref(j);
	}
	/* Cells kept in another zone: pond-reporting rebuilds them in
	 * POND_TZ at start. */
	pond_test_sql_exec(w.ingest.dsn, "SELECT rpt_cells_rebuild('UTC')");
	rw_restart_reporting(&w, "rpt-cells");
	for (int i = 0; i < 600; i++) {
		char *tz = pond_test_sql_text(w.ingest.dsn,
		                              "SELECT tz FROM rpt_cells_zone");
		bool done = strcmp(tz, "Asia/Shanghai") == 0;
		free(tz);
		if (done) {
			break;
		}
		usleep(100000);
	}
	char *restarted = pond_test_sql_text(w.ingest.dsn, CELLS_SQL);
	cr_assert_str_eq(restarted, rebuilt, "seed %u", seed);
	free(restarted);
	free(rebuilt);

	/* The fact path gives the same answers. */
	pond_test_sql_exec(
	        w.ingest.dsn,
	        "UPDATE rpt_rollup_horizon SET latest = 'infinity'");
	for (size_t i = 0; i < NCELL_PATHS; i++) {
		json_t *j = rw_get(&w, "/v1/reports/%s%s&" AS_OF,
		                   cell_reports[i % NCELL_REPORTS],
		                   periods[i / NCELL_REPORTS]);
		char *slow = dump(j);
		cr_assert_str_eq(fast[i], slow, "seed %u: %s%s", seed,
		                 cell_reports[i % NCELL_REPORTS],
		                 periods[i / NCELL_REPORTS]);
		free(slow);
		free(fast[i]);
		json_decref(j);
	}
	for (size_t i = 0; i < NPROBES; i++) {
		json_t *j = rw_get(&w, "/v1/reports/%s%s&" AS_OF, probes[i],
		                   periods[3]);
		char *slow = dump(j);
		cr_assert_str_neq(slow, changed[i],
		                  "seed %u: the cells did not answer %s", seed,
		                  probes[i]);
		free(slow);
		free(changed[i]);
		json_decref(j);
	}
	for (size_t i = 0; i < h.n; i++) {
		free(h.ev[i]);
	}
	free(h.ev);
	rw_stop(&w);
}

/*
 * The history cells of 0014_reporting_history.sql, by local year, month,
 * day and hour (0015_reporting_history_calendar.sql): lifecycle and the
 * portrait by region, industry, channel and lifecycle at an as_of in the
 * past. The random history of the rollups test, on days that straddle
 * local month and year boundaries (UTC 16:00 is local midnight), sent in
 * a random order while pond-reporting folds. Then:
 *   1. the cells equal rpt_cells_rebuild()'s, recomputed from the facts;
 *   2. at as_of before every fact, at local midnights that start a month
 *      or a year, at 15-minute marks (where facts fall: a fact at as_of
 *      does not count) and between them, two years on, the answers
 *      from the cells equal the answers from the facts (the cells kept in
 *      another zone than POND_TZ: the requests take the facts);
 *   3. a cell of each level changed by hand changes the answers at an
 *      as_of that reads that level: the cells did answer.
 */

static const char *const history_days[] = {
        "2025-10-31", "2025-11-30", "2025-12-31",
        "2026-01-31", "2026-03-15", "2027-02-10",
};
static const calendar history_calendar = {history_days, 6,
                                          "2027-02-12T00:00:00Z"};

static void
make_calendar_history(hist *h)
{
	h->cal = &history_calendar;
	make_history(h);
}

static const char *const history_as_of[] = {
        "2025-10-30",
        "2025-10-31T16:00:00Z", /* local 11-01 00:00 */
        "2025-10-31T17:15:00Z",
        "2025-10-31T17:20:00Z",
        "2025-11-15",
        "2025-11-30T23:45:00Z", /* local 12-01 07:45 */
        "2025-12-01",
        "2025-12-31T15:59:59.999999Z", /* local 12-31, the last instant */
        "2026-01-01",
        "2026-01-01T03:20:00Z",
        "2026-02-01",
        "2026-02-15",
        "2026-03-15T07:30:00Z", /* local 15:30 */
        "2026-03-16",
        "2027-01-05", /* the years 2025 and 2026 */
        "2027-03-01",
};
static const char *const history_reports[] = {
        "lifecycle?",
        "portrait?group_by=region&",
        "portrait?group_by=industry&",
        "portrait?group_by=channel&",
        "portrait?group_by=lifecycle&",
};
#define NHISTORY_AS_OF   (sizeof(history_as_of) / sizeof(*history_as_of))
#define NHISTORY_REPORTS (sizeof(history_reports) / sizeof(*history_reports))
#define NHISTORY         (NHISTORY_AS_OF * NHISTORY_REPORTS)

/* A cell of each level (a kind's suffix), its day and k, and an as_of
 * (one of history_as_of) whose answers read it. */
static const struct {
	const char *suffix, *day;
	int k;
	const char *as_of;
} history_levels[] = {
        {"_y", "2025-01-01", 0, "2026-01-01T03:20:00Z"},
        {"_m", "2025-11-01", 0, "2025-12-31T15:59:59.999999Z"},
        {"", "2025-12-01", 0, "2025-12-31T15:59:59.999999Z"},
        {"_h", "2026-03-15", 14, "2026-03-15T07:30:00Z"},
};
#define NHISTORY_LEVELS (sizeof(history_levels) / sizeof(*history_levels))

static char *
history_get(rw_world *w, size_t i)
{
	json_t *j = rw_get(w, "/v1/reports/%sas_of=%s",
	                   history_reports[i % NHISTORY_REPORTS],
	                   history_as_of[i / NHISTORY_REPORTS]);
	char *s = dump(j);

	json_decref(j);
	return (s);
}

/* history_add_level adds n to a cell of every history kind at level l. */
static void
history_add_level(rw_world *w, size_t l, int n)
{
	char *sql;

	cr_assert(asprintf(&sql,
	                   "SELECT rpt_cells_add(ARRAY(SELECT (kind || '%s', "
	                   "'%s', key, %d, -1, %d, 0, 0, 0)::rpt_cells_delta "
	                   "FROM (VALUES ('stage_at', 'potential'), "
	                   "('region_at', 'east'), ('industry_at', 'retail'), "
	                   "('channel_at', 'sms')) v(kind, key)))",
	                   history_levels[l].suffix, history_levels[l].day,
	                   history_levels[l].k, n) >= 0);
	pond_test_sql_exec(w->ingest.dsn, sql);
	free(sql);
}

Test(reporting_history, equal_the_facts_after_random_arrival, .timeout = 300)
{
	static hist h;
	static char *fast[NHISTORY];
	rw_world w;
	unsigned seed = start_shuffled(&w, &h, make_calendar_history,
	                               "rpt-history", fold_often);

	rw_settle(&w);
	for (size_t i = 0; i < NHISTORY; i++) {
		fast[i] = history_get(&w, i);
	}

	char *incremental = pond_test_sql_text(w.ingest.dsn, CELLS_SQL);
	pond_test_sql_exec(w.ingest.dsn,
	                   "SELECT rpt_cells_rebuild('Asia/Shanghai')");
	char *rebuilt = pond_test_sql_text(w.ingest.dsn, CELLS_SQL);
	cr_assert_str_eq(incremental, rebuilt, "seed %u", seed);
	cr_assert_neq(strstr(rebuilt, "stage_at_y"), NULL);
	cr_assert_neq(strstr(rebuilt, "region_at_m"), NULL);

	/* 0015 made the month and year cells of the history kept before it
	 * from the day cells: the same as the rebuild's. */
	pond_test_sql_exec(
	        w.ingest.dsn,
	        "SELECT rpt_cells_lock(true); DELETE FROM rpt_cells "
	        "WHERE cell ~ '_at_[my]$'");
	for (int i = 0; i < pond_migrations_count; i++) {
		if (strcmp(pond_migrations[i].name,
		           "0015_reporting_history_calendar") == 0) {
			pond_test_sql_exec(w.ingest.dsn,
			                   pond_migrations[i].sql);
		}
	}
	char *filled = pond_test_sql_text(w.ingest.dsn, CELLS_SQL);
	cr_assert_str_eq(filled, rebuilt, "seed %u", seed);
	free(filled);
	free(incremental);
	free(rebuilt);

	/* Cells in another zone than POND_TZ: the facts answer. */
	pond_test_sql_exec(w.ingest.dsn,
	                   "UPDATE rpt_cells_zone SET tz = 'UTC'");
	for (size_t i = 0; i < NHISTORY; i++) {
		char *slow = history_get(&w, i);
		cr_assert_str_eq(fast[i], slow, "seed %u: %sas_of=%s", seed,
		                 history_reports[i % NHISTORY_REPORTS],
		                 history_as_of[i / NHISTORY_REPORTS]);
		free(slow);
	}

	/* A changed cell of each level changes the answers that read it. */
	pond_test_sql_exec(w.ingest.dsn,
	                   "UPDATE rpt_cells_zone SET tz = 'Asia/Shanghai'");
	for (size_t l = 0; l < NHISTORY_LEVELS; l++) {
		history_add_level(&w, l, 1);
		for (size_t i = 0; i < NHISTORY; i++) {
			if (strcmp(history_as_of[i / NHISTORY_REPORTS],
			           history_levels[l].as_of) != 0) {
				continue;
			}
			char *changed = history_get(&w, i);
			cr_assert_str_neq(
			        changed, fast[i],
			        "seed %u: the cells%s of %s did not "
			        "answer %s",
			        seed, history_levels[l].suffix,
			        history_levels[l].day,
			        history_reports[i % NHISTORY_REPORTS]);
			free(changed);
		}
		history_add_level(&w, l, -1);
	}
	for (size_t i = 0; i < NHISTORY; i++) {
		free(fast[i]);
	}
	rw_stop(&w);
}
