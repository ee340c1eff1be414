/*
 * select.c - campaigns selecting customers, a batch at a time: the rules
 * every touch obeys (API.md section 3), in this order, the first that
 * stops it naming the suppression:
 *
 *   window, paused, removed, opt_out   (facts at selection time)
 *   hold-out                           (a pure draw: never sent)
 *   quiet hours                        (not a stop: due_at moves to the
 *                                       window's end, state "deferred")
 *   frequency_cap                      (ledger of the due day and week)
 *   quota                              (campaigns.used under its row lock)
 *
 * A batch is the selections of one consumer batch (or one one-shot
 * step). It reads set-wise, decides in C and writes set-wise, so its
 * statements do not grow with its touches: one for the touch ids that
 * exist already (a replayed cause changes nothing: the touch id comes
 * from the cause), one upsert of sched_customers that locks every
 * customer's row in (partition, key) order and returns removed and
 * opt-out, one read of the ledger over the weeks the due days fall in,
 * one lock of the quota campaigns' rows in id order; then, in batch order,
 * each selection is decided with the ledger and quota counts kept in
 * memory, so a second touch of a customer sees the first and the quota
 * goes first come, first served; then one INSERT of the touches, one
 * UPDATE of the quotas taken and one upsert of the ledger's increments.
 *
 * Two transactions selecting the same customer (the events and
 * tag_changes consumers, or two replicas) take its row one after the
 * other, and a quota campaign's row is held from the read of what is left
 * to COMMIT, so no more than quota touches are ever made.
 *
 * Campaigns with an audience read tagging's profile per selection, and
 * fission rewards take an advisory lock per touch id: both rare, both
 * still inside the batch.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "scheduler.h"

/* select_params is the campaign's params plus, on a fission reward, the
 * reward itself, as JSON text (the caller frees). */
static char *
select_params(const scheduler_campaign *c, const scheduler_cause *cause)
{
	json_t *p =
	        c->params != NULL ? json_deep_copy(c->params) : json_object();
	char amount[24];
	char *text;

	if (p == NULL) {
		return (NULL);
	}
	if (cause->reward) {
		snprintf(amount, sizeof(amount), "%" PRId64,
		         c->fission_reward_fen);
		json_object_set_new(p, "reward_kind",
		                    json_string(c->fission_reward_kind));
		json_object_set_new(p, "reward_amount_fen",
		                    json_string(amount));
	}
	text = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(p);
	return (text);
}

/* --- the batch ----------------------------------------------------------- */

int
scheduler_selections_add(scheduler_selections *sel, pond_arena *arena,
                         const scheduler_campaign *c,
                         const scheduler_cause *cause)
{
	scheduler_selection *d;

	if (sel->n == sel->cap) {
		size_t cap = sel->cap == 0 ? 64 : sel->cap * 2;
		scheduler_selection *v = realloc(sel->v, cap * sizeof(*v));
		if (v == NULL) {
			return (POND_ENOMEM);
		}
		sel->v = v;
		sel->cap = cap;
	}
	d = &sel->v[sel->n];
	d->campaign = c;
	d->cause = *cause;
	d->cause.customer_key = pond_arena_strdup(arena, cause->customer_key);
	d->cause.tag = pond_arena_strdup(arena, cause->tag);
	if (d->cause.customer_key == NULL || d->cause.tag == NULL) {
		return (POND_ENOMEM);
	}
	sel->n++;
	return (POND_OK);
}

bool
scheduler_selections_has(const scheduler_selections *sel, const char *key)
{
	for (size_t i = 0; i < sel->n; i++) {
		if (strcmp(sel->v[i].cause.customer_key, key) == 0) {
			return (true);
		}
	}
	return (false);
}

void
scheduler_selections_free(scheduler_selections *sel)
{
	free(sel->v);
	memset(sel, 0, sizeof(*sel));
}

/* sel_work is one selection on its way through the rules. */
typedef struct sel_work {
	const scheduler_selection *s;
	const char *touch_id;
	const char *part;
	bool skip; /* exists, repeated in the batch, or out of the audience */
	bool removed;
	bool opted_out;
	size_t cust; /* in sel_batch.cust */
	pond_time now;
	pond_time due;
	const char *state;
	const char *reason;
	char day[16], monday[16], next_monday[16];
} sel_work;

