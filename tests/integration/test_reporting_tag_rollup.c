/*
 * test_reporting_tag_rollup.c - the tag rollups of 0013_reporting_tags.sql
 * (the portrait by tag, and with tag=T by every group_by) answer exactly
 * what the facts answer.
 *
 * A random history of two streams, interleaved in a random order: events
 * (customers added zero to two times -- a later add may carry an earlier
 * time and another channel --, orders and member_joined moving the stage,
 * profile updates carrying a region, an industry or both) sent through
 * ingest in batches of random sizes, and tag changes (four tags put on and
 * off, few distinct times, so ties broken by seq, a later change often
 * arriving before an earlier one) written to the tag_changes stream one by
 * one while the events are being applied. Some customers have tag changes
 * and no event (never in the population); many get a tag before their
 * first event. Then, at an as_of after every fact:
 *   1. the counts and the per-customer state the triggers kept equal
 *      rpt_rollups_rebuild()'s, recomputed from the facts in one pass;
 *   2. every request answers from the rollups, and with the horizon moved
 *      to infinity (the fact path, the code that predates the rollups) the
 *      very same JSON;
 *   3. counts changed by hand change every answer: the rollups answered.
 *
 * The seed is POND_TEST_SEED or the time; it is printed on failure.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_reporting.h"

#define TR_CUSTOMERS 120
/* Customers TR_CUSTOMERS .. TR_CUSTOMERS + TR_GHOSTS - 1 have tag changes
 * and no event. */
#define TR_GHOSTS 10

static const char *const tr_tags[] = {"vip", "coupon_hunter", "churn_risk",
                                      "lifecycle:member"};
#define TR_NTAGS (sizeof(tr_tags) / sizeof(*tr_tags))
static const char *const tr_regions[] = {"east", "west", "north"};
static const char *const tr_industries[] = {"retail", "food", "tech"};
static const char *const tr_channels[] = {"cards", "sms", "douyin"};

/* tr_item is one record to send: an event (JSON) or a tag change. */
typedef struct tr_item {
	bool is_tag;
	char key[16];
	char *event;
	const char *tag;
	bool added;
	char at[32];
} tr_item;

typedef struct tr_history {
	tr_item *items;
	size_t n, cap;
	unsigned seed;
	int next_id;
} tr_history;

static unsigned
tr_rand(tr_history *h, unsigned n)
{
	return ((unsigned)rand_r(&h->seed) % n);
}

/* tr_time writes a time of 2025-11-01 .. 11-02 UTC at one of few minutes
 * (of fewer still for tag changes: few is ties within one customer's
 * changes of a tag, broken by seq). */
static void
tr_time(tr_history *h, bool is_tag, char *at, size_t len)
{
	unsigned m =
	        is_tag ? tr_rand(h, 4) * 360 : tr_rand(h, 2 * 24 * 2) * 30;

	snprintf(at, len, "2025-11-%02uT%02u:%02u:00Z", 1 + m / 1440,
	         m % 1440 / 60, m % 60);
}

static tr_item *
tr_push(tr_history *h, int c, bool is_tag)
{
	if (h->n == h->cap) {
		h->cap = h->cap ? 2 * h->cap : 512;
		cr_assert_not_null(
		        h->items =
		                realloc(h->items, h->cap * sizeof(tr_item)));
	}
	tr_item *it = &h->items[h->n++];
	memset(it, 0, sizeof(*it));
	snprintf(it->key, sizeof(it->key), "tg%03d", c);
	it->is_tag = is_tag;
	tr_time(h, is_tag, it->at, sizeof(it->at));
	return (it);
}

/* tr_event adds an event of customer c with body (proto3 JSON). */
static void
tr_event(tr_history *h, int c, const char *body)
{
	tr_item *it = tr_push(h, c, false);

	cr_assert(asprintf(&it->event,
	                   "{\"event_id\": \"tg%05d\", \"customer_key\": "
	                   "\"%s\", \"occurred_at\": \"%s\", %s}",
	                   h->next_id++, it->key, it->at, body) >= 0);
}

