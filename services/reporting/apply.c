/*
 * apply.c - the three streams into the reporting fact tables.
 *
 * Each apply call runs inside the consumer's transaction (docs/streams.md)
 * and writes a whole batch with one statement (two for events: the
 * customers, then the facts): the decoded records go in as column arrays
 * (unnest), and writable CTEs route each kind of event to its fact table.
 * Facts keep their event time, so the order in which events arrive changes
 * nothing: the one fact that depends on order, the acquisition (the first
 * contact_added), is kept as the least (occurred_at, event_id, publisher) seen
 * so far, and a late add with an earlier time takes it over in the upsert
 * below.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "db.h"
#include "log.h"
#include "pond/event.pb-c.h"
#include "pond/tagging.pb-c.h"
#include "pond/touch.pb-c.h"
#include "reporting.h"

/* apply_cols is a batch as column arrays of text (NULL is SQL NULL). */
typedef struct apply_cols {
	pond_arena *arena;
	size_t ncols, nrows;
	const char **cells; /* ncols arrays of nrows */
} apply_cols;

static int
cols_init(apply_cols *c, pond_arena *arena, size_t ncols, size_t nrows)
{
	c->arena = arena;
	c->ncols = ncols;
	c->nrows = 0;
	c->cells = pond_arena_alloc(arena, ncols * (nrows + 1) *
	                                           sizeof(const char *));
	return (c->cells != NULL ? POND_OK : POND_ENOMEM);
}

/* cols_set sets column col of the current row (nrows); an empty string
 * is stored as NULL, because proto3 cannot tell "" from "absent". */
static void
cols_set(apply_cols *c, size_t col, const char *v, size_t cap)
{
	c->cells[col * cap + c->nrows] = (v != NULL && *v != '\0') ? v : NULL;
}

static const char *
arena_printf_i64(pond_arena *a, int64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRId64, v);
	return (pond_arena_strdup(a, buf));
}

static const char *
arena_time(pond_arena *a, const Google__Protobuf__Timestamp *ts)
{
	char buf[40];

	if (ts == NULL) {
		return (NULL);
	}
	reporting_sql_time(pond_time_from_parts(ts->seconds, ts->nanos), buf,
	                   sizeof(buf));
	return (pond_arena_strdup(a, buf));
}

/* cols_exec runs each statement of sqls (NULL-terminated), in order,
 * with $1 = partition and $2.. = the columns as array literals. */