/* sel_day is one customer's ledger count for one business day: what the
 * store had when the batch read it plus what the batch adds. */
typedef struct sel_day {
	char day[16];
	int64_t touches;
	int64_t added;
	size_t next; /* the customer's next day; SIZE_MAX ends the list */
} sel_day;

/* sel_customer is one customer of the batch and the head of its days. */
typedef struct sel_customer {
	const char *part;
	uint32_t partition;
	const char *key;
	size_t days;
} sel_customer;

/* sel_quota is what is left of one campaign's quota, under its row lock. */
typedef struct sel_quota {
	const scheduler_campaign *c;
	int64_t left;
	int64_t taken;
} sel_quota;

typedef struct sel_batch {
	PGconn *conn;
	pond_arena *arena;
	const scheduler_rules *rules;
	sel_work *w;
	size_t n;
	sel_customer *cust;
	size_t ncust;
	sel_day *days;
	size_t ndays, daycap;
	sel_quota *quota;
	size_t nquota;
} sel_batch;

#define SEL_MAX_PARAMS 16

int
scheduler_query_arrays(PGconn *conn, PGresult **resp, const char *sql,
                       const char **const *cols, int ncols, size_t n,
                       const char *const *scalars, int nscalars)
{
	const char *params[SEL_MAX_PARAMS];
	char *lits[SEL_MAX_PARAMS] = {0};
	int rv = POND_ENOMEM;

	assert(ncols >= 0 && nscalars >= 0 &&
	       ncols + nscalars <= SEL_MAX_PARAMS); /* our own statements */
	for (int j = 0; j < ncols; j++) {
		if ((lits[j] = pond_pq_text_array(cols[j], n)) == NULL) {
			goto out;
		}
		params[j] = lits[j];
	}
	for (int j = 0; j < nscalars; j++) {
		params[ncols + j] = scalars[j];
	}
	rv = pond_pq_query(conn, resp, sql, ncols + nscalars, params);
out:
	for (int j = 0; j < ncols; j++) {
		free(lits[j]);
	}
	return (rv);
}

/* sel_column allocates a column of n items from the arena. */
static const char **
sel_column(sel_batch *b, size_t n)
{
	return (pond_arena_alloc(b->arena, (n > 0 ? n : 1) * sizeof(char *)));
}

static int
cmp_touch_id(const void *x, const void *y)
{
	const sel_work *a = *(sel_work *const *)x, *b = *(sel_work *const *)y;
	int c = strcmp(a->touch_id, b->touch_id);

	return (c != 0 ? c : (a < b ? -1 : a > b));
}

/* batch_ids names each selection's touch (campaign/cause/customer), takes
 * the fission rewards' locks and marks a touch named twice in the batch
 * (an inviter passing invitees_needed twice): only the first is made. */
static int
batch_ids(sel_batch *b)
{
	sel_work **order;
	int rv;

	if ((order = pond_arena_alloc(b->arena, b->n * sizeof(*order))) ==
	    NULL) {
		return (POND_ENOMEM);
	}
	for (size_t i = 0; i < b->n; i++) {
		sel_work *w = &b->w[i];
		const scheduler_cause *cause = &w->s->cause;
		const char *cid = w->s->campaign->id;
		size_t idlen = strlen(cid) + strlen(cause->tag) +
		               strlen(cause->customer_key) + 3;
		char part[16];
		char *id = pond_arena_alloc(b->arena, idlen);
		snprintf(part, sizeof(part), "%" PRIu32, cause->partition);
		if (id == NULL ||
		    (w->part = pond_arena_strdup(b->arena, part)) == NULL) {
			return (POND_ENOMEM);
		}
		snprintf(id, idlen, "%s/%s/%s", cid, cause->tag,
		         cause->customer_key);
		w->touch_id = id;
		order[i] = w;
		/* A fission reward is selected by the invitee's partition for
		 * an inviter who may live in another, so two transactions (of
		 * two partitions, even two replicas) can reach the same
		 * inviter at once. The lock on the touch id makes the second
		 * wait for the first's COMMIT and then find its touch,
		 * instead of failing on the key and retrying its whole
		 * batch. */
		if (cause->reward &&
		    (rv = pond_pq_query(b->conn, NULL,
		                        "SELECT pg_advisory_xact_lock("
		                        "hashtextextended($1, 0))",
		                        1, &w->touch_id)) != 0) {
			return (rv);
		}
	}
	qsort(order, b->n, sizeof(*order), cmp_touch_id);
	for (size_t i = 1; i < b->n; i++) {
		if (strcmp(order[i]->touch_id, order[i - 1]->touch_id) == 0) {
			order[i]->skip = true;
		}
	}
	return (POND_OK);
}