static void
tr_tag(tr_history *h, int c)
{
	tr_item *it = tr_push(h, c, true);

	it->tag = tr_tags[tr_rand(h, TR_NTAGS)];
	it->added = tr_rand(h, 3) != 0;
}

static void
tr_make(tr_history *h)
{
	char body[160];

	for (int c = 0; c < TR_CUSTOMERS + TR_GHOSTS; c++) {
		for (unsigned k = tr_rand(h, 6); k > 0; k--) {
			tr_tag(h, c);
		}
		if (c >= TR_CUSTOMERS) {
			continue;
		}
		for (unsigned k = tr_rand(h, 3); k > 0; k--) {
			snprintf(body, sizeof(body),
			         "\"contact_added\": {\"channel\": \"%s\"}",
			         tr_channels[tr_rand(h, 3)]);
			tr_event(h, c, body);
		}
		for (unsigned k = tr_rand(h, 5); k > 0; k--) {
			snprintf(body, sizeof(body),
			         "\"order_paid\": {\"order_id\": \"o%d\", "
			         "\"amount_fen\": 100}",
			         h->next_id);
			tr_event(h, c, body);
		}
		if (tr_rand(h, 5) == 0) {
			tr_event(h, c,
			         "\"member_joined\": {\"tier\": \"gold\"}");
		}
		for (unsigned k = tr_rand(h, 4); k > 0; k--) {
			const char *r = tr_regions[tr_rand(h, 3)];
			const char *i = tr_industries[tr_rand(h, 3)];
			unsigned which = tr_rand(h, 3);
			snprintf(body, sizeof(body),
			         "\"profile_updated\": {%s%s%s%s%s%s}",
			         which != 1 ? "\"region\": \"" : "",
			         which != 1 ? r : "",
			         which == 2   ? "\", "
			         : which == 0 ? "\""
			                      : "",
			         which != 0 ? "\"industry\": \"" : "",
			         which != 0 ? i : "", which != 0 ? "\"" : "");
			tr_event(h, c, body);
		}
	}
}

/* tr_send shuffles the records and sends them in that order: a run of
 * events in one batch of up to 40, a tag change on its own. */
static void
tr_send(rw_world *w, tr_history *h)
{
	for (size_t i = h->n - 1; i > 0; i--) {
		size_t j = tr_rand(h, (unsigned)i + 1);
		tr_item t = h->items[i];
		h->items[i] = h->items[j];
		h->items[j] = t;
	}
	for (size_t i = 0; i < h->n;) {
		if (h->items[i].is_tag) {
			rw_tag_change(w, h->items[i].key, h->items[i].tag,
			              h->items[i].added, h->items[i].at);
			i++;
			continue;
		}
		size_t k = 0, most = 1 + tr_rand(h, 40), len = 1;
		while (i + k < h->n && k < most && !h->items[i + k].is_tag) {
			len += strlen(h->items[i + k].event) + 2;
			k++;
		}
		char *batch = calloc(1, len);
		cr_assert_not_null(batch);
		for (size_t j = 0; j < k; j++) {
			if (j > 0) {
				strcat(batch, ", ");
			}
			strcat(batch, h->items[i + j].event);
		}
		rw_send(w, "%s", batch);
		free(batch);
		i += k;
	}
}

#define TR_AS_OF "as_of=2025-11-10T00:00:00Z"

static const char *const tr_group_bys[] = {"region", "industry", "channel",
                                           "lifecycle", "tag"};
#define TR_NGROUPS (sizeof(tr_group_bys) / sizeof(*tr_group_bys))
/* Every group_by with each tag, and with a tag no one has; by tag. */
#define TR_NPATHS ((TR_NTAGS + 1) * TR_NGROUPS + 1)

static char *
tr_path(size_t i)
{
	char *p;

	if (i == TR_NPATHS - 1) {
		cr_assert(asprintf(&p, "portrait?group_by=tag&" TR_AS_OF) >=
		          0);
		return (p);
	}
	size_t t = i / TR_NGROUPS;
	cr_assert(asprintf(&p, "portrait?group_by=%s&tag=%s&" TR_AS_OF,
	                   tr_group_bys[i % TR_NGROUPS],
	                   t < TR_NTAGS ? tr_tags[t] : "nobody") >= 0);
	return (p);
}

