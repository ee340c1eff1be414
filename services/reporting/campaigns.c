/*
 * campaigns.c - the campaign report (API.md section 4) from the touches
 * stream (rpt_touch_changes) and the order facts.
 *
 * The touches of a period are those selected in it (selected_at in T,
 * before as_of); a state counts once per touch, when it was entered
 * before as_of. A conversion is a paid order within POND_ATTRIBUTION_H
 * after a delivered touch, credited to the customer's latest delivered
 * touch before it, of any campaign; a hold-out touch converts on an order
 * within the same hours after its selection. cost_fen is the TouchChange
 * cost_fen of the sent touches (cost per touch x sent) plus the rewards
 * paid in T with the campaign's id.
 *
 * Both paths are one statement: when the period is whole local days, the
 * horizon is before as_of and the cells' zone and attribution hours are
 * the service's (h and g below), the figures come from the campaign day
 * cells of 0012_reporting_campaigns.sql; otherwise the fact path (t and
 * what follows it), which is the definition, runs alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "reporting.h"

/* A read or clicked receipt means delivered too (a lost delivered
 * receipt must not lose the conversion); the earliest one is the time. */
#define DELIVERED "('delivered', 'read', 'clicked')"

/* CAMPAIGN_CELLS_CTE is g(fresh): the cells answer (REPORTING_CELLS_CTE's
 * h, and the cells' attribution hours are $5); cx: the period's campaign
 * cells summed over partitions, with the campaign id of each (a
 * suppressed cell's key is [campaign, reason]). */
#define CAMPAIGN_CELLS_CTE                                                    \
	"g AS (SELECT (SELECT fresh FROM h) AND COALESCE((SELECT "            \
	"attribution_h FROM rpt_cells_zone) = $5::int, false) AS fresh), "    \
	"cx AS (SELECT * FROM (SELECT cell, day, CASE WHEN cell = "           \
	"'camp_suppressed' THEN key::json->>0 ELSE key END AS id, CASE WHEN " \
	"cell = 'camp_suppressed' THEN key::json->>1 END AS reason, k, "      \
	"sum(n) AS n, sum(orders) AS orders, sum(net_fen) AS net FROM "       \
	"rpt_cells WHERE (SELECT fresh FROM g) AND cell IN ("                 \
	"'camp_audience', 'camp_sent', 'camp_delivered', 'camp_failed', "     \
	"'camp_suppressed', 'camp_held_out', 'camp_conversions', "            \
	"'camp_rewards') AND day >= (SELECT d1 FROM h) AND day < (SELECT d2 " \
	"FROM h) GROUP BY cell, day, key, k) s WHERE $4::text IS NULL OR id " \
	"= $4)"

/* CAMPAIGN_CELL(C, F) is the sum of figure F of the cells of kind C of a
 * campaign's cells x. */
#define CAMPAIGN_CELL(C, F)                                                   \
	"COALESCE(sum(" F ") FILTER (WHERE cell = '" C "'), 0)::bigint"

/* CAMPAIGN_CELLS_ROWS is a row per campaign with an audience in the
 * period, from cx: a customer counts once, by its selection in the
 * period whose previous one (k days before) is before the first day. */
/* clang-format off */
#define CAMPAIGN_CELLS_ROWS                                                   \
	"SELECT id, COALESCE(sum(n) FILTER (WHERE cell = 'camp_audience' AND " \
	"k > day - (SELECT d1 FROM h)), 0)::bigint, "                          \
	CAMPAIGN_CELL("camp_sent", "n") ", "                                   \
	CAMPAIGN_CELL("camp_delivered", "n") ", "                              \
	CAMPAIGN_CELL("camp_failed", "n") ", "                                 \
	"(SELECT COALESCE(json_object_agg(reason, n), '{}') FROM (SELECT "     \
	"y.reason, sum(y.n) AS n FROM cx y WHERE y.id = x.id AND y.cell = "    \
	"'camp_suppressed' GROUP BY 1 HAVING sum(y.n) <> 0) s), "              \
	CAMPAIGN_CELL("camp_conversions", "n") ", "                            \
	CAMPAIGN_CELL("camp_conversions", "net") ", "                          \
	"(" CAMPAIGN_CELL("camp_sent", "net") " + "                            \
	CAMPAIGN_CELL("camp_rewards", "net") "), "                             \
	CAMPAIGN_CELL("camp_held_out", "n") ", "                               \
	CAMPAIGN_CELL("camp_held_out", "orders") " "                           \
	"FROM cx x GROUP BY id HAVING sum(n) FILTER (WHERE cell = "            \
	"'camp_audience' AND k > day - (SELECT d1 FROM h)) > 0"