/* batch_replayed marks the selections whose touch exists already (a
 * replayed cause): one statement over every touch id of the batch. */
static int
batch_replayed(sel_batch *b)
{
	const char **parts = sel_column(b, b->n), **keys = sel_column(b, b->n),
	           **ids = sel_column(b, b->n);
	PGresult *res;
	int rv;

	if (parts == NULL || keys == NULL || ids == NULL) {
		return (POND_ENOMEM);
	}
	for (size_t i = 0; i < b->n; i++) {
		parts[i] = b->w[i].part;
		keys[i] = b->w[i].s->cause.customer_key;
		ids[i] = b->w[i].touch_id;
	}
	const char **const cols[] = {parts, keys, ids};
	if ((rv = scheduler_query_arrays(
	             b->conn, &res,
	             "SELECT u.i FROM unnest($1::int[], $2::text[], "
	             "$3::text[]) WITH ORDINALITY AS u(p, k, id, i) "
	             "JOIN touches t ON t.partition = u.p AND "
	             "t.customer_key = u.k AND t.touch_id = u.id",
	             cols, 3, b->n, NULL, 0)) != 0) {
		return (rv);
	}
	for (int r = 0; r < PQntuples(res); r++) {
		size_t i = strtoull(PQgetvalue(res, r, 0), NULL, 10);
		if (i >= 1 && i <= b->n) {
			b->w[i - 1].skip = true;
		}
	}
	PQclear(res);
	return (POND_OK);
}

/* batch_audience drops the selections whose campaign's audience does not
 * hold for the customer (one read of tagging's profile each: audience
 * campaigns keep the per-customer path). */
static int
batch_audience(sel_batch *b)
{
	bool holds;
	int rv;

	for (size_t i = 0; i < b->n; i++) {
		sel_work *w = &b->w[i];
		if (w->skip || w->s->campaign->audience == NULL) {
			continue;
		}
		if ((rv = scheduler_audience_holds(b->conn, w->s->campaign,
		                                   w->s->cause.partition,
		                                   w->s->cause.customer_key,
		                                   pond_now(), &holds)) != 0) {
			return (rv);
		}
		w->skip = !holds;
	}
	return (POND_OK);
}

static int
cmp_customer(const void *x, const void *y)
{
	const sel_customer *a = x, *b = y;

	if (a->partition != b->partition) {
		return (a->partition < b->partition ? -1 : 1);
	}
	return (strcmp(a->key, b->key));
}

/* batch_customers lists the batch's customers once each, in (partition,
 * key) order, and points each live selection at its customer. */
static int
batch_customers(sel_batch *b)
{
	size_t n = 0;

	if ((b->cust = pond_arena_alloc(
	             b->arena, (b->n + 1) * sizeof(*b->cust))) == NULL) {
		return (POND_ENOMEM);
	}
	for (size_t i = 0; i < b->n; i++) {
		if (!b->w[i].skip) {
			b->cust[n++] = (sel_customer){
			        .part = b->w[i].part,
			        .partition = b->w[i].s->cause.partition,
			        .key = b->w[i].s->cause.customer_key,
			        .days = SIZE_MAX,
			};
		}
	}
	qsort(b->cust, n, sizeof(*b->cust), cmp_customer);
	b->ncust = 0;
	for (size_t i = 0; i < n; i++) {
		if (b->ncust == 0 ||
		    cmp_customer(&b->cust[b->ncust - 1], &b->cust[i]) != 0) {
			b->cust[b->ncust++] = b->cust[i];
		}
	}
	for (size_t i = 0; i < b->n; i++) {
		sel_customer k = {.partition = b->w[i].s->cause.partition,
		                  .key = b->w[i].s->cause.customer_key};
		sel_customer *c = bsearch(&k, b->cust, b->ncust,
		                          sizeof(*b->cust), cmp_customer);
		b->w[i].cust = c != NULL ? (size_t)(c - b->cust) : SIZE_MAX;
	}
	return (POND_OK);
}