static char *
tr_answer(rw_world *w, size_t i)
{
	char *path = tr_path(i);
	json_t *j = rw_get(w, "/v1/reports/%s", path);
	char *s = json_dumps(j, JSON_SORT_KEYS);

	cr_assert_not_null(s);
	json_decref(j);
	free(path);
	return (s);
}

#define TR_COUNTS_SQL                                                         \
	"SELECT COALESCE(string_agg(concat_ws('/', tag, dim, value, "         \
	"partition, n), ',' ORDER BY tag, dim, value, partition), '') FROM "  \
	"rpt_rollup_tags WHERE n <> 0"
#define TR_STATE_SQL                                                          \
	"SELECT COALESCE(string_agg(concat_ws('/', partition, customer_key, " \
	"tag, changed_at, seq, added), ',' ORDER BY partition, "              \
	"customer_key, "                                                      \
	"tag), '') FROM rpt_rollup_tag_state"

Test(reporting_tag_rollup, equal_the_facts_after_random_arrival,
     .timeout = 300)
{
	static tr_history h;
	static char *fast[TR_NPATHS];
	rw_world w;
	unsigned seed = rw_seed();

	h.seed = seed;
	tr_make(&h);
	rw_start(&w, "rpt-tag-rollup", NULL);
	pond_test_clock_write(w.ingest.clock, "2025-11-05T00:00:00Z");
	tr_send(&w, &h);
	rw_settle(&w);

	/* Every fact is before as_of: the rollups answer. */
	cr_assert_eq(
	        pond_test_sql_int(w.ingest.dsn,
	                          "SELECT count(*) FROM rpt_rollup_horizon "
	                          "WHERE latest >= '2025-11-10T00:00:00Z'"),
	        0, "seed %u", seed);
	for (size_t i = 0; i < TR_NPATHS; i++) {
		fast[i] = tr_answer(&w, i);
	}

	/* The triggers' state and counts are the set-based recomputation's. */
	char *counts = pond_test_sql_text(w.ingest.dsn, TR_COUNTS_SQL);
	char *state = pond_test_sql_text(w.ingest.dsn, TR_STATE_SQL);
	pond_test_sql_exec(w.ingest.dsn, "SELECT rpt_rollups_rebuild()");
	char *counts2 = pond_test_sql_text(w.ingest.dsn, TR_COUNTS_SQL);
	char *state2 = pond_test_sql_text(w.ingest.dsn, TR_STATE_SQL);
	cr_assert_str_eq(counts, counts2, "seed %u", seed);
	cr_assert_str_eq(state, state2, "seed %u", seed);
	cr_assert_neq(strlen(counts2), 0);
	free(counts);
	free(counts2);
	free(state);
	free(state2);

	/* Counts changed by hand change every answer but the tag no one
	 * has (it has no count): the rollups answered. */
	pond_test_sql_exec(w.ingest.dsn,
	                   "UPDATE rpt_rollup_tags SET n = n + 1");
	for (size_t i = 0; i < TR_NPATHS; i++) {
		char *changed = tr_answer(&w, i);
		if (i / TR_NGROUPS != TR_NTAGS) {
			cr_assert_str_neq(
			        changed, fast[i],
			        "seed %u: the rollups did not answer "
			        "path %zu",
			        seed, i);
		}
		free(changed);
	}
	pond_test_sql_exec(w.ingest.dsn, "SELECT rpt_rollups_rebuild()");

	/* The fact path gives the same answers. */
	pond_test_sql_exec(
	        w.ingest.dsn,
	        "UPDATE rpt_rollup_horizon SET latest = 'infinity'");
	for (size_t i = 0; i < TR_NPATHS; i++) {
		char *slow = tr_answer(&w, i);
		char *path = tr_path(i);
		cr_assert_str_eq(fast[i], slow, "seed %u: %s", seed, path);
		free(path);
		free(slow);
		free(fast[i]);
	}
	for (size_t i = 0; i < h.n; i++) {
		free(h.items[i].event);
	}
	free(h.items);
	rw_stop(&w);
}
