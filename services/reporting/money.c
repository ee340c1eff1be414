/*
 * money.c - the reports about money: acquisition (CAC), LTV, payback,
 * repurchase and guides (commission). Definitions: API.md sections 4 and 6.
 *
 * Acquisition, LTV and payback share two queries over the period's cohort
 * (rpt_customers by acquired_at): per channel the new customers, spend and
 * incentive; and per channel the net revenue by day offset k, where an
 * event at acquisition + t is in day k = floor(t / 24 h) + 1. LTV(d) is
 * then the sum over k <= d, and payback the least d whose running sum
 * times the margin reaches full CAC -- both exact integer arithmetic, so
 * a comparison never sees a rounded value.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "reporting.h"

static const char acq_sql[] = "WITH " REPORTING_CELLS_COHORT_CTE(
        "$5") ", "
              "cells AS (SELECT key AS channel, sum(n) AS n, "
              "sum(incentive_fen) "
              " AS incentive FROM rpt_cells WHERE " REPORTING_CELLS_OF(
                      "acq") " AND "
                             " ($4::text IS NULL OR key = $4) GROUP BY key "
                             "HAVING "
                             "sum(n) <> 0), "
                             "n AS (SELECT channel, count(*) AS new_customers "
                             "FROM "
                             "c "
                             " GROUP BY channel UNION ALL SELECT channel, n "
                             "FROM "
                             "cells), "
                             "s AS (SELECT channel, sum(amount_fen) AS spend "
                             "FROM "
                             "rpt_spend "
                             " WHERE occurred_at >= $1 AND occurred_at < $2 "
                             "AND "
                             "occurred_at < $3 "
                             " AND ($4::text IS NULL OR channel = $4) GROUP "
                             "BY "
                             "channel), "
                             "i AS (SELECT c.channel, sum(r.amount_fen) AS "
                             "incentive FROM c "
                             " JOIN LATERAL (SELECT r.amount_fen FROM "
                             "rpt_rewards r "
                             "WHERE "
                             " r.partition = c.partition AND r.customer_key = "
                             "c.customer_key "
                             " AND r.occurred_at < $3 OFFSET 0) r ON true "
                             "GROUP BY "
                             "c.channel "
                             " UNION ALL SELECT channel, incentive FROM "
                             "cells) "
                             "SELECT COALESCE(n.channel, s.channel) AS ch, "
                             " COALESCE(n.new_customers, 0), "
                             "COALESCE(s.spend, 0), "
                             " COALESCE(i.incentive, 0) FROM n FULL JOIN s "
                             "USING "
                             "(channel) "
                             " LEFT JOIN i ON i.channel = COALESCE(n.channel, "
                             "s.channel) "
                             "ORDER BY COALESCE(n.channel, s.channel) COLLATE "
                             "\"C\"";

/* The cohort's orders and rewards are read customer by customer from the
 * (partition, customer_key, ...) indexes: OFFSET 0 keeps the lateral
 * subqueries from being flattened into a join that the planner, which
 * underestimates the rows after acquisition, makes a hash join over every
 * order of the history (BENCHMARKS.md). */
static const char revenue_by_day_sql[] = "WITH " REPORTING_CELLS_COHORT_CTE(
        "$5") " "
              "SELECT c.channel, floor(extract(epoch FROM o.occurred_at - "
              " c.acquired_at) / 86400)::bigint + 1 AS k, sum(" NET_AMOUNT ") "
              "FROM c JOIN LATERAL (SELECT o.occurred_at, o.paid, "
              "o.amount_fen "
              " FROM rpt_orders o WHERE o.partition = c.partition AND "
              " o.customer_key = c.customer_key AND o.occurred_at >= "
              " c.acquired_at AND o.occurred_at < $3 OFFSET 0) o ON true "
              "GROUP BY 1, 2 "
              "UNION ALL SELECT key, k, sum(net_fen) FROM rpt_cells "
              "WHERE " REPORTING_CELLS_OF(
                      "revenue") " AND ($4::text IS NULL OR key = $4) "
                                 "GROUP BY 1, 2 ORDER BY 1, 2";

const char *
reporting_cells_zone(reporting *rp)
{
	return (atomic_load(&rp->cells_ready) ? rp->tz : NULL);
}