/* batch_facts locks every customer's row (creating it), in (partition,
 * key) order so that two transactions never wait on each other in a
 * cycle, and reads for each selection whether the contact is removed and
 * whether its campaign's channel is opted out. */
static int
batch_facts(sel_batch *b)
{
	const char **cparts = sel_column(b, b->ncust),
	           **ckeys = sel_column(b, b->ncust);
	const char **parts = sel_column(b, b->n), **keys = sel_column(b, b->n),
	           **chans = sel_column(b, b->n);
	PGresult *res;
	int rv;

	if (b->ncust == 0) {
		return (POND_OK);
	}
	if (cparts == NULL || ckeys == NULL || parts == NULL || keys == NULL ||
	    chans == NULL) {
		return (POND_ENOMEM);
	}
	for (size_t i = 0; i < b->ncust; i++) {
		cparts[i] = b->cust[i].part;
		ckeys[i] = b->cust[i].key;
	}
	for (size_t i = 0; i < b->n; i++) {
		parts[i] = b->w[i].part;
		keys[i] = b->w[i].s->cause.customer_key;
		chans[i] = b->w[i].s->campaign->channel;
	}
	/* The customers' rows first, one array pair; then the selections'
	 * (customer, channel) pairs, whose ordinality names the selection. */
	char *lc = pond_pq_text_array(cparts, b->ncust),
	     *lk = pond_pq_text_array(ckeys, b->ncust);
	if (lc == NULL || lk == NULL) {
		free(lc);
		free(lk);
		return (POND_ENOMEM);
	}
	const char *const scalars[] = {lc, lk};
	const char **const cols[] = {parts, keys, chans};
	rv = scheduler_query_arrays(
	        b->conn, &res,
	        "WITH c AS (INSERT INTO sched_customers (partition, "
	        "customer_key) SELECT p, k FROM unnest($4::int[], $5::text[]) "
	        "AS u(p, k) ORDER BY p, k ON CONFLICT (partition, "
	        "customer_key) DO UPDATE SET removed = "
	        "sched_customers.removed "
	        "RETURNING partition, customer_key, removed, opted_out) "
	        "SELECT u.i, c.removed, c.opted_out && ARRAY[u.ch, 'all'] "
	        "FROM unnest($1::int[], $2::text[], $3::text[]) WITH "
	        "ORDINALITY AS u(p, k, ch, i) JOIN c ON c.partition = u.p AND "
	        "c.customer_key = u.k",
	        cols, 3, b->n, scalars, 2);
	free(lc);
	free(lk);
	if (rv != 0) {
		return (rv);
	}
	for (int r = 0; r < PQntuples(res); r++) {
		size_t i = strtoull(PQgetvalue(res, r, 0), NULL, 10);
		if (i >= 1 && i <= b->n) {
			b->w[i - 1].removed = PQgetvalue(res, r, 1)[0] == 't';
			b->w[i - 1].opted_out =
			        PQgetvalue(res, r, 2)[0] == 't';
		}
	}
	PQclear(res);
	return (POND_OK);
}

/* local_date writes the business day of t as YYYY-MM-DD: week 0 the day
 * itself, 1 the Monday of its week, 2 the Monday after. */
static void
local_date(pond_time t, int week, char *buf, size_t len)
{
	time_t secs = (time_t)(t / POND_USEC_PER_SEC);
	struct tm tm;

	localtime_r(&secs, &tm);
	if (week > 0) {
		tm.tm_mday -= (tm.tm_wday + 6) % 7;
		tm.tm_mday += week == 2 ? 7 : 0;
		tm.tm_hour = 12; /* clear of any DST edge */
		tm.tm_isdst = -1;
		secs = mktime(&tm);
		localtime_r(&secs, &tm);
	}
	strftime(buf, len, "%Y-%m-%d", &tm);
}

/* decide_facts applies the rules that need no count, in their order:
 * window, paused, removed, opt_out, hold-out; then sets the due time
 * (quiet hours) of a touch that may go ahead. *pending says whether the
 * cap and quota are still to be judged. */
