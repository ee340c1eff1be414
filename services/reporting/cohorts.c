/*
 * cohorts.c - the reports about customers rather than money: lifecycle,
 * retention, funnel, fission and the portrait (用户画像). Definitions:
 * API.md sections 4 and 6.
 *
 * Every figure is taken at as_of from facts with occurred_at < as_of: a
 * customer's stage counts its paid orders and member_joined before as_of,
 * its region is the latest profile_updated carrying one before as_of, and
 * its tags are those whose latest change before as_of put them on.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "reporting.h"

/* STAGE_EXPR is the lifecycle stage at as_of ($1) of rpt_customers row
 * p, from its milestones (rpt_stage_before of 0014_reporting_history.sql:
 * member_joined before as_of, else how many of its three earliest paid
 * orders came before as_of; NULL before its first event). */
#define STAGE_EXPR "rpt_stage_before(p, $1)"

/* --- lifecycle
 * ------------------------------------------------------------------ */

/* From the rollup when it is fresh at as_of ($1); else from the history
 * cells (REPORTING_HISTORY_CTE, zone $2) when they answer; else from the
 * customers' milestones. */
/* clang-format off */
static const char lifecycle_sql[] =
	"WITH " REPORTING_FRESH_CTE("'stage'") ", "
	REPORTING_HISTORY_CTE("$2", "'stage'") ", "
	"hist(stage, n) AS (" HISTORY_CELLS("'stage_at'") " UNION ALL SELECT"
	" rpt_stage_before(p, $1), 1"
	" FROM x JOIN rpt_customers p USING (partition, customer_key) UNION"
	" ALL SELECT rpt_stage_before(p, b.m), -1 FROM b, x JOIN rpt_customers"
	" p USING (partition, customer_key)) "
	"SELECT value, sum(n) FROM rpt_rollup_counts WHERE dim = 'stage' AND"
	" (SELECT fresh FROM h) GROUP BY value "
	"UNION ALL SELECT stage, sum(n) FROM hist WHERE stage IS NOT NULL"
	" GROUP BY stage "
	"UNION ALL SELECT stage, count(*) FROM (SELECT " STAGE_EXPR " AS stage"
	" FROM rpt_customers p WHERE first_event_at < $1 AND NOT (SELECT fresh"
	" FROM h) AND NOT EXISTS (SELECT 1 FROM b)) s GROUP BY stage";
/* clang-format on */

int
reporting_lifecycle(PGconn *conn, reporting *rp, const reporting_args *a,
                    json_t **out, reporting_error *err)
{
	static const char *const stages[] = {"potential", "first_purchase",
	                                     "repurchase", "loyal", "member"};
	char as_of[40];
	const char *params[] = {as_of, reporting_cells_zone(rp)};
	int64_t counts[5] = {0}, all = 0;
	PGresult *res;
	int rv;

	(void)err;
	reporting_sql_time(a->as_of, as_of, sizeof(as_of));
	if ((rv = pond_pq_query(conn, &res, lifecycle_sql, 2, params)) != 0) {
		return (rv);
	}
	for (int r = 0; r < PQntuples(res); r++) {
		for (size_t i = 0; i < 5; i++) {
			if (strcmp(PQgetvalue(res, r, 0), stages[i]) == 0) {
				counts[i] = reporting_int(res, r, 1);
				all += counts[i];
			}
		}
	}
	PQclear(res);
	json_t *rows = json_array();
	for (size_t i = 0; i < 5; i++) {
		json_array_append_new(rows, json_pack("{s:s, s:I}", "stage",
		                                      stages[i], "customers",
		                                      (json_int_t)counts[i]));
	}
	*out = reporting_envelope(
	        "lifecycle", a, false, rows,
	        json_pack("{s:I}", "customers", (json_int_t)all));
	return (POND_OK);
}

/* --- retention
 * ------------------------------------------------------------------ */

/* Weeks are local (POND_TZ, $5) Monday weeks; a customer is retained in
 * week k when a paid order or interaction at or after its acquisition
 * and before as_of falls in it. known says whether week k has started
 * before as_of (otherwise retained[k] is null).
 *
 * Over whole local days (REPORTING_CELLS_CTE, zone $7) and for k below
 * the 104 weeks the cells keep (0010_reporting_weeks.sql), the cohort
 * sizes are the 'acq' cells and the retained customers the 'retention'
 * cells of the period's days, summed by the Monday of the day's week;
 * otherwise the facts of the cohort c. */
