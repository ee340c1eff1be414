/*
 * reporting.h - the reporting service's own structs.
 *
 * pond-reporting consumes the three streams (events, tag_changes, touches)
 * into per-customer fact tables of its own (deploy/migrations/
 * 0004_reporting.sql) and answers every report of API.md section 4 from
 * them, over HTTP (port 8403) and NNG REQ/REP (7403).
 *
 *   apply.c      the three streams -> rpt_* fact tables
 *   params.c     report parameters: times, lists, decimals, with reasons
 *   money.c      acquisition, ltv, payback, repurchase, guides
 *   cohorts.c    lifecycle, retention, funnel, fission, portrait
 *   campaigns.c  campaign reach, conversions, ROI and lift
 *   goals.c      SMART goals: stored, and measured by the report code
 *   customer.c   GET /v1/customers/KEY
 *   reporting.c  the service: consumers, dispatch, HTTP, NNG, metrics
 */
#ifndef POND_REPORTING_H
#define POND_REPORTING_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "bus.h"
#include "clock.h"
#include "consumer.h"
#include "err.h"
#include "metrics.h"
#include "service.h"

/* REPORTING_MAX_DAYS bounds the days list of ltv. */
#define REPORTING_MAX_DAYS 16

/* REPORTING_MAX_TIERS bounds POND_COMMISSION_TIERS. */
#define REPORTING_MAX_TIERS 16

/* reporting_decimal is an exact decimal: num / 10^scale. */
typedef struct reporting_decimal {
	int64_t num;
	int scale;
} reporting_decimal;

/* reporting_tier is one commission tier: from threshold_fen on, rate. */
typedef struct reporting_tier {
	int64_t threshold_fen;
	reporting_decimal rate;
	char rate_text[32];
} reporting_tier;

typedef struct reporting_config {
	char *events_sub_urls;
	char *tag_changes_sub_urls;
	char *touches_sub_urls;
	char *nng_url;
	char *commission_tiers;
	char *reads_dsn; /* POND_REPORTING_DSN: "" reads where it writes */
	int64_t attribution_h;
	int64_t batch;
	int64_t fold_ms; /* POND_CELLS_FOLD_MS: 0 never folds */
} reporting_config;

typedef struct reporting_counters {
	pond_counter facts;       /* stream records applied */
	pond_counter bad_records; /* records that did not decode */
	pond_counter requests;    /* reports answered (HTTP and NNG) */
	pond_counter bad_requests;
	pond_counter folded; /* day cells folded into partition -1 */
} reporting_counters;

typedef struct reporting {
	reporting_config conf;
	pond_service *svc;
	const char *tz;
	uint32_t nparts;
	reporting_tier tiers[REPORTING_MAX_TIERS];
	size_t ntiers;
	pond_consumer *consumers[3];
	int consumers_running;
	pond_rep *rep;
	pond_db *reads; /* POND_REPORTING_DSN's pool; NULL: svc->db */
	int requests;   /* in flight, HTTP and NNG */
	bool stopping;
	/* cells_ready: the day cells (0008_reporting_cells.sql) are kept in
	 * POND_TZ; set on the loop once the start-up check (and rebuild, if
	 * the zone differed) succeeded, read by the requests' pool threads. */
	atomic_bool cells_ready;
	bool cells_checking;     /* a check is queued or running (loop) */
	uint64_t cells_retry_at; /* uv_now() after which a failed check is
	                          * tried again, on the next request */
	uv_timer_t fold_timer;   /* fold.c: POND_CELLS_FOLD_MS */
	bool fold_timer_on;
	bool folding;       /* a fold is queued or running (loop) */
	uint64_t fold_rows; /* the last fold's rows (its job, then loop) */
	reporting_counters counters;
} reporting;

/* --- parameters (params.c) -------------------------------------------- */

/* reporting_kv is one request parameter (a query argument, or a map entry
 * of an NNG ReportRequest). */
typedef struct reporting_kv {
	const char *key;
	const char *value;
} reporting_kv;

/* REPORTING_PARAM_NAMES lists every parameter a report reads. */
extern const char *const reporting_param_names[];