/* channel_figures is one channel's (or all channels') acquisition. */
typedef struct channel_figures {
	const char *channel;
	int64_t new_customers, spend, incentive;
	int64_t *k, *rev; /* net revenue by day offset, ascending k */
	size_t nk;
} channel_figures;

/* cohort is the period's channels, their figures and the "all" sum. */
typedef struct cohort {
	PGresult *acq, *rev;
	channel_figures *ch;
	size_t nch;
	channel_figures all;
} cohort;

static void
cohort_free(cohort *co)
{
	for (size_t i = 0; i < co->nch; i++) {
		free(co->ch[i].k);
		free(co->ch[i].rev);
	}
	free(co->ch);
	free(co->all.k);
	free(co->all.rev);
	PQclear(co->acq);
	PQclear(co->rev);
	memset(co, 0, sizeof(*co));
}

static int
krev_cmp(const void *a, const void *b)
{
	const int64_t *x = a, *y = b;

	return (x[0] < y[0] ? -1 : x[0] > y[0]);
}

/* cohort_all sums the channels' day revenue into co->all (by k). */
static int
cohort_all(cohort *co, int64_t nrev)
{
	int64_t *pairs = calloc((size_t)nrev + 1, 2 * sizeof(int64_t));
	size_t m = 0;

	co->all.channel = "all";
	co->all.k = calloc((size_t)nrev + 1, sizeof(int64_t));
	co->all.rev = calloc((size_t)nrev + 1, sizeof(int64_t));
	if (pairs == NULL || co->all.k == NULL || co->all.rev == NULL) {
		free(pairs);
		return (POND_ENOMEM);
	}
	for (size_t i = 0; i < co->nch; i++) {
		const channel_figures *f = &co->ch[i];
		co->all.new_customers += f->new_customers;
		co->all.spend += f->spend;
		co->all.incentive += f->incentive;
		for (size_t j = 0; j < f->nk; j++, m++) {
			pairs[2 * m] = f->k[j];
			pairs[2 * m + 1] = f->rev[j];
		}
	}
	qsort(pairs, m, 2 * sizeof(int64_t), krev_cmp);
	for (size_t j = 0; j < m; j++) {
		channel_figures *f = &co->all;
		if (f->nk > 0 && f->k[f->nk - 1] == pairs[2 * j]) {
			f->rev[f->nk - 1] += pairs[2 * j + 1];
		} else {
			f->k[f->nk] = pairs[2 * j];
			f->rev[f->nk++] = pairs[2 * j + 1];
		}
	}
	free(pairs);
	return (POND_OK);
}

/* cohort_load runs both queries; with_revenue false skips the second. */
static int
cohort_load(PGconn *conn, reporting *rp, const reporting_args *a,
            bool with_revenue, cohort *co)
{
	reporting_period p;
	int rv, nrev = 0;

	memset(co, 0, sizeof(*co));
	reporting_period_init(&p, a);
	p.v[4] = reporting_cells_zone(rp);
	if ((rv = pond_pq_query(conn, &co->acq, acq_sql, 5, p.v)) != 0 ||
	    (with_revenue &&
	     (rv = pond_pq_query(conn, &co->rev, revenue_by_day_sql, 5,
	                         p.v)) != 0)) {
		return (rv);
	}
	co->nch = (size_t)PQntuples(co->acq);
	nrev = co->rev != NULL ? PQntuples(co->rev) : 0;
	if ((co->ch = calloc(co->nch + 1, sizeof(*co->ch))) == NULL) {
		return (POND_ENOMEM);
	}
	for (size_t i = 0; i < co->nch; i++) {
		channel_figures *f = &co->ch[i];
		f->channel = PQgetvalue(co->acq, (int)i, 0);
		f->new_customers = reporting_int(co->acq, (int)i, 1);
		f->spend = reporting_int(co->acq, (int)i, 2);
		f->incentive = reporting_int(co->acq, (int)i, 3);
		f->k = calloc((size_t)nrev + 1, sizeof(int64_t));
		f->rev = calloc((size_t)nrev + 1, sizeof(int64_t));
		if (f->k == NULL || f->rev == NULL) {
			return (POND_ENOMEM);
		}
		for (int r = 0; r < nrev; r++) {
			if (strcmp(PQgetvalue(co->rev, r, 0), f->channel) ==
			    0) {
				f->k[f->nk] = reporting_int(co->rev, r, 1);
				f->rev[f->nk++] = reporting_int(co->rev, r, 2);
			}
		}
	}
	return (cohort_all(co, nrev));
}