/* clang-format on */

static const char campaigns_sql[] = "WITH " REPORTING_CELLS_CTE(
        "$6") ", " CAMPAIGN_CELLS_CTE ", "
              "t AS (SELECT DISTINCT ON (touch_id) partition, customer_key, "
              " touch_id, campaign_id, selected_at FROM rpt_touch_changes "
              "WHERE "
              " selected_at >= $1 AND selected_at < $2 AND selected_at < $3 "
              "AND "
              " ($4::text IS NULL OR campaign_id = $4) AND NOT (SELECT fresh "
              "FROM "
              " g) ORDER BY touch_id, seq), "
              "st AS (SELECT DISTINCT ON (x.touch_id, x.state) x.campaign_id, "
              " x.touch_id, x.state, x.reason, x.cost_fen FROM "
              "rpt_touch_changes "
              " x JOIN t USING (partition, customer_key, touch_id) WHERE x.at "
              "IS "
              " NULL OR x.at < $3 ORDER BY x.touch_id, x.state, x.seq), "
              "del AS (SELECT x.partition, x.customer_key, x.touch_id, "
              " x.campaign_id, min(x.at) AS at FROM rpt_touch_changes x WHERE "
              " x.state IN " DELIVERED " AND x.at < $3 AND (x.partition, "
              " x.customer_key) IN (SELECT partition, customer_key FROM t) "
              " GROUP BY 1, 2, 3, 4), "
              "conv AS (SELECT campaign_id, amount_fen FROM (SELECT DISTINCT "
              "ON "
              " (o.partition, o.customer_key, o.seq) d.touch_id, "
              "d.campaign_id, "
              " d.at, o.occurred_at, o.amount_fen FROM del d JOIN rpt_orders "
              "o ON "
              " o.partition = d.partition AND o.customer_key = d.customer_key "
              "AND "
              " o.paid AND o.occurred_at < $3 AND d.at <= o.occurred_at ORDER "
              "BY "
              " o.partition, o.customer_key, o.seq, d.at DESC, d.touch_id "
              "COLLATE "
              " \"C\" DESC) l WHERE occurred_at < at + $5::int * interval '1 "
              "hour' "
              " AND touch_id IN (SELECT touch_id FROM t)), "
              "ho AS (SELECT t.campaign_id, count(*) AS n FROM t JOIN "
              "rpt_orders o "
              " ON o.partition = t.partition AND o.customer_key = "
              "t.customer_key "
              " AND o.paid AND o.occurred_at >= t.selected_at AND "
              "o.occurred_at < "
              " t.selected_at + $5::int * interval '1 hour' AND o.occurred_at "
              "< $3 "
              " WHERE EXISTS (SELECT 1 FROM rpt_touch_changes h WHERE "
              "h.partition "
              " = t.partition AND h.customer_key = t.customer_key AND "
              "h.touch_id = "
              " t.touch_id AND h.state = 'held_out' AND (h.at IS NULL OR h.at "
              "< "
              " $3)) GROUP BY 1) "
              "SELECT * FROM (SELECT c.id AS id, "
              " (SELECT count(DISTINCT customer_key) FROM t WHERE campaign_id "
              "= "
              "  c.id), "
              " (SELECT count(*) FROM st WHERE campaign_id = c.id AND state = "
              "  'sent'), "
              " (SELECT count(DISTINCT touch_id) FROM st WHERE campaign_id = "
              "  c.id AND state IN " DELIVERED "), "
              " (SELECT count(*) FROM st WHERE campaign_id = c.id AND state = "
              "  'failed'), "
              " (SELECT COALESCE(json_object_agg(r, n), '{}') FROM (SELECT "
              "  COALESCE(reason, '') AS r, count(*) AS n FROM st WHERE "
              "  campaign_id = c.id AND state = 'suppressed' GROUP BY 1) s), "
              " (SELECT count(*) FROM conv WHERE campaign_id = c.id), "
              " (SELECT COALESCE(sum(amount_fen), 0) FROM conv WHERE "
              "campaign_id "
              "  = c.id), "
              " (SELECT COALESCE(sum(cost_fen), 0) FROM st WHERE campaign_id "
              "= "
              "  c.id AND state = 'sent') + (SELECT COALESCE(sum(amount_fen), "
              "0) "
              "  FROM rpt_rewards r WHERE r.campaign_id = c.id AND "
              "r.occurred_at "
              "  >= $1 AND r.occurred_at < $2 AND r.occurred_at < $3), "
              " (SELECT count(*) FROM st WHERE campaign_id = c.id AND state = "
              "  'held_out'), "
              " COALESCE((SELECT n FROM ho WHERE campaign_id = c.id), 0) "
              "FROM (SELECT DISTINCT campaign_id AS id FROM t) c "
              "UNION ALL " CAMPAIGN_CELLS_ROWS ") r "
              "ORDER BY id COLLATE \"C\"";