/* reporting_args are a report's parsed parameters. */
typedef struct reporting_args {
	pond_time from, to, as_of;
	bool has_from, has_to;
	const char *channel; /* NULL: every channel */
	int days[REPORTING_MAX_DAYS];
	size_t ndays;
	reporting_decimal margin;
	int weeks;
	int window_days;
	int invitees_needed;
	const char *campaign_id; /* NULL: any */
	const char *group_by;
	const char *tag;  /* NULL: every customer */
	const char *step; /* goals: the funnel step of a figure */
	const char *kind; /* goals: guide rows, "guide" or "store" */
	const char *id;   /* goals: the guide or store id */
} reporting_args;

/* reporting_error is why a request failed: an HTTP status, a code and a
 * message for {"error": {...}}. */
typedef struct reporting_error {
	unsigned status;
	const char *code;
	char message[256];
} reporting_error;

/* reporting_fail fills err and returns POND_EINVAL. */
int reporting_fail(reporting_error *err, unsigned status, const char *code,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* reporting_kv_get returns the value of key in kv, or NULL. */
const char *reporting_kv_get(const reporting_kv *kv, size_t n,
                             const char *key);

/* reporting_parse_time parses RFC 3339 or YYYY-MM-DD (midnight in TZ). */
int reporting_parse_time(const char *s, pond_time *t) POND_MUSTCHECK;

/* reporting_parse_decimal parses a non-negative decimal like "0.05". */
int reporting_parse_decimal(const char *s,
                            reporting_decimal *d) POND_MUSTCHECK;

/* reporting_parse_args parses kv for report (which parameters it needs
 * and their defaults); on bad input it fills err (400). */
int reporting_parse_args(const char *report, const reporting_kv *kv, size_t n,
                         pond_time now, reporting_args *a,
                         reporting_error *err) POND_MUSTCHECK;

/* reporting_tiers_parse parses "FEN:RATE,..." (ascending thresholds). */
int reporting_tiers_parse(const char *s, reporting_tier *tiers, size_t *n,
                          const char **why) POND_MUSTCHECK;

/* --- replies ---------------------------------------------------------- */

/* reporting_ratio returns num / den as a JSON double, null when den is 0. */
json_t *reporting_ratio(int64_t num, int64_t den);

/* reporting_time_json returns t as RFC 3339 (UTC). */
json_t *reporting_time_json(pond_time t);

/* reporting_envelope returns {"report", "from", "to", "as_of", "rows",
 * "total"}; rows and total are taken over (total may be json_null()). */
json_t *reporting_envelope(const char *report, const reporting_args *a,
                           bool period, json_t *rows, json_t *total);

/* reporting_sql_time writes t as RFC 3339 for a timestamptz parameter. */
void reporting_sql_time(pond_time t, char *buf, size_t len);

/* reporting_int returns column c of row r as an integer (0 for NULL). */
int64_t reporting_int(const PGresult *res, int r, int c);

/* REPORTING_COHORT_CTE_IF(COND) is the period's cohort, the customers
 * acquired in it: $1 from, $2 to, $3 as_of, $4 channel (NULL: any); none
 * unless COND (a one-time filter: the fact branch of a query that has a
 * rollup branch too). */
#define REPORTING_COHORT_CTE_IF(COND)                                         \
	"c AS (SELECT partition, customer_key, acquired_at, "                 \
	"COALESCE(channel, '') AS channel FROM rpt_customers "                \
	"WHERE acquired_at >= $1 AND acquired_at < $2 AND acquired_at < $3 "  \
	"AND ($4::text IS NULL OR channel = $4) AND " COND ")"

/* REPORTING_COHORT_CTE is the period's cohort (always). */
#define REPORTING_COHORT_CTE REPORTING_COHORT_CTE_IF("true")

/* REPORTING_FRESH_CTE(DIM) is h(fresh): whether the rollups of
 * 0007_reporting_rollups.sql are the exact answer at as_of $1 (every fact
 * time they count is before it) for the rollup dimension DIM (a SQL text
 * expression; NULL: no rollup). Used as a one-time filter, "(SELECT fresh
 * FROM h)", it runs either the rollup or the fact branch of a query. */
#define REPORTING_FRESH_CTE(DIM)                                              \
	"h AS (SELECT " DIM " IS NOT NULL AND COALESCE(max(latest) < $1, "    \
	"true) AS fresh FROM rpt_rollup_horizon)"

/* REPORTING_HISTORY_CTE(TZ, DIM), after REPORTING_FRESH_CTE, is
 * b(d, y, mo, m, hr): one row when the history cells of
 * 0014_reporting_history.sql answer at as_of $1 -- the rollups do not (h),
 * and the cells are kept in zone TZ (a parameter, NULL when the service
 * has not checked the cells' zone) -- with d, as_of's local day, y and
 * mo, the first days of its year and month, hr, the whole hours from its
 * midnight to as_of, and m, the start of that hour; and x, the customers
 * whose value of DIM ('stage', 'region', 'industry' or 'channel': a SQL
 * text expression) or whose presence (the first event) changed in
 * [m, as_of), by index: their values at as_of less their values at m
 * complete the cells (HISTORY_CELLS). */
/* clang-format off */
#define REPORTING_HISTORY_CTE(TZ, DIM) REPORTING_HISTORY_CTE_IF(TZ, DIM, "true")
/* REPORTING_HISTORY_CTE_IF(TZ, DIM, COND) is the same, when COND holds too. */
#define REPORTING_HISTORY_CTE_IF(TZ, DIM, COND)				\
	"b0 AS (SELECT ($1::timestamptz AT TIME ZONE " TZ ")::date AS d,"	\
	" (($1::timestamptz AT TIME ZONE " TZ ")::date::timestamp AT TIME"	\
	" ZONE " TZ ") AS md WHERE NOT (SELECT fresh FROM h) AND (SELECT tz"	\
	" FROM rpt_cells_zone) = " TZ "::text AND " COND "), "		\
	"b AS (SELECT d, date_trunc('year', d::timestamp)::date AS y,"	\
	" date_trunc('month', d::timestamp)::date AS mo, md + hr * interval"	\
	" '1 hour' AS m, hr FROM (SELECT d, md, floor(extract(epoch FROM"	\
	" $1::timestamptz - md) / 3600)::int AS hr FROM b0) s), "		\
	"x AS (SELECT DISTINCT y.partition, y.customer_key FROM b, LATERAL (" \
	HISTORY_CHANGED("first_event_at", "true") " UNION ALL "	\
	HISTORY_CHANGED("first_paid[1]", DIM " = 'stage'") " UNION ALL "	\
	HISTORY_CHANGED("first_paid[2]", DIM " = 'stage'") " UNION ALL "	\
	HISTORY_CHANGED("first_paid[3]", DIM " = 'stage'") " UNION ALL "	\
	HISTORY_CHANGED("member_at", DIM " = 'stage'") " UNION ALL "	\
	HISTORY_CHANGED("acquired_at", DIM " = 'channel'") " UNION ALL"	\
	" SELECT partition, customer_key FROM rpt_profile_facts WHERE"	\
	" occurred_at >= b.m AND occurred_at < $1 AND " DIM " IN ('region',"	\
	" 'industry')) y)"
/* HISTORY_CHANGED(COL, COND): the customers with COL in [m, as_of), when
 * COND (a one-time filter: the index is not read otherwise). */
#define HISTORY_CHANGED(COL, COND)					\
	"SELECT partition, customer_key FROM rpt_customers WHERE " COL	\
	" >= b.m AND " COL " < $1 AND " COND
/* HISTORY_CELLS(KIND) is (key, n): the history cells of kind KIND (a SQL
 * text expression) before as_of's hour (0015_reporting_history_calendar.sql)
 * -- the year cells of the years before its year, the month cells of its
 * year before its month, the day cells of its month before its day, and
 * the hour cells of its day before its hour. */
#define HISTORY_CELLS(KIND)						\
	"SELECT key, n FROM rpt_cells, b WHERE cell = " KIND " || '_y' AND"	\
	" day < b.y UNION ALL SELECT key, n FROM rpt_cells, b WHERE cell = "	\
	KIND " || '_m' AND day >= b.y AND day < b.mo UNION ALL SELECT key,"	\
	" n FROM rpt_cells, b WHERE cell = " KIND " AND day >= b.mo AND day"	\
	" < b.d UNION ALL SELECT key, n FROM rpt_cells, b WHERE cell = "	\
	KIND " || '_h' AND day = b.d AND k < b.hr"
/* clang-format on */

/* REPORTING_CELLS_CTE(TZ) is h(fresh, d1, d2): whether the day cells of
 * 0008_reporting_cells.sql answer the period $1 .. $2 at as_of $3 for
 * channel $4 in zone TZ (a parameter, NULL when the service has not
 * checked the cells' zone) -- the horizon is before as_of, the cells are
 * kept in that zone and both ends of the period are local midnights there
 * -- and the period's local days d1 <= day < d2. Used as a one-time
 * filter, "(SELECT fresh FROM h)", it runs either the cells' or the
 * facts' branch of a query. */
#define REPORTING_CELLS_CTE(TZ)                                               \
	"h AS (SELECT COALESCE(max(latest) < $3, true) AND COALESCE("         \
	"(SELECT tz FROM rpt_cells_zone) = " TZ "::text AND ($4::text IS "    \
	"NULL OR $4 <> '') AND (($1::timestamptz AT TIME ZONE " TZ            \
	")::date::timestamp AT TIME ZONE " TZ ") = $1 AND (($2::timestamptz " \
	"AT TIME ZONE " TZ ")::date::timestamp AT TIME ZONE " TZ ") = $2, "   \
	"false) AS fresh, ($1::timestamptz AT TIME ZONE " TZ ")::date AS "    \
	"d1, ($2::timestamptz AT TIME ZONE " TZ ")::date AS d2 "              \
	"FROM rpt_rollup_horizon)"

/* REPORTING_CELLS_COHORT_CTE(TZ) is h, and the period's cohort c when
 * the cells do not answer. */
#define REPORTING_CELLS_COHORT_CTE(TZ)                                        \
	REPORTING_CELLS_CTE(TZ)                                               \
	", " REPORTING_COHORT_CTE_IF("NOT (SELECT fresh FROM h)")

/* REPORTING_CELLS_OF(CELL) is the condition on rpt_cells of the period's
 * cells of kind CELL, when the cells answer. */
#define REPORTING_CELLS_OF(CELL)                                              \
	"(SELECT fresh FROM h) AND cell = '" CELL "' AND day >= (SELECT d1 "  \
	"FROM h) AND day < (SELECT d2 FROM h)"

/* reporting_cells_zone returns the day cells' zone parameter: POND_TZ
 * once the start-up check has made the cells the zone's, else NULL. */
const char *reporting_cells_zone(reporting *rp);

/* NET_AMOUNT is an rpt_orders row o's effect on net revenue. */
#define NET_AMOUNT "CASE WHEN o.paid THEN o.amount_fen ELSE -o.amount_fen END"

/* reporting_period is the text parameters of REPORTING_COHORT_CTE, and
 * v[4] for a report that uses it (money.c: the day cells' zone). */
typedef struct reporting_period {
	char from[40], to[40], as_of[40];
	const char *v[5];
} reporting_period;

/* reporting_period_init fills p from a. */
void reporting_period_init(reporting_period *p, const reporting_args *a);

/* --- the reports ------------------------------------------------------- */

/* reporting_report_fn answers one report from the fact tables; *out is
 * the whole reply object. POND_EINVAL with err filled for bad input. */
typedef int (*reporting_report_fn)(PGconn *conn, reporting *rp,
                                   const reporting_args *a, json_t **out,
                                   reporting_error *err);

int reporting_acquisition(PGconn *conn, reporting *rp, const reporting_args *a,
                          json_t **out, reporting_error *err) POND_MUSTCHECK;
int reporting_ltv(PGconn *conn, reporting *rp, const reporting_args *a,
                  json_t **out, reporting_error *err) POND_MUSTCHECK;
int reporting_payback(PGconn *conn, reporting *rp, const reporting_args *a,
                      json_t **out, reporting_error *err) POND_MUSTCHECK;
int reporting_repurchase(PGconn *conn, reporting *rp, const reporting_args *a,
                         json_t **out, reporting_error *err) POND_MUSTCHECK;
int reporting_guides(PGconn *conn, reporting *rp, const reporting_args *a,
                     json_t **out, reporting_error *err) POND_MUSTCHECK;
int reporting_lifecycle(PGconn *conn, reporting *rp, const reporting_args *a,
                        json_t **out, reporting_error *err) POND_MUSTCHECK;
int reporting_retention(PGconn *conn, reporting *rp, const reporting_args *a,
                        json_t **out, reporting_error *err) POND_MUSTCHECK;
int reporting_funnel(PGconn *conn, reporting *rp, const reporting_args *a,
                     json_t **out, reporting_error *err) POND_MUSTCHECK;
int reporting_fission(PGconn *conn, reporting *rp, const reporting_args *a,
                      json_t **out, reporting_error *err) POND_MUSTCHECK;
int reporting_portrait(PGconn *conn, reporting *rp, const reporting_args *a,
                       json_t **out, reporting_error *err) POND_MUSTCHECK;
int reporting_campaigns(PGconn *conn, reporting *rp, const reporting_args *a,
                        json_t **out, reporting_error *err) POND_MUSTCHECK;

/* reporting_cells_check submits the check of the day cells' zone and
 * attribution hours (at start, and again on a request a minute after a
 * check failed): rpt_cells_check(POND_TZ, POND_ATTRIBUTION_H) rebuilds
 * the cells when either differs, then cells_ready. A no-op while the
 * cells are ready or a check is under way. */
int reporting_cells_check(reporting *rp) POND_MUSTCHECK;

/* reporting_find returns the function of report name, or NULL. */
reporting_report_fn reporting_find(const char *name);

/* reporting_run parses kv and answers report name (e.g. "acquisition",
 * "campaigns/ID"); *out is the reply, or err says why not. */
int reporting_run(PGconn *conn, reporting *rp, const char *name,
                  const reporting_kv *kv, size_t n, json_t **out,
                  reporting_error *err) POND_MUSTCHECK;

/* --- goals (goals.c) and customers (customer.c) ------------------------ */

/* REPORTING_MAX_GOALS is the most goals there may be (API.md section 4). */
#define REPORTING_MAX_GOALS 3

int reporting_goals_list(PGconn *conn, reporting *rp, json_t **out,
                         reporting_error *err) POND_MUSTCHECK;
int reporting_goal_put(PGconn *conn, reporting *rp, const char *id,
                       const char *body, json_t **out,
                       reporting_error *err) POND_MUSTCHECK;
int reporting_goal_delete(PGconn *conn, reporting *rp, const char *id,
                          json_t **out, reporting_error *err) POND_MUSTCHECK;

int reporting_customer(PGconn *conn, reporting *rp, const char *key,
                       json_t **out, reporting_error *err) POND_MUSTCHECK;

/* --- the streams (apply.c) --------------------------------------------- */

int reporting_apply_events(PGconn *conn, const pond_record *recs, size_t n,
                           void *arg);
int reporting_apply_tag_changes(PGconn *conn, const pond_record *recs,
                                size_t n, void *arg);
int reporting_apply_touches(PGconn *conn, const pond_record *recs, size_t n,
                            void *arg);

/* --- the service (reporting.c) ------------------------------------------ */

int reporting_start(pond_service *svc);
void reporting_stop(pond_service *svc);
bool reporting_healthy(pond_service *svc, char *why, size_t len);

/* reporting_fold_start starts folding the day cells every
 * POND_CELLS_FOLD_MS (fold.c); reporting_fold_stop stops the timer (a fold
 * in flight counts as a request, so the stop waits for it). */
int reporting_fold_start(reporting *rp) POND_MUSTCHECK;
void reporting_fold_stop(reporting *rp);

/* reporting_maybe_stopped tells the framework once all has drained. */
void reporting_maybe_stopped(reporting *rp);

#endif