/* --- acquisition
 * ---------------------------------------------------------------- */

static json_t *
acq_json(const channel_figures *f, bool with_channel)
{
	json_t *o = json_pack(
	        "{s:I, s:I, s:o, s:I, s:o}", "new_customers",
	        (json_int_t)f->new_customers, "spend_fen",
	        (json_int_t)f->spend, "cac_fen",
	        reporting_ratio(f->spend, f->new_customers), "incentive_fen",
	        (json_int_t)f->incentive, "full_cac_fen",
	        reporting_ratio(f->spend + f->incentive, f->new_customers));

	if (o != NULL && with_channel) {
		json_object_set_new(o, "channel", json_string(f->channel));
	}
	return (o);
}

/* cohort_report_def says how one of the cohort reports lays out its
 * rows: row() for a channel (skipped when it returns NULL), the "all"
 * figures as a row or as the total. */
typedef struct cohort_report_def {
	const char *name;
	bool with_revenue;
	bool all_as_row;
	json_t *(*row)(const channel_figures *f, const reporting_args *a);
	json_t *(*total)(const channel_figures *f, const reporting_args *a);
} cohort_report_def;

static int
cohort_report(PGconn *conn, reporting *rp, const reporting_args *a,
              const cohort_report_def *def, json_t **out)
{
	cohort co;
	json_t *rows = json_array(), *row;
	int rv;

	if ((rv = cohort_load(conn, rp, a, def->with_revenue, &co)) == 0) {
		for (size_t i = 0; i < co.nch; i++) {
			if ((row = def->row(&co.ch[i], a)) != NULL) {
				json_array_append_new(rows, row);
			}
		}
		if (def->all_as_row) {
			json_array_append_new(rows, def->row(&co.all, a));
		}
		*out = reporting_envelope(
		        def->name, a, true, rows,
		        def->total != NULL ? def->total(&co.all, a) : NULL);
		rows = NULL;
	}
	json_decref(rows);
	cohort_free(&co);
	return (rv);
}

static json_t *
acq_row(const channel_figures *f, const reporting_args *a)
{
	(void)a;
	return (acq_json(f, true));
}

static json_t *
acq_total(const channel_figures *f, const reporting_args *a)
{
	(void)a;
	return (acq_json(f, false));
}

int
reporting_acquisition(PGconn *conn, reporting *rp, const reporting_args *a,
                      json_t **out, reporting_error *err)
{
	static const cohort_report_def def = {"acquisition", false, false,
	                                      acq_row, acq_total};

	(void)err;
	return (cohort_report(conn, rp, a, &def, out));
}

/* --- ltv
 * ------------------------------------------------------------------------ */

/* ltv_row is the row of a channel with new customers (and of "all"). */
static json_t *
ltv_row(const channel_figures *f, const reporting_args *a)
{
	json_t *ltv;

	if (f->new_customers == 0 && strcmp(f->channel, "all") != 0) {
		return (NULL);
	}
	ltv = json_object();

	for (size_t d = 0; d < a->ndays; d++) {
		char key[16];
		int64_t sum = 0;
		for (size_t j = 0; j < f->nk && f->k[j] <= a->days[d]; j++) {
			sum += f->rev[j];
		}
		snprintf(key, sizeof(key), "%d", a->days[d]);
		json_object_set_new(ltv, key,
		                    reporting_ratio(sum, f->new_customers));
	}
	return (json_pack("{s:s, s:I, s:o}", "channel", f->channel,
	                  "cohort_size", (json_int_t)f->new_customers,
	                  "ltv_fen", ltv));
}

int
reporting_ltv(PGconn *conn, reporting *rp, const reporting_args *a,
              json_t **out, reporting_error *err)
{
	static const cohort_report_def def = {"ltv", true, true, ltv_row,
	                                      NULL};

	(void)err;
	return (cohort_report(conn, rp, a, &def, out));
}

/* --- payback
 * -------------------------------------------------------------------- */

static int64_t
pow10_i64(int scale)
{
	int64_t p = 1;

	while (scale-- > 0) {
		p *= 10;
	}
	return (p);
}