static void
decide_facts(const scheduler_rules *rules, sel_work *w, bool *pending)
{
	const scheduler_campaign *c = w->s->campaign;
	const scheduler_cause *cause = &w->s->cause;
	pond_time sel = cause->selected_at;

	*pending = false;
	w->now = pond_now();
	w->reason = NULL;
	w->state = "scheduled";
	w->due = 0;
	if ((c->starts_at != 0 && sel < c->starts_at) ||
	    (c->ends_at != 0 && sel >= c->ends_at)) {
		w->reason = "window";
	} else if (c->paused) {
		w->reason = "paused";
	} else if (w->removed) {
		w->reason = "removed";
	} else if (w->opted_out) {
		w->reason = "opt_out";
	}
	if (w->reason != NULL) {
		w->state = "suppressed";
		return;
	}
	if (!cause->reward &&
	    scheduler_holdout(c->id, cause->customer_key, c->holdout_pct)) {
		w->state = "held_out";
		return;
	}
	/* The touch is due delay_s after its cause, but never before now: a
	 * cause heard late (a backlog, an event that arrived late) is sent
	 * now, and quiet hours are judged at the moment it will really go. */
	pond_time base = sel + c->delay_s * POND_USEC_PER_SEC;
	if (base < w->now) {
		base = w->now;
	}
	w->due = scheduler_quiet_end(rules, base);
	if (w->due != base) {
		w->state = "deferred";
	}
	local_date(w->due, 0, w->day, sizeof(w->day));
	local_date(w->due, 1, w->monday, sizeof(w->monday));
	local_date(w->due, 2, w->next_monday, sizeof(w->next_monday));
	*pending = true;
}

/* day_find returns the customer's entry for day, adding an empty one if
 * add; NULL when absent (or out of memory). */
static sel_day *
day_find(sel_batch *b, sel_customer *c, const char *day, bool add)
{
	for (size_t d = c->days; d != SIZE_MAX; d = b->days[d].next) {
		if (strcmp(b->days[d].day, day) == 0) {
			return (&b->days[d]);
		}
	}
	if (!add || b->ndays == b->daycap) {
		return (NULL);
	}
	sel_day *e = &b->days[b->ndays];
	snprintf(e->day, sizeof(e->day), "%s", day);
	e->touches = e->added = 0;
	e->next = c->days;
	c->days = b->ndays++;
	return (e);
}

/* batch_ledger reads the ledger rows of the batch's customers over the
 * weeks its due days fall in (one statement), when a cap is set. */
static int
batch_ledger(sel_batch *b, const bool *pending)
{
	const char *lo = NULL, *hi = NULL;
	PGresult *res = NULL;
	int rows = 0, rv;

	for (size_t i = 0; i < b->n; i++) {
		sel_work *w = &b->w[i];
		if (!pending[i] || w->s->cause.reward) {
			continue;
		}
		if (lo == NULL || strcmp(w->monday, lo) < 0) {
			lo = w->monday;
		}
		if (hi == NULL || strcmp(w->next_monday, hi) > 0) {
			hi = w->next_monday;
		}
	}
	if (lo != NULL &&
	    (b->rules->cap_day >= 0 || b->rules->cap_week >= 0)) {
		const char **parts = sel_column(b, b->ncust),
		           **keys = sel_column(b, b->ncust);
		if (parts == NULL || keys == NULL) {
			return (POND_ENOMEM);
		}
		for (size_t i = 0; i < b->ncust; i++) {
			parts[i] = b->cust[i].part;
			keys[i] = b->cust[i].key;
		}
		const char **const cols[] = {parts, keys};
		const char *const range[] = {lo, hi};
		if ((rv = scheduler_query_arrays(
		             b->conn, &res,
		             "SELECT f.partition, f.customer_key, "
		             "to_char(f.day, 'YYYY-MM-DD'), f.touches FROM "
		             "freq_ledger f JOIN unnest($1::int[], "
		             "$2::text[]) "
		             "AS u(p, k) ON f.partition = u.p AND "
		             "f.customer_key = u.k WHERE f.day >= $3::date "
		             "AND "
		             "f.day < $4::date",
		             cols, 2, b->ncust, range, 2)) != 0) {
			return (rv);
		}
		rows = PQntuples(res);
	}
	b->daycap = (size_t)rows + b->n;
	if ((b->days = pond_arena_alloc(
	             b->arena, b->daycap * sizeof(*b->days))) == NULL) {
		PQclear(res);
		return (POND_ENOMEM);
	}
	for (int r = 0; r < rows; r++) {
		sel_customer k = {.partition = (uint32_t)strtoul(
		                          PQgetvalue(res, r, 0), NULL, 10),
		                  .key = PQgetvalue(res, r, 1)};
		sel_customer *c = bsearch(&k, b->cust, b->ncust,
		                          sizeof(*b->cust), cmp_customer);
		sel_day *e =
		        c != NULL ? day_find(b, c, PQgetvalue(res, r, 2), true)
		                  : NULL;
		if (e != NULL) {
			e->touches = strtoll(PQgetvalue(res, r, 3), NULL, 10);
		}
	}
	PQclear(res);
	return (POND_OK);
}