/* RETENTION_CELLS(CELL) is the period's cells CELL of channel $4 summed
 * by week (and k) when the cells answer. */
#define RETENTION_CELLS(CELL)                                                 \
	"SELECT date_trunc('week', day::timestamp)::date AS week, k, "        \
	"sum(n)::bigint AS n FROM rpt_cells WHERE " REPORTING_CELLS_OF(       \
	        CELL) " AND (SELECT cells FROM g) AND ($4::text IS NULL OR "  \
	              "key = $4) AND "                                        \
	              "k < $6::int GROUP BY 1, 2"
/* clang-format off */
static const char retention_sql[] =
	"WITH " REPORTING_CELLS_CTE("$7") ", "
	"g AS (SELECT fresh AND $6::int <= 104 AS cells FROM h), "
	REPORTING_COHORT_CTE_IF("NOT (SELECT cells FROM g)") ", "
	"cw AS (SELECT c.*, date_trunc('week', c.acquired_at AT TIME ZONE"
	" $5)::date AS week FROM c), "
	"hits AS (SELECT DISTINCT cw.week, cw.partition, cw.customer_key,"
	" ((x.occurred_at AT TIME ZONE $5)::date - cw.week) / 7 AS k"
	" FROM cw JOIN LATERAL (SELECT o.occurred_at FROM rpt_orders o"
	"  WHERE o.partition = cw.partition AND o.customer_key ="
	"  cw.customer_key AND o.paid AND o.occurred_at >= cw.acquired_at"
	"  AND o.occurred_at < $3 UNION ALL SELECT i.occurred_at FROM"
	"  rpt_activity i WHERE i.partition = cw.partition AND"
	"  i.customer_key = cw.customer_key AND i.occurred_at >="
	"  cw.acquired_at AND i.occurred_at < $3) x ON true), "
	"sizes AS (SELECT week, count(*) AS n FROM cw GROUP BY week"
	" UNION ALL SELECT week, sum(n)::bigint FROM (" RETENTION_CELLS("acq")
	") a GROUP BY week HAVING sum(n) <> 0), "
	"r AS (SELECT week, k, count(*) AS n FROM hits GROUP BY week, k"
	" UNION ALL " RETENTION_CELLS("retention") ") "
	"SELECT s.week::text, s.n, k.k, ((s.week + 7 * k.k)::timestamp AT"
	" TIME ZONE $5) < $3, COALESCE(r.n, 0) FROM sizes s CROSS JOIN"
	" generate_series(0, $6::int - 1) AS k(k) LEFT JOIN r ON r.week ="
	" s.week AND r.k = k.k ORDER BY s.week, k.k";
/* clang-format on */

int
reporting_retention(PGconn *conn, reporting *rp, const reporting_args *a,
                    json_t **out, reporting_error *err)
{
	reporting_period p;
	char weeks[16];
	PGresult *res;
	json_t *rows = json_array(), *row = NULL, *retained = NULL;
	int rv;

	(void)err;
	reporting_period_init(&p, a);
	snprintf(weeks, sizeof(weeks), "%d", a->weeks);
	const char *params[] = {p.v[0],
	                        p.v[1],
	                        p.v[2],
	                        p.v[3],
	                        rp->tz,
	                        weeks,
	                        reporting_cells_zone(rp)};
	if ((rv = pond_pq_query(conn, &res, retention_sql, 7, params)) != 0) {
		json_decref(rows);
		return (rv);
	}
	for (int r = 0; r < PQntuples(res); r++) {
		int64_t size = reporting_int(res, r, 1);
		if (reporting_int(res, r, 2) == 0) {
			retained = json_array();
			row = json_pack("{s:s, s:I, s:o}", "week",
			                PQgetvalue(res, r, 0), "cohort_size",
			                (json_int_t)size, "retained",
			                retained);
			json_array_append_new(rows, row);
		}
		bool known = strcmp(PQgetvalue(res, r, 3), "t") == 0;
		json_array_append_new(
		        retained,
		        known ? reporting_ratio(reporting_int(res, r, 4), size)
		              : json_null());
	}
	PQclear(res);
	*out = reporting_envelope("retention", a, true, rows, NULL);
	return (POND_OK);
}

/* --- funnel
 * --------------------------------------------------------------------- */