/* payback_days returns the least d >= 1 with LTV(d) x margin >= full CAC,
 * or 0 for none: with n customers, cum/n x m/10^s >= cost/n, that is
 * cum x m >= cost x 10^s, compared exactly. */
static int64_t
payback_days(const channel_figures *f, reporting_decimal margin)
{
	__int128 cost =
	        (__int128)(f->spend + f->incentive) * pow10_i64(margin.scale);
	__int128 cum = 0;
	size_t j = 0;

	if (f->new_customers == 0) {
		return (0);
	}
	for (; j < f->nk && f->k[j] <= 1; j++) {
		cum += f->rev[j];
	}
	if (cum * margin.num >= cost) {
		return (1);
	}
	for (; j < f->nk; j++) {
		cum += f->rev[j];
		if (cum * margin.num >= cost) {
			return (f->k[j]);
		}
	}
	return (0);
}

static json_t *
payback_row(const channel_figures *f, const reporting_args *a)
{
	int64_t d = payback_days(f, a->margin);

	return (json_pack(
	        "{s:s, s:I, s:o, s:o}", "channel", f->channel, "new_customers",
	        (json_int_t)f->new_customers, "full_cac_fen",
	        reporting_ratio(f->spend + f->incentive, f->new_customers),
	        "payback_days", d > 0 ? json_integer(d) : json_null()));
}

int
reporting_payback(PGconn *conn, reporting *rp, const reporting_args *a,
                  json_t **out, reporting_error *err)
{
	static const cohort_report_def def = {"payback", true, true,
	                                      payback_row, NULL};

	(void)err;
	return (cohort_report(conn, rp, a, &def, out));
}

/* --- repurchase
 * ----------------------------------------------------------------- */

/* From the day cells 'repeat' when they answer (REPORTING_CELLS_CTE;
 * 0011_reporting_repeat.sql says why): buyers = N - A, repeat buyers =
 * A - B, where for each day d of the period, i = d - d1, N counts the
 * paid orders of d, A those whose previous paid order is at most i days
 * before (so in the period), B those whose second previous one is; a
 * lateral per day reads those rows by index (about days^2 / 2 of A and of
 * B; OFFSET 0 keeps the planner from flattening it into a scan of every
 * row of the key). Else every paid order of the period, grouped by customer.
 * The lifetime figures come from the rollups of 0007 (l) or the customers'
 * first paid orders. $4 is NULL (no channel). */
/* clang-format off */
static const char repurchase_sql[] =
	"WITH " REPORTING_CELLS_CTE("$5") ", "
	"t AS (SELECT count(*) AS tn FROM rpt_orders WHERE NOT (SELECT fresh"
	" FROM h) AND paid AND occurred_at >= $1 AND occurred_at < $2 AND"
	" occurred_at < $3 GROUP BY partition, customer_key), "
	"c AS (SELECT COALESCE(sum(x.n) FILTER (WHERE x.key = '0'), 0) AS n,"
	" COALESCE(sum(x.n) FILTER (WHERE x.key = '1'), 0) AS a,"
	" COALESCE(sum(x.n) FILTER (WHERE x.key = '2'), 0) AS b"
	" FROM h, generate_series(0, h.d2 - h.d1 - 1) i, LATERAL (SELECT"
	" key, n FROM rpt_cells WHERE cell = 'repeat' AND day = h.d1 + i"
	" AND key IN ('0', '1', '2') AND k <= i OFFSET 0) x WHERE h.fresh), "
	"l AS (SELECT COALESCE(max(latest) < $3, true) AS fresh"
	" FROM rpt_rollup_horizon) "
	"SELECT CASE WHEN (SELECT fresh FROM h) THEN (SELECT n - a FROM c)"
	" ELSE (SELECT count(*) FROM t) END,"
	" CASE WHEN (SELECT fresh FROM h) THEN (SELECT a - b FROM c)"
	" ELSE (SELECT count(*) FROM t WHERE tn >= 2) END,"
	" CASE WHEN (SELECT fresh FROM l) THEN (SELECT sum(n)"
	" FROM rpt_rollup_counts WHERE dim = 'buyers') ELSE (SELECT count(*)"
	" FROM rpt_customers WHERE first_paid[1] < $3) END,"
	" CASE WHEN (SELECT fresh FROM l) THEN (SELECT sum(n)"
	" FROM rpt_rollup_counts WHERE dim = 'buyers2') ELSE (SELECT count(*)"
	" FROM rpt_customers WHERE first_paid[2] < $3) END";