/* batch_quota locks the rows of the campaigns with a quota that the batch
 * may take from, in id order, and reads what is left of each: a second
 * transaction (another partition, another replica) waits for this one's
 * COMMIT and then reads what it left, so no more than quota are taken. */
static int
batch_quota(sel_batch *b, const bool *pending)
{
	const char **ids = sel_column(b, b->n);
	PGresult *res;
	int rv;

	if (ids == NULL ||
	    (b->quota = pond_arena_alloc(
	             b->arena, (b->n + 1) * sizeof(*b->quota))) == NULL) {
		return (POND_ENOMEM);
	}
	b->nquota = 0;
	for (size_t i = 0; i < b->n; i++) {
		const scheduler_campaign *c = b->w[i].s->campaign;
		size_t q = 0;
		if (!pending[i] || c->quota < 0) {
			continue;
		}
		while (q < b->nquota && b->quota[q].c != c) {
			q++;
		}
		if (q == b->nquota) {
			b->quota[b->nquota++] = (sel_quota){.c = c};
			ids[q] = c->id;
		}
	}
	if (b->nquota == 0) {
		return (POND_OK);
	}
	const char **const cols[] = {ids};
	if ((rv = scheduler_query_arrays(
	             b->conn, &res,
	             "SELECT id, greatest(quota - used, 0) FROM "
	             "campaigns WHERE id = ANY($1::text[]) ORDER BY "
	             "id FOR UPDATE",
	             cols, 1, b->nquota, NULL, 0)) != 0) {
		return (rv);
	}
	for (int r = 0; r < PQntuples(res); r++) {
		for (size_t q = 0; q < b->nquota; q++) {
			if (strcmp(b->quota[q].c->id, PQgetvalue(res, r, 0)) ==
			    0) {
				b->quota[q].left = strtoll(
				        PQgetvalue(res, r, 1), NULL, 10);
			}
		}
	}
	PQclear(res);
	return (POND_OK);
}

/* decide_counts judges the frequency cap and the quota of one selection
 * against the counts so far (the store's plus this batch's, in batch
 * order) and counts the touch if it goes ahead. */
static void
decide_counts(sel_batch *b, sel_work *w)
{
	const scheduler_rules *rules = b->rules;
	const scheduler_campaign *c = w->s->campaign;
	sel_customer *cust = &b->cust[w->cust];
	bool reward = w->s->cause.reward, capped = false;
	int64_t d = 0, wk = 0;

	if (!reward && (rules->cap_day >= 0 || rules->cap_week >= 0)) {
		for (size_t i = cust->days; i != SIZE_MAX;
		     i = b->days[i].next) {
			const sel_day *e = &b->days[i];
			int64_t t = e->touches + e->added;
			if (strcmp(e->day, w->day) == 0) {
				d += t;
			}
			if (strcmp(e->day, w->monday) >= 0 &&
			    strcmp(e->day, w->next_monday) < 0) {
				wk += t;
			}
		}
		capped = (rules->cap_day >= 0 && d >= rules->cap_day) ||
		         (rules->cap_week >= 0 && wk >= rules->cap_week);
	}
	if (capped) {
		w->reason = "frequency_cap";
	} else if (c->quota >= 0) {
		sel_quota *q = b->quota;
		while (q->c != c) {
			q++;
		}
		if (q->left > 0) {
			q->left--;
			q->taken++;
		} else {
			w->reason = "quota";
		}
	}
	if (w->reason != NULL) {
		w->state = "suppressed";
		w->due = 0;
		return;
	}
	sel_day *e = reward ? NULL : day_find(b, cust, w->day, true);
	if (e != NULL) {
		e->added++; /* room for one day per selection: never NULL */
	}
}