/* The customer's paid orders at or after acquisition, before as_of, in
 * the order of API.md section 6 (time, event_id, publisher): the first
 * must fall within the window after acquisition, the second within the
 * window after the first, and a member_joined within the window after
 * (and not before) the second. */
/* FUNNEL_CELLS(CELL) is the customers of cell CELL of f. */
#define FUNNEL_CELLS(CELL)                                                    \
	"(SELECT COALESCE(sum(n), 0) FROM f WHERE cell = '" CELL "')"

/* From the day cells when they answer (REPORTING_CELLS_CTE, zone $6):
 * the customers reach step j + 1 whose bucket of cell funnel<j>, the
 * largest of their first j gaps in whole days, is under window_days. */
/* clang-format off */
static const char funnel_sql[] =
	"WITH " REPORTING_CELLS_COHORT_CTE("$6") ", "
	"f AS (SELECT cell, sum(n) AS n FROM rpt_cells WHERE (SELECT fresh"
	" FROM h) AND cell IN ('acq', 'funnel1', 'funnel2', 'funnel3') AND"
	" day >= (SELECT d1 FROM h) AND day < (SELECT d2 FROM h) AND ($4::text"
	" IS NULL OR key = $4) AND (cell = 'acq' OR k < $5::int) GROUP BY"
	" cell), "
	"w AS (SELECT $5::int * interval '24 hours' AS len), "
	"x AS (SELECT c.partition, c.customer_key, c.acquired_at, o.t[1] AS t1,"
	" o.t[2] AS t2 FROM c LEFT JOIN LATERAL (SELECT array_agg(occurred_at"
	"  ORDER BY occurred_at, event_id, publisher) AS t FROM (SELECT"
	"  occurred_at, event_id, publisher FROM rpt_orders y WHERE"
	"  y.partition = c.partition AND y.customer_key = c.customer_key AND"
	"  y.paid AND y.occurred_at >= c.acquired_at AND y.occurred_at < $3"
	"  ORDER BY occurred_at, event_id, publisher LIMIT 2) z) o ON true), "
	"s AS (SELECT x.*, COALESCE(t1 < acquired_at + w.len, false) AS f1,"
	" COALESCE(t1 < acquired_at + w.len AND t2 < t1 + w.len, false) AS f2,"
	" w.len FROM x, w) "
	"SELECT count(*) + " FUNNEL_CELLS("acq") ", count(*) FILTER (WHERE"
	" f1) + " FUNNEL_CELLS("funnel1") ", count(*) FILTER (WHERE f2) + "
	FUNNEL_CELLS("funnel2") ", count(*) FILTER (WHERE f2 AND EXISTS"
	" (SELECT 1 FROM rpt_members m WHERE m.partition = s.partition AND"
	" m.customer_key = s.customer_key AND m.occurred_at >= s.t2 AND"
	" m.occurred_at < s.t2 + s.len AND m.occurred_at < $3)) + "
	FUNNEL_CELLS("funnel3") " FROM s";
/* clang-format on */

int
reporting_funnel(PGconn *conn, reporting *rp, const reporting_args *a,
                 json_t **out, reporting_error *err)
{
	static const char *const steps[] = {"added", "first_order",
	                                    "second_order", "member"};
	reporting_period p;
	char window[16];
	PGresult *res;
	int64_t n[4];
	int rv;

	(void)err;
	reporting_period_init(&p, a);
	snprintf(window, sizeof(window), "%d", a->window_days);
	const char *params[] = {p.v[0], p.v[1], p.v[2],
	                        p.v[3], window, reporting_cells_zone(rp)};
	if ((rv = pond_pq_query(conn, &res, funnel_sql, 6, params)) != 0) {
		return (rv);
	}
	for (int i = 0; i < 4; i++) {
		n[i] = reporting_int(res, 0, i);
	}
	PQclear(res);
	json_t *rows = json_array();
	for (int i = 0; i < 4; i++) {
		json_array_append_new(
		        rows,
		        json_pack("{s:s, s:I, s:o, s:o}", "step", steps[i],
		                  "customers", (json_int_t)n[i],
		                  "rate_from_previous",
		                  i == 0 ? json_null()
		                         : reporting_ratio(n[i], n[i - 1]),
		                  "rate_from_first",
		                  reporting_ratio(n[i], n[0])));
	}
	*out = reporting_envelope("funnel", a, true, rows, NULL);
	return (POND_OK);
}