/* clang-format on */

int
reporting_repurchase(PGconn *conn, reporting *rp, const reporting_args *a,
                     json_t **out, reporting_error *err)
{
	reporting_period p;
	PGresult *res;
	int rv;

	(void)err;
	reporting_period_init(&p, a);
	p.v[3] = NULL;
	p.v[4] = reporting_cells_zone(rp);
	if ((rv = pond_pq_query(conn, &res, repurchase_sql, 5, p.v)) != 0) {
		return (rv);
	}
	int64_t b = reporting_int(res, 0, 0), rb = reporting_int(res, 0, 1);
	int64_t lb = reporting_int(res, 0, 2), lrb = reporting_int(res, 0, 3);
	PQclear(res);
	*out = reporting_envelope(
	        "repurchase", a, true, json_array(),
	        json_pack("{s:I, s:I, s:o, s:I, s:I, s:o}", "buyers",
	                  (json_int_t)b, "repeat_buyers", (json_int_t)rb,
	                  "repurchase_rate", reporting_ratio(rb, b),
	                  "lifetime_buyers", (json_int_t)lb,
	                  "lifetime_repeat_buyers", (json_int_t)lrb,
	                  "lifetime_repurchase_rate",
	                  reporting_ratio(lrb, lb)));
	return (POND_OK);
}

/* --- guides
 * --------------------------------------------------------------------- */

/* From the day cells when they answer (REPORTING_CELLS_CTE), else two index
 * range scans, never all customers: the period's new customers (by
 * acquired_at) and the period's order events (by occurred_at) with their
 * owner, counting only events at or after the acquisition. A guide or store
 * has a row when it added a customer or had an order in the period. */
/* clang-format off */
static const char guides_sql[] =
	"WITH " REPORTING_CELLS_CTE("$5") ", "
	"per AS (SELECT guide_id, store_id, 1 AS added, 0::bigint AS net"
	" FROM rpt_customers WHERE acquired_at >= $1 AND acquired_at < $2 AND"
	" acquired_at < $3 AND (guide_id IS NOT NULL OR store_id IS NOT NULL)"
	" AND NOT (SELECT fresh FROM h)"
	" UNION ALL SELECT c.guide_id, c.store_id, 0, " NET_AMOUNT " FROM"
	" rpt_orders o JOIN rpt_customers c ON c.partition = o.partition AND"
	" c.customer_key = o.customer_key WHERE o.occurred_at >= $1 AND"
	" o.occurred_at < $2 AND o.occurred_at < $3 AND o.occurred_at >="
	" c.acquired_at AND (c.guide_id IS NOT NULL OR c.store_id IS NOT"
	" NULL) AND NOT (SELECT fresh FROM h)) "
	"SELECT 'guide' AS kind, guide_id COLLATE \"C\" AS id, sum(added),"
	" sum(net) FROM per WHERE guide_id IS NOT NULL GROUP BY guide_id "
	"UNION ALL "
	"SELECT 'store', store_id COLLATE \"C\", sum(added), sum(net) FROM per"
	" WHERE store_id IS NOT NULL GROUP BY store_id "
	"UNION ALL "
	"SELECT cell, key COLLATE \"C\", sum(n), sum(net_fen) FROM rpt_cells"
	" WHERE (SELECT fresh FROM h) AND cell IN ('guide', 'store') AND day >="
	" (SELECT d1 FROM h) AND day < (SELECT d2 FROM h) GROUP BY cell, key"
	" HAVING sum(n) <> 0 OR sum(orders) <> 0 "
	"ORDER BY kind, id";
/* clang-format on */

/* commission_row adds tier, rate and commission_fen for net revenue:
 * the highest tier whose threshold the revenue reaches, none when it is
 * negative; commission = rate x net rounded half up, 0 when net <= 0. */