/* batch_insert writes every touch of the batch: one INSERT ... SELECT of
 * arrays. */
static int
batch_insert(sel_batch *b)
{
	enum { NCOL = 13 };
	const char **cols[NCOL];
	char **params = pond_arena_alloc(b->arena, b->n * sizeof(*params));
	size_t n = 0;
	int rv = POND_ENOMEM;

	if (params == NULL) {
		return (POND_ENOMEM);
	}
	for (int j = 0; j < NCOL; j++) {
		if ((cols[j] = sel_column(b, b->n)) == NULL) {
			return (POND_ENOMEM);
		}
	}
	for (size_t i = 0; i < b->n; i++) {
		const sel_work *w = &b->w[i];
		const scheduler_campaign *c = w->s->campaign;
		char sel[40], due[40], cost[24];
		if (w->skip) {
			continue;
		}
		if ((params[n] = select_params(c, &w->s->cause)) == NULL) {
			goto out;
		}
		snprintf(cost, sizeof(cost), "%" PRId64,
		         c->cost_per_touch_fen);
		const char *row[NCOL] = {
		        w->part,
		        w->s->cause.customer_key,
		        w->touch_id,
		        c->id,
		        c->channel,
		        c->template,
		        params[n],
		        w->s->cause.reward ? "reward" : "marketing",
		        w->state,
		        w->reason != NULL ? w->reason : "",
		        pond_time_format_rfc3339(w->s->cause.selected_at, sel,
		                                 sizeof(sel)),
		        w->due != 0 ? pond_time_format_rfc3339(w->due, due,
		                                               sizeof(due))
		                    : NULL,
		        cost,
		};
		for (int j = 0; j < NCOL; j++) {
			cols[j][n] =
			        row[j] != NULL
			                ? pond_arena_strdup(b->arena, row[j])
			                : NULL;
			if (row[j] != NULL && cols[j][n] == NULL) {
				n++;
				goto out;
			}
		}
		n++;
	}
	rv = n == 0 ? POND_OK
	            : scheduler_query_arrays(
	                      b->conn, NULL,
	                      "INSERT INTO touches (partition, customer_key, "
	                      "touch_id, campaign_id, channel, template, "
	                      "params, kind, state, reason, selected_at, "
	                      "due_at, cost_fen) SELECT * FROM "
	                      "unnest($1::int[], $2::text[], $3::text[], "
	                      "$4::text[], $5::text[], $6::text[], "
	                      "$7::jsonb[], $8::text[], $9::text[], "
	                      "$10::text[], $11::timestamptz[], "
	                      "$12::timestamptz[], $13::bigint[])",
	                      cols, NCOL, n, NULL, 0);
out:
	for (size_t i = 0; i < n; i++) {
		free(params[i]);
	}
	return (rv);
}

/* batch_counts writes the quota taken and the ledger's increments: one
 * statement each. */