/* --- fission
 * -------------------------------------------------------------------- */

/* From the day cells of 0011_reporting_repeat.sql when they answer
 * (REPORTING_CELLS_CTE): the period's 'share' cells (of campaign $6, or
 * all); inviters = shares - 'share_again' rows of each day d with k <= d -
 * d1 (the customer's previous share of the campaign, or of any, is in
 * the period), read by a lateral per day (OFFSET 0: not flattened into
 * a scan of every day's rows); and the period's 'invitee'
 * cells, [campaign, inviter] as JSON, summed per inviter. Else the
 * period's shares and new customers from the facts. $4 is NULL (no
 * channel), $7 invitees_needed. */
/* clang-format off */
static const char fission_sql[] =
	"WITH " REPORTING_CELLS_CTE("$5") ", "
	"sh AS (SELECT customer_key FROM rpt_invites WHERE NOT (SELECT fresh"
	" FROM h) AND occurred_at >= $1 AND occurred_at < $2 AND occurred_at"
	" < $3 AND ($6::text IS NULL OR campaign_id = $6)), "
	"inv AS (SELECT inviter_key FROM rpt_customers WHERE NOT (SELECT"
	" fresh FROM h) AND acquired_at >= $1 AND acquired_at < $2 AND"
	" acquired_at < $3 AND inviter_key IS NOT NULL AND ($6::text IS NULL"
	" OR campaign_id = $6)), "
	"shares AS (SELECT COALESCE(sum(n), 0) AS n FROM rpt_cells WHERE "
	REPORTING_CELLS_OF("share") " AND ($6::text IS NULL OR key = $6)), "
	"again AS (SELECT COALESCE(sum(x.n), 0) AS n FROM h,"
	" generate_series(0, h.d2 - h.d1 - 1) i, LATERAL (SELECT n FROM"
	" rpt_cells WHERE cell = 'share_again' AND day = h.d1 + i AND key ="
	" COALESCE($6, '') AND k <= i OFFSET 0) x WHERE h.fresh), "
	"per AS (SELECT inviter_key, count(*) AS n FROM inv GROUP BY 1"
	" UNION ALL SELECT key::jsonb ->> 1, sum(n) FROM rpt_cells WHERE "
	REPORTING_CELLS_OF("invitee") " AND ($6::text IS NULL OR"
	" key::jsonb ->> 0 = $6) GROUP BY 1 HAVING sum(n) <> 0) "
	"SELECT CASE WHEN (SELECT fresh FROM h) THEN (SELECT n FROM shares)"
	" ELSE (SELECT count(*) FROM sh) END, CASE WHEN (SELECT fresh FROM h)"
	" THEN (SELECT n FROM shares) - (SELECT n FROM again) ELSE (SELECT"
	" count(DISTINCT customer_key) FROM sh) END, (SELECT COALESCE(sum(n),"
	" 0) FROM per), (SELECT count(*) FROM per WHERE n >= $7), (SELECT"
	" COALESCE(json_agg(json_build_object('customer_key', inviter_key,"
	" 'invitees', n) ORDER BY n DESC, inviter_key COLLATE \"C\"), '[]')"
	" FROM (SELECT * FROM per ORDER BY n DESC, inviter_key COLLATE \"C\""
	" LIMIT 10) t)";
/* clang-format on */

int
reporting_fission(PGconn *conn, reporting *rp, const reporting_args *a,
                  json_t **out, reporting_error *err)
{
	reporting_period p;
	char needed[16];
	PGresult *res;
	int rv;

	(void)err;
	reporting_period_init(&p, a);
	snprintf(needed, sizeof(needed), "%d", a->invitees_needed);
	const char *params[] = {
	        p.v[0],         p.v[1], p.v[2], NULL, reporting_cells_zone(rp),
	        a->campaign_id, needed};
	if ((rv = pond_pq_query(conn, &res, fission_sql, 7, params)) != 0) {
		return (rv);
	}
	int64_t shared = reporting_int(res, 0, 0);
	int64_t inviters = reporting_int(res, 0, 1);
	int64_t invitees = reporting_int(res, 0, 2);
	json_t *top = json_loads(PQgetvalue(res, 0, 4), 0, NULL);
	json_t *total = json_pack(
	        "{s:I, s:I, s:I, s:I, s:o, s:o}", "invites_shared",
	        (json_int_t)shared, "inviters", (json_int_t)inviters,
	        "invitees_added", (json_int_t)invitees, "successful_inviters",
	        (json_int_t)reporting_int(res, 0, 3), "k_factor",
	        reporting_ratio(invitees, inviters), "top_inviters",
	        top != NULL ? top : json_array());
	PQclear(res);
	*out = reporting_envelope("fission", a, true, json_array(), total);
	return (POND_OK);
}