static void
commission_row(const reporting *rp, json_t *row, int64_t net)
{
	const reporting_tier *t = NULL;
	int64_t commission = 0;

	for (size_t i = 0; net >= 0 && i < rp->ntiers; i++) {
		if (rp->tiers[i].threshold_fen <= net) {
			t = &rp->tiers[i];
		}
	}
	if (t != NULL && net > 0) {
		__int128 den = (__int128)pow10_i64(t->rate.scale);
		__int128 num = (__int128)net * t->rate.num;
		commission = (int64_t)((2 * num + den) / (2 * den));
	}
	json_object_set_new(row, "commission_fen", json_integer(commission));
	json_object_set_new(row, "tier",
	                    t != NULL ? json_integer(t - rp->tiers)
	                              : json_null());
	json_object_set_new(row, "rate",
	                    t != NULL ? json_real(strtod(t->rate_text, NULL))
	                              : json_null());
}

int
reporting_guides(PGconn *conn, reporting *rp, const reporting_args *a,
                 json_t **out, reporting_error *err)
{
	reporting_period p;
	PGresult *res;
	json_t *rows = json_array();
	int rv;

	(void)err;
	reporting_period_init(&p, a);
	p.v[4] = reporting_cells_zone(rp);
	if ((rv = pond_pq_query(conn, &res, guides_sql, 5, p.v)) != 0) {
		json_decref(rows);
		return (rv);
	}
	for (int r = 0; r < PQntuples(res); r++) {
		bool guide = strcmp(PQgetvalue(res, r, 0), "guide") == 0;
		int64_t net = reporting_int(res, r, 3);
		json_t *row =
		        json_pack("{s:s, s:o, s:o, s:I, s:I}", "kind",
		                  PQgetvalue(res, r, 0), "guide_id",
		                  guide ? json_string(PQgetvalue(res, r, 1))
		                        : json_null(),
		                  "store_id",
		                  guide ? json_null()
		                        : json_string(PQgetvalue(res, r, 1)),
		                  "customers_added",
		                  (json_int_t)reporting_int(res, r, 2),
		                  "net_revenue_fen", (json_int_t)net);
		commission_row(rp, row, net);
		json_array_append_new(rows, row);
	}
	PQclear(res);
	*out = reporting_envelope("guides", a, true, rows, NULL);
	return (POND_OK);
}

/* --- the day cells' zone
 * --------------------------------------------------------- */

/* cells_check_work rebuilds the cells in POND_TZ when they are kept in
 * another zone or for other POND_ATTRIBUTION_H hours (the campaign cells
 * of 0012_reporting_campaigns.sql depend on them): rpt_cells_check takes
 * the cells' lock, so a consumer batch waits for it, and another
 * replica's check waits and finds both set. */
static int
cells_check_work(PGconn *conn, void *arg)
{
	reporting *rp = arg;
	char hours[24];
	const char *params[] = {rp->tz, hours};
	PGresult *res;
	int rv;

	snprintf(hours, sizeof(hours), "%lld",
	         (long long)rp->conf.attribution_h);
	if ((rv = pond_pq_query(conn, &res, "SELECT rpt_cells_check($1, $2)",
	                        2, params)) != 0) {
		return (rv);
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
		pond_log_info("cells_rebuilt", "tz=%s attribution_h=%s",
		              rp->tz, hours);
	}
	PQclear(res);
	return (POND_OK);
}

static void
cells_check_done(int rv, void *arg)
{
	reporting *rp = arg;

	rp->cells_checking = false;
	if (rv == 0) {
		atomic_store(&rp->cells_ready, true);
	} else {
		rp->cells_retry_at = uv_now(rp->svc->loop) + 60000;
		pond_log_error("cells_unused",
		               "tz=%s why=\"the cells could not be kept in "
		               "POND_TZ; the cohort reports take the facts "
		               "until a check succeeds\"",
		               rp->tz);
	}
	rp->requests--;
	reporting_maybe_stopped(rp);
}

int
reporting_cells_check(reporting *rp)
{
	int rv;

	if (atomic_load(&rp->cells_ready) || rp->cells_checking ||
	    rp->stopping || uv_now(rp->svc->loop) < rp->cells_retry_at) {
		return (POND_OK);
	}
	if ((rv = pond_db_submit(rp->svc->db, cells_check_work,
	                         cells_check_done, rp)) == 0) {
		rp->cells_checking = true;
		rp->requests++;
	}
	return (rv);
}