static int
batch_counts(sel_batch *b)
{
	const char **ids = sel_column(b, b->nquota),
	           **taken = sel_column(b, b->nquota);
	size_t n = 0;
	int rv;

	if (ids == NULL || taken == NULL) {
		return (POND_ENOMEM);
	}
	for (size_t q = 0; q < b->nquota; q++) {
		char num[24];
		if (b->quota[q].taken == 0) {
			continue;
		}
		snprintf(num, sizeof(num), "%" PRId64, b->quota[q].taken);
		ids[n] = b->quota[q].c->id;
		if ((taken[n++] = pond_arena_strdup(b->arena, num)) == NULL) {
			return (POND_ENOMEM);
		}
	}
	const char **const qcols[] = {ids, taken};
	if (n > 0 && (rv = scheduler_query_arrays(
	                      b->conn, NULL,
	                      "UPDATE campaigns c SET used = c.used + "
	                      "u.n FROM unnest($1::text[], "
	                      "$2::bigint[]) AS u(id, n) WHERE c.id = "
	                      "u.id",
	                      qcols, 2, n, NULL, 0)) != 0) {
		return (rv);
	}
	const char **parts = sel_column(b, b->ndays),
	           **keys = sel_column(b, b->ndays),
	           **days = sel_column(b, b->ndays),
	           **adds = sel_column(b, b->ndays);
	if (parts == NULL || keys == NULL || days == NULL || adds == NULL) {
		return (POND_ENOMEM);
	}
	n = 0;
	for (size_t c = 0; c < b->ncust; c++) {
		for (size_t d = b->cust[c].days; d != SIZE_MAX;
		     d = b->days[d].next) {
			char num[24];
			if (b->days[d].added == 0) {
				continue;
			}
			snprintf(num, sizeof(num), "%" PRId64,
			         b->days[d].added);
			parts[n] = b->cust[c].part;
			keys[n] = b->cust[c].key;
			days[n] = b->days[d].day;
			if ((adds[n++] = pond_arena_strdup(b->arena, num)) ==
			    NULL) {
				return (POND_ENOMEM);
			}
		}
	}
	const char **const lcols[] = {parts, keys, days, adds};
	if (n > 0 &&
	    (rv = scheduler_query_arrays(
	             b->conn, NULL,
	             "INSERT INTO freq_ledger (partition, "
	             "customer_key, day, touches) SELECT p, k, d, t "
	             "FROM unnest($1::int[], $2::text[], $3::date[], "
	             "$4::int[]) AS u(p, k, d, t) ORDER BY p, k, d ON "
	             "CONFLICT (partition, customer_key, day) DO "
	             "UPDATE SET touches = freq_ledger.touches + "
	             "excluded.touches",
	             lcols, 4, n, NULL, 0)) != 0) {
		return (rv);
	}
	return (POND_OK);
}

/* batch_changes adds the change of every touch made, in batch order. */
static int
batch_changes(sel_batch *b, scheduler_changes *out)
{
	int rv;

	for (size_t i = 0; i < b->n; i++) {
		const sel_work *w = &b->w[i];
		if (w->skip) {
			continue;
		}
		scheduler_change ch = {
		        .partition = w->s->cause.partition,
		        .touch_id = w->touch_id,
		        .customer_key = w->s->cause.customer_key,
		        .campaign_id = w->s->campaign->id,
		        .channel = w->s->campaign->channel,
		        .state = w->state,
		        .reason = w->reason,
		        .at = w->now,
		        .selected_at = w->s->cause.selected_at,
		        .due_at = w->due,
		};
		if ((rv = scheduler_changes_add(out, b->arena, &ch)) != 0) {
			return (rv);
		}
	}
	return (POND_OK);
}

int
scheduler_select(PGconn *conn, pond_arena *arena, const scheduler_rules *rules,
                 scheduler_selections *sel, scheduler_changes *out)
{
	sel_batch b = {.conn = conn, .arena = arena, .rules = rules};
	bool *pending;
	int rv;

	if (sel->n == 0) {
		return (POND_OK);
	}
	b.n = sel->n;
	b.w = pond_arena_alloc(arena, b.n * sizeof(*b.w));
	pending = pond_arena_alloc(arena, b.n * sizeof(*pending));
	if (b.w == NULL || pending == NULL) {
		return (POND_ENOMEM);
	}
	for (size_t i = 0; i < b.n; i++) {
		b.w[i] = (sel_work){.s = &sel->v[i]};
	}
	if ((rv = batch_ids(&b)) != 0 || (rv = batch_replayed(&b)) != 0 ||
	    (rv = batch_audience(&b)) != 0 ||
	    (rv = batch_customers(&b)) != 0 || (rv = batch_facts(&b)) != 0) {
		return (rv);
	}
	for (size_t i = 0; i < b.n; i++) {
		pending[i] = false;
		if (!b.w[i].skip) {
			decide_facts(rules, &b.w[i], &pending[i]);
		}
	}
	if ((rv = batch_ledger(&b, pending)) != 0 ||
	    (rv = batch_quota(&b, pending)) != 0) {
		return (rv);
	}
	for (size_t i = 0; i < b.n; i++) {
		if (pending[i]) {
			decide_counts(&b, &b.w[i]);
		}
	}
	if ((rv = batch_insert(&b)) != 0 || (rv = batch_counts(&b)) != 0 ||
	    (rv = batch_changes(&b, out)) != 0) {
		return (rv);
	}
	sel->n = 0;
	return (POND_OK);
}