/* --- portrait
 * ------------------------------------------------------------------- */

/* The value(s) of customer p for each group_by at the time q.at: a
 * lateral subquery with a column "value" (no row, or a NULL, is "no
 * value"). */
#define LATEST_FACT(col)                                                      \
	"(SELECT f." col " AS value FROM rpt_profile_facts f WHERE "          \
	"f.partition = p.partition AND f.customer_key = p.customer_key AND "  \
	"f.has_" col " AND f.occurred_at < q.at ORDER BY f.occurred_at "      \
	"DESC, f.event_id DESC, f.publisher DESC LIMIT 1)"
#define TAGS_ON                                                               \
	"(SELECT tag AS value FROM (SELECT DISTINCT ON (tag) tag, added "     \
	"FROM "                                                               \
	"rpt_tag_changes t WHERE t.partition = p.partition AND "              \
	"t.customer_key = p.customer_key AND t.changed_at < q.at ORDER BY "   \
	"tag, changed_at DESC, seq DESC) x WHERE added)"

static const struct {
	const char *group_by, *lateral, *dim;
} portrait_values[] = {
        {"region", LATEST_FACT("region"), "region"},
        {"industry", LATEST_FACT("industry"), "industry"},
        {"channel", "(SELECT p.channel AS value WHERE p.acquired_at < q.at)",
         "channel"},
        {"lifecycle", "(SELECT rpt_stage_before(p, q.at) AS value)", "stage"},
        {"tag", TAGS_ON, "tag"},
};

/* The portrait: from the rollups when they are fresh at as_of ($1), else
 * from the history cells of 0014_reporting_history.sql (zone $4) without a
 * tag and for a group_by they keep (the cells '<dim>_at' before as_of's
 * hour, HISTORY_CELLS, and the customers changed in that hour from the
 * facts), else from the facts. Without a tag ($2), the rollup counts of dim
 * ($3) of 0007_reporting_rollups.sql; with one, or by tag, the counts of
 * rpt_rollup_tags (0013_reporting_tags.sql) under that tag ('' for none).
 * The customers without a value are the rest of the population: of those
 * counted under dim, or for tags of those with any tag on ('tagged'). The
 * lateral (%1$s) reads the value of customer p at q.at. */