static int
cols_exec(PGconn *conn, const apply_cols *c, size_t cap, uint32_t partition,
          const char *const *sqls)
{
	const char *params[24];
	char part[16];
	int rv = POND_OK;

	if (c->ncols + 1 > sizeof(params) / sizeof(params[0])) {
		return (POND_EINVAL);
	}
	snprintf(part, sizeof(part), "%" PRIu32, partition);
	params[0] = part;
	for (size_t i = 0; i < c->ncols; i++) {
		params[i + 1] = NULL;
	}
	for (size_t i = 0; i < c->ncols; i++) {
		if ((params[i + 1] = pond_pq_text_array(&c->cells[i * cap],
		                                        c->nrows)) == NULL) {
			rv = POND_ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0; rv == POND_OK && sqls[i] != NULL; i++) {
		/* sqls are the constant statements of this file.
		 * sql-check: ok */
		rv = pond_pq_query(conn, NULL, sqls[i], (int)c->ncols + 1,
		                   params);
	}
out:
	for (size_t i = 0; i < c->ncols; i++) {
		free((char *)params[i + 1]);
	}
	return (rv);
}

/* --- events
 * -------------------------------------------------------------------- */

enum {
	EV_SEQ,
	EV_KIND,
	EV_KEY,
	EV_EVENT_ID,
	EV_AT,
	EV_CHANNEL,
	EV_GUIDE,
	EV_STORE,
	EV_INVITER,
	EV_CAMPAIGN,
	EV_AMOUNT,
	EV_HAS_REGION,
	EV_REGION,
	EV_HAS_INDUSTRY,
	EV_INDUSTRY,
	EV_NCOLS,
};

/* The acquisition is taken over when the new add sorts first; the
 * event_id and publisher columns are COLLATE "C" (byte order). */
#define TAKES_OVER                                                            \
	"(EXCLUDED.acquired_at IS NOT NULL AND (c.acquired_at IS NULL OR "    \
	"(EXCLUDED.acquired_at, EXCLUDED.acq_event_id, "                      \
	"EXCLUDED.acq_publisher) < (c.acquired_at, c.acq_event_id, "          \
	"c.acq_publisher)))"
#define TAKE(col)                                                             \
#col " = CASE WHEN " TAKES_OVER " THEN EXCLUDED." #col                \
	     " ELSE c." #col " END"

/* APPLY_BATCH_CTE is the batch as rows, with each event's publisher. */
#define APPLY_BATCH_CTE                                                       \
	"b AS (SELECT u.*, p.name AS publisher FROM unnest($2::bigint[], "    \
	"$3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], " \
	"$8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], "   \
	"$13::bool[], $14::text[], $15::bool[], $16::text[]) "                \
	"AS u(seq, kind, customer_key, event_id, occurred_at, channel, "      \
	"guide_id, store_id, inviter_key, campaign_id, amount_fen, "          \
	"has_region, region, has_industry, industry) "                        \
	"JOIN events e ON e.partition = $1 AND e.seq = u.seq "                \
	"JOIN publishers p ON p.id = e.publisher_id)"

/* A batch is two statements, the customers first, then the facts: the
 * day cells of 0008_reporting_cells.sql are exact only when no statement
 * changes both a customer's acquisition and its orders or rewards (the
 * migration says why). */
/* clang-format off */
static const char apply_customers_sql[] =
	"WITH " APPLY_BATCH_CTE ", "
	"firsts AS (SELECT customer_key, min(occurred_at) AS first_at,"
	" min(occurred_at) FILTER (WHERE kind = 'member_joined') AS member_at,"
	" (array_agg(occurred_at ORDER BY occurred_at)"
	"  FILTER (WHERE kind = 'order_paid'))[1:3] AS paid3"
	" FROM b WHERE kind <> 'channel_spend' GROUP BY customer_key), "
	"adds AS (SELECT DISTINCT ON (customer_key) * FROM b"
	" WHERE kind = 'contact_added' ORDER BY customer_key, occurred_at,"
	" event_id COLLATE \"C\", publisher COLLATE \"C\") "
	"INSERT INTO rpt_customers AS c (partition, customer_key,"
	" first_event_at, member_at, first_paid, acquired_at, acq_event_id,"
	" acq_publisher, channel, guide_id, store_id, inviter_key, campaign_id) "
	"SELECT $1, f.customer_key, f.first_at, f.member_at,"
	" COALESCE(f.paid3, '{}'), a.occurred_at, a.event_id, a.publisher,"
	" a.channel, a.guide_id, a.store_id, a.inviter_key, a.campaign_id"
	" FROM firsts f LEFT JOIN adds a USING (customer_key) "
	"ON CONFLICT (partition, customer_key) DO UPDATE SET"
	" first_event_at = LEAST(c.first_event_at, EXCLUDED.first_event_at),"
	" member_at = LEAST(c.member_at, EXCLUDED.member_at),"
	" first_paid = (SELECT COALESCE((array_agg(t ORDER BY t))[1:3], '{}')"
	"  FROM unnest(c.first_paid || EXCLUDED.first_paid) AS t), "
	TAKE(channel) ", " TAKE(guide_id) ", " TAKE(store_id) ", "
	TAKE(inviter_key) ", " TAKE(campaign_id) ", "
	TAKE(acq_event_id) ", " TAKE(acq_publisher) ", "
	TAKE(acquired_at);

static const char apply_facts_sql[] =
	"WITH " APPLY_BATCH_CTE ", "
	"o AS (INSERT INTO rpt_orders SELECT $1, customer_key, seq,"
	" occurred_at, event_id, publisher, kind = 'order_paid', amount_fen"
	" FROM b WHERE kind IN ('order_paid', 'order_refunded')), "
	"r AS (INSERT INTO rpt_rewards SELECT $1, customer_key, seq,"
	" occurred_at, amount_fen, campaign_id FROM b"
	" WHERE kind = 'reward_paid'), "
	"a AS (INSERT INTO rpt_activity SELECT $1, customer_key, seq,"
	" occurred_at FROM b WHERE kind = 'interaction'), "
	"m AS (INSERT INTO rpt_members SELECT $1, customer_key, seq,"
	" occurred_at FROM b WHERE kind = 'member_joined'), "
	"i AS (INSERT INTO rpt_invites SELECT $1, customer_key, seq,"
	" occurred_at, campaign_id FROM b WHERE kind = 'invite_shared'), "
	"f AS (INSERT INTO rpt_profile_facts SELECT $1, customer_key, seq,"
	" occurred_at, event_id, publisher, has_region, region, has_industry,"
	" industry FROM b WHERE kind = 'profile_updated') "
	"INSERT INTO rpt_spend SELECT $1, seq, channel, occurred_at,"
	" amount_fen FROM b WHERE kind = 'channel_spend'";
/* clang-format on */

/* event_row fills the current row from ev; false for an event with no
 * fact (no customer, or a body reporting does not read). */
static bool
event_row(apply_cols *c, size_t cap, const pond_record *rec,
          const Pond__Event *ev)
{
	pond_arena *a = c->arena;
	const char *kind = NULL, *channel = NULL, *guide = NULL;
	const char *store = NULL, *inviter = NULL, *campaign = NULL;
	const char *region = NULL, *industry = NULL;
	bool has_region = false, has_industry = false;
	int64_t amount = 0;

	switch (ev->body_case) {
	case POND__EVENT__BODY_CONTACT_ADDED:
		kind = "contact_added";
		channel = ev->contact_added->channel;
		guide = ev->contact_added->guide_id;
		store = ev->contact_added->store_id;
		inviter = ev->contact_added->inviter_key;
		campaign = ev->contact_added->campaign_id;
		break;
	case POND__EVENT__BODY_ORDER_PAID:
		kind = "order_paid";
		amount = ev->order_paid->amount_fen;
		break;
	case POND__EVENT__BODY_ORDER_REFUNDED:
		kind = "order_refunded";
		amount = ev->order_refunded->amount_fen;
		break;
	case POND__EVENT__BODY_CHANNEL_SPEND:
		kind = "channel_spend";
		channel = ev->channel_spend->channel;
		amount = ev->channel_spend->amount_fen;
		break;
	case POND__EVENT__BODY_REWARD_PAID:
		kind = "reward_paid";
		amount = ev->reward_paid->amount_fen;
		campaign = ev->reward_paid->campaign_id;
		break;
	case POND__EVENT__BODY_MEMBER_JOINED:
		kind = "member_joined";
		break;
	case POND__EVENT__BODY_INTERACTION:
		kind = "interaction";
		break;
	case POND__EVENT__BODY_INVITE_SHARED:
		kind = "invite_shared";
		campaign = ev->invite_shared->campaign_id;
		break;
	case POND__EVENT__BODY_PROFILE_UPDATED: {
		const Pond__ProfileUpdated *pu = ev->profile_updated;
		kind = "profile_updated";
		has_region = pu->has_region_case ==
		             POND__PROFILE_UPDATED__HAS_REGION_REGION;
		region = has_region ? pu->region : NULL;
		has_industry = pu->has_industry_case ==
		               POND__PROFILE_UPDATED__HAS_INDUSTRY_INDUSTRY;
		industry = has_industry ? pu->industry : NULL;
		break;
	}
	default:
		/* Still an event of the customer: it counts for "first
		 * seen" (lifecycle and portrait populations). */
		kind = "other";
		break;
	}
	if (ev->body_case == POND__EVENT__BODY_CHANNEL_SPEND) {
		if (channel == NULL || *channel == '\0') {
			return (false);
		}
	} else if (ev->customer_key == NULL || *ev->customer_key == '\0') {
		return (false);
	}
	cols_set(c, EV_SEQ, arena_printf_i64(a, rec->seq), cap);
	cols_set(c, EV_KIND, kind, cap);
	cols_set(c, EV_KEY, ev->customer_key, cap);
	cols_set(c, EV_EVENT_ID, ev->event_id, cap);
	cols_set(c, EV_AT, arena_time(a, ev->occurred_at), cap);
	cols_set(c, EV_CHANNEL, channel, cap);
	cols_set(c, EV_GUIDE, guide, cap);
	cols_set(c, EV_STORE, store, cap);
	cols_set(c, EV_INVITER, inviter, cap);
	cols_set(c, EV_CAMPAIGN, campaign, cap);
	cols_set(c, EV_AMOUNT, arena_printf_i64(a, amount), cap);
	cols_set(c, EV_HAS_REGION, has_region ? "t" : "f", cap);
	cols_set(c, EV_REGION, region, cap);
	cols_set(c, EV_HAS_INDUSTRY, has_industry ? "t" : "f", cap);
	cols_set(c, EV_INDUSTRY, industry, cap);
	return (c->cells[EV_AT * cap + c->nrows] != NULL);
}

/* apply_row_fn decodes one record into the current row of c; false
 * for a record that makes no row (counted when it did not decode). */
typedef bool (*apply_row_fn)(reporting *rp, apply_cols *c, size_t cap,
                             const pond_record *rec);

/* apply_batch writes a batch: each record through row, then the
 * statements of sqls (NULL-terminated). */
static int
apply_batch(PGconn *conn, reporting *rp, const pond_record *recs, size_t n,
            size_t ncols, apply_row_fn row, const char *const *sqls)
{
	pond_arena arena;
	apply_cols c;
	int rv;

	pond_arena_init(&arena);
	if ((rv = cols_init(&c, &arena, ncols, n)) != 0) {
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (row(rp, &c, n, &recs[i])) {
			c.nrows++;
		}
	}
	if (c.nrows > 0 &&
	    (rv = cols_exec(conn, &c, n, recs[0].partition, sqls)) != 0) {
		goto out;
	}
	pond_counter_add(&rp->counters.facts, n);
out:
	pond_arena_reset(&arena);
	return (rv);
}

/* undecodable counts and logs a record that did not decode: the producer
 * stored it, so it decoded once; skipping it beats stalling the
 * partition. */
static bool
undecodable(reporting *rp, const pond_record *rec)
{
	pond_counter_inc(&rp->counters.bad_records);
	pond_log_error("record_undecodable",
	               "partition=%" PRIu32 " seq=%" PRId64, rec->partition,
	               rec->seq);
	return (false);
}

static bool
event_record(reporting *rp, apply_cols *c, size_t cap, const pond_record *rec)
{
	Pond__Event *ev = pond__event__unpack(pond_arena_allocator(c->arena),
	                                      rec->len, rec->payload);

	return (ev != NULL ? event_row(c, cap, rec, ev)
	                   : undecodable(rp, rec));
}

int
reporting_apply_events(PGconn *conn, const pond_record *recs, size_t n,
                       void *arg)
{
	static const char *const sqls[] = {apply_customers_sql,
	                                   apply_facts_sql, NULL};

	return (apply_batch(conn, arg, recs, n, EV_NCOLS, event_record, sqls));
}

/* --- tag_changes
 * --------------------------------------------------------------- */

static bool
tag_change_record(reporting *rp, apply_cols *c, size_t cap,
                  const pond_record *rec)
{
	Pond__TagChange *tc = pond__tag_change__unpack(
	        pond_arena_allocator(c->arena), rec->len, rec->payload);

	if (tc == NULL || tc->changed_at == NULL ||
	    *tc->customer_key == '\0' || *tc->tag == '\0') {
		return (undecodable(rp, rec));
	}
	cols_set(c, 0, arena_printf_i64(c->arena, rec->seq), cap);
	cols_set(c, 1, tc->customer_key, cap);
	cols_set(c, 2, tc->tag, cap);
	cols_set(c, 3, tc->added ? "t" : "f", cap);
	cols_set(c, 4, arena_time(c->arena, tc->changed_at), cap);
	return (true);
}

int
reporting_apply_tag_changes(PGconn *conn, const pond_record *recs, size_t n,
                            void *arg)
{
	static const char *const sqls[] = {
	        "INSERT INTO rpt_tag_changes (partition, seq, customer_key, "
	        "tag, added, changed_at) SELECT $1, * FROM unnest("
	        "$2::bigint[], $3::text[], $4::text[], $5::bool[], "
	        "$6::timestamptz[])",
	        NULL};

	return (apply_batch(conn, arg, recs, n, 5, tag_change_record, sqls));
}

/* --- touches
 * ------------------------------------------------------------------- */

static bool
touch_change_record(reporting *rp, apply_cols *c, size_t cap,
                    const pond_record *rec)
{
	Pond__TouchChange *t = pond__touch_change__unpack(
	        pond_arena_allocator(c->arena), rec->len, rec->payload);

	if (t == NULL || *t->customer_key == '\0' || *t->touch_id == '\0' ||
	    *t->state == '\0') {
		return (undecodable(rp, rec));
	}
	cols_set(c, 0, arena_printf_i64(c->arena, rec->seq), cap);
	cols_set(c, 1, t->customer_key, cap);
	cols_set(c, 2, t->touch_id, cap);
	cols_set(c, 3, t->campaign_id, cap);
	cols_set(c, 4, t->channel, cap);
	cols_set(c, 5, t->state, cap);
	cols_set(c, 6, t->reason, cap);
	cols_set(c, 7, arena_time(c->arena, t->at), cap);
	cols_set(c, 8, arena_time(c->arena, t->selected_at), cap);
	cols_set(c, 9, arena_printf_i64(c->arena, t->cost_fen), cap);
	return (true);
}

int
reporting_apply_touches(PGconn *conn, const pond_record *recs, size_t n,
                        void *arg)
{
	static const char *const sqls[] = {
	        "INSERT INTO rpt_touch_changes (partition, seq, customer_key, "
	        "touch_id, campaign_id, channel, state, reason, at, "
	        "selected_at, cost_fen) SELECT $1, u.seq, u.k, u.t, "
	        "COALESCE(u.c, ''), COALESCE(u.ch, ''), u.s, u.r, u.a, u.sel, "
	        "u.cost FROM unnest($2::bigint[], $3::text[], $4::text[], "
	        "$5::text[], $6::text[], $7::text[], $8::text[], "
	        "$9::timestamptz[], $10::timestamptz[], $11::bigint[]) AS "
	        "u(seq, k, t, c, ch, s, r, a, sel, cost)",
	        NULL};

	return (apply_batch(conn, arg, recs, n, 10, touch_change_record,
	                    sqls));
}