/* campaign_row turns one result row into the reply row. */
static json_t *
campaign_row(const PGresult *res, int r)
{
	int64_t sent = reporting_int(res, r, 2);
	int64_t conversions = reporting_int(res, r, 6);
	int64_t revenue = reporting_int(res, r, 7);
	int64_t cost = reporting_int(res, r, 8);
	int64_t holdout = reporting_int(res, r, 9);
	int64_t holdout_conv = reporting_int(res, r, 10);
	json_t *suppressed = json_loads(PQgetvalue(res, r, 5), 0, NULL);
	json_t *lift = json_null();

	/* lift = (conversions / sent) / (holdout_conv / holdout) - 1, null
	 * when either rate is undefined or the hold-out rate is 0. */
	if (sent > 0 && holdout > 0 && holdout_conv > 0) {
		lift = json_real(
		        ((double)conversions * (double)holdout) /
		                ((double)sent * (double)holdout_conv) -
		        1.0);
	}
	return (json_pack(
	        "{s:s, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:o, s:I, s:I, "
	        "s:o}",
	        "campaign_id", PQgetvalue(res, r, 0), "audience",
	        (json_int_t)reporting_int(res, r, 1), "sent", (json_int_t)sent,
	        "delivered", (json_int_t)reporting_int(res, r, 3), "failed",
	        (json_int_t)reporting_int(res, r, 4), "suppressed",
	        suppressed != NULL ? suppressed : json_object(), "conversions",
	        (json_int_t)conversions, "revenue_fen", (json_int_t)revenue,
	        "cost_fen", (json_int_t)cost, "roi",
	        reporting_ratio(revenue - cost, cost), "holdout_size",
	        (json_int_t)holdout, "holdout_conversions",
	        (json_int_t)holdout_conv, "lift", lift));
}

int
reporting_campaigns(PGconn *conn, reporting *rp, const reporting_args *a,
                    json_t **out, reporting_error *err)
{
	reporting_period p;
	char hours[24];
	PGresult *res;
	int rv;

	(void)err;
	reporting_period_init(&p, a);
	snprintf(hours, sizeof(hours), "%lld",
	         (long long)rp->conf.attribution_h);
	const char *params[] = {p.v[0], p.v[1],
	                        p.v[2], a->campaign_id,
	                        hours,  reporting_cells_zone(rp)};
	if ((rv = pond_pq_query(conn, &res, campaigns_sql, 6, params)) != 0) {
		return (rv);
	}
	json_t *rows = json_array();
	for (int r = 0; r < PQntuples(res); r++) {
		json_array_append_new(rows, campaign_row(res, r));
	}
	PQclear(res);
	*out = reporting_envelope("campaigns", a, true, rows, NULL);
	return (POND_OK);
}