/* clang-format off */
#define PORTRAIT_SQL							\
	"WITH " REPORTING_FRESH_CTE("$3::text") ", "			\
	REPORTING_HISTORY_CTE_IF("$4", "$3", "$2::text IS NULL AND $3 <> 'tag'")	\
	", "								\
	"pop AS (SELECT * FROM rpt_customers p WHERE first_event_at < $1 AND" \
	" ($2::text IS NULL OR (SELECT added FROM rpt_tag_changes t WHERE"  \
	" t.partition = p.partition AND t.customer_key = p.customer_key AND" \
	" t.tag = $2 AND t.changed_at < $1 ORDER BY changed_at DESC, seq"   \
	" DESC LIMIT 1)) AND NOT (SELECT fresh FROM h) AND NOT EXISTS"	\
	" (SELECT 1 FROM b)), "						\
	"slow AS (SELECT v.value, count(*) AS n FROM pop p CROSS JOIN (SELECT" \
	" $1::timestamptz AS at) q LEFT JOIN LATERAL %1$s v ON true GROUP BY" \
	" v.value), "							\
	"xv AS (SELECT v.value, q.n FROM x JOIN rpt_customers p USING"	\
	" (partition, customer_key) CROSS JOIN (SELECT $1::timestamptz AS at,"	\
	" 1 AS n UNION ALL SELECT m, -1 FROM b) q LEFT JOIN LATERAL %1$s v ON"	\
	" true WHERE rpt_stage_before(p, q.at) IS NOT NULL), "		\
	"hv(value, n) AS (" HISTORY_CELLS("($3 || '_at')") " UNION ALL SELECT value, n" \
	" FROM xv WHERE value IS NOT NULL), "				\
	"hp AS (SELECT COALESCE(sum(n), 0) AS n FROM (SELECT n FROM ("	\
	HISTORY_CELLS("'stage_at'") ") c UNION ALL SELECT n FROM xv) s), "	\
	"tg AS (SELECT dim, value, n FROM rpt_rollup_tags WHERE (SELECT"	\
	" fresh FROM h) AND ($2::text IS NOT NULL OR $3 = 'tag') AND tag ="	\
	" COALESCE($2, '') AND dim IN ($3, 'tagged')), "		\
	"fast AS (SELECT value, sum(n) AS n FROM rpt_rollup_counts WHERE dim" \
	" = $3 AND $2::text IS NULL AND $3 <> 'tag' AND (SELECT fresh FROM" \
	" h) GROUP BY value UNION ALL SELECT value, sum(n) FROM tg WHERE dim" \
	" = $3 GROUP BY value UNION ALL SELECT value, sum(n) FROM hv GROUP"	\
	" BY value), "							\
	"tagged AS (SELECT COALESCE(sum(n), 0) AS n FROM tg WHERE dim ="	\
	" 'tagged'), "							\
	"allc AS (SELECT CASE WHEN EXISTS (SELECT 1 FROM b) THEN (SELECT n"	\
	" FROM hp) WHEN NOT (SELECT fresh FROM h) THEN (SELECT count(*) FROM" \
	" pop) WHEN $2::text IS NULL THEN (SELECT COALESCE(sum(n), 0) FROM"	\
	" rpt_rollup_counts WHERE dim = 'stage') ELSE (SELECT n FROM tagged)" \
	" END AS n), "							\
	"r AS (SELECT value, n FROM slow UNION ALL SELECT value, n FROM fast" \
	" UNION ALL SELECT NULL, (SELECT n FROM allc) - CASE WHEN $3 = 'tag'" \
	" THEN (SELECT n FROM tagged) ELSE (SELECT COALESCE(sum(n), 0) FROM" \
	" fast) END WHERE (SELECT fresh FROM h) OR EXISTS (SELECT 1 FROM b)) " \
	"SELECT value, n AS cnt, (SELECT n FROM allc) AS total FROM r WHERE" \
	" n > 0 ORDER BY cnt DESC, value COLLATE \"C\" NULLS LAST"
/* clang-format on */

int
reporting_portrait(PGconn *conn, reporting *rp, const reporting_args *a,
                   json_t **out, reporting_error *err)
{
	const char *lateral = NULL, *dim = NULL;
	char as_of[40], *sql = NULL;
	PGresult *res;
	int rv;

	(void)err;
	for (size_t i = 0; i < 5; i++) {
		if (strcmp(portrait_values[i].group_by, a->group_by) == 0) {
			lateral = portrait_values[i].lateral;
			dim = portrait_values[i].dim;
		}
	}
	reporting_sql_time(a->as_of, as_of, sizeof(as_of));
	const char *params[] = {as_of, a->tag, dim, reporting_cells_zone(rp)};
	if (lateral == NULL || asprintf(&sql, PORTRAIT_SQL, lateral) < 0) {
		return (POND_ENOMEM);
	}
	rv = pond_pq_query(conn, &res, sql, 4, params);
	free(sql);
	if (rv != 0) {
		return (rv);
	}
	int64_t all = PQntuples(res) > 0 ? reporting_int(res, 0, 2) : 0;
	json_t *rows = json_array();
	for (int r = 0; r < PQntuples(res); r++) {
		int64_t n = reporting_int(res, r, 1);
		json_array_append_new(
		        rows,
		        json_pack("{s:o, s:I, s:o}", "value",
		                  PQgetisnull(res, r, 0)
		                          ? json_null()
		                          : json_string(PQgetvalue(res, r, 0)),
		                  "customers", (json_int_t)n, "share",
		                  reporting_ratio(n, all)));
	}
	PQclear(res);
	json_t *total =
	        json_pack("{s:s, s:o, s:I}", "group_by", a->group_by, "tag",
	                  a->tag != NULL ? json_string(a->tag) : json_null(),
	                  "customers", (json_int_t)all);
	*out = reporting_envelope("portrait", a, false, rows, total);
	return (POND_OK);
}
