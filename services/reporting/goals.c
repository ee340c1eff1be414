/*
 * goals.c - SMART goals (API.md sections 4 and 6): at most three, each a
 * single figure of a report, a target and a deadline. The figure is
 * measured by the report code itself (reporting_run), so a goal and the
 * report it names can never disagree -- the PDCA loop in one place.
 *
 *   PUT /v1/goals/ID  {"metric": "repurchase.repurchase_rate",
 *                      "params": {"channel": "cards"},
 *                      "baseline_from": ..., "baseline_to": ...,
 *                      "from": ... (default: now), "deadline": ...,
 *                      "target": 0.3 | "target_change": 0.1}
 *
 * metric is REPORT.FIELD; FIELD is looked up in the reply's total, else
 * in the row the params select (channel, step, stage, value, kind, id;
 * the "all" row when no channel is given); a dotted tail walks into the
 * row ("ltv.ltv_fen.30", "retention.retained.0"). target_change is a
 * relative change of the baseline (-0.2: 20 % below it).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "reporting.h"

/* goal_row picks the row of rows the params select. */
static json_t *
goal_row(json_t *rows, json_t *params)
{
	static const char *const keys[] = {"channel", "step", "stage",
	                                   "value",   "kind", NULL};
	const char *id = json_string_value(json_object_get(params, "id"));
	size_t i;
	json_t *row;

	json_array_foreach(rows, i, row)
	{
		bool match = true;
		for (size_t k = 0; keys[k] != NULL; k++) {
			const char *want = json_string_value(
			        json_object_get(params, keys[k]));
			json_t *have = json_object_get(row, keys[k]);
			if (want == NULL && strcmp(keys[k], "channel") == 0 &&
			    have != NULL) {
				want = "all";
			}
			if (want != NULL && have != NULL &&
			    (!json_is_string(have) ||
			     strcmp(json_string_value(have), want) != 0)) {
				match = false;
			}
		}
		if (id != NULL) {
			const char *g = json_string_value(
			        json_object_get(row, "guide_id"));
			const char *s = json_string_value(
			        json_object_get(row, "store_id"));
			match = match && ((g != NULL && strcmp(g, id) == 0) ||
			                  (s != NULL && strcmp(s, id) == 0));
		}
		if (match) {
			return (row);
		}
	}
	return (NULL);
}

/* goal_walk follows a dotted path (object keys, array indexes). */
static json_t *
goal_walk(json_t *v, const char *path)
{
	char buf[128], *save = NULL;

	if (strlen(path) >= sizeof(buf)) {
		return (NULL);
	}
	strcpy(buf, path);
	for (char *t = strtok_r(buf, ".", &save); v != NULL && t != NULL;
	     t = strtok_r(NULL, ".", &save)) {
		v = json_is_array(v) ? json_array_get(v, strtoul(t, NULL, 10))
		                     : json_object_get(v, t);
	}
	return (v);
}

/* goal_measure runs the goal's report over [from, to) and sets *value
 * (*has false for a null figure). POND_EINVAL with err for a metric
 * that names no single figure. */
static int
goal_measure(PGconn *conn, reporting *rp, json_t *goal, pond_time from,
             pond_time to, double *value, bool *has, reporting_error *err)
{
	const char *metric =
	        json_string_value(json_object_get(goal, "metric"));
	json_t *params = json_object_get(goal, "params");
	char report[32], fbuf[40], tbuf[40], nums[16][32];
	reporting_kv kv[18];
	size_t n = 0, nn = 0;
	const char *key, *dot;
	json_t *v, *reply = NULL;
	int rv;

	if (metric == NULL || (dot = strchr(metric, '.')) == NULL ||
	    (size_t)(dot - metric) >= sizeof(report)) {
		return (reporting_fail(err, 400, "bad_goal",
		                       "metric: REPORT.FIELD, e.g. "
		                       "repurchase.repurchase_rate"));
	}
	memcpy(report, metric, (size_t)(dot - metric));
	report[dot - metric] = '\0';
	reporting_sql_time(from, fbuf, sizeof(fbuf));
	reporting_sql_time(to, tbuf, sizeof(tbuf));
	kv[n++] = (reporting_kv){"from", fbuf};
	kv[n++] = (reporting_kv){"to", tbuf};
	json_object_foreach(params, key, v)
	{
		if (n == 18 || nn == 16) {
			break;
		}
		if (json_is_string(v)) {
			kv[n++] = (reporting_kv){key, json_string_value(v)};
		} else if (json_is_number(v)) {
			snprintf(nums[nn], sizeof(nums[nn]), "%.15g",
			         json_number_value(v));
			kv[n++] = (reporting_kv){key, nums[nn++]};
		}
	}
	if ((rv = reporting_run(conn, rp, report, kv, n, &reply, err)) != 0) {
		return (rv);
	}
	json_t *total = json_object_get(reply, "total");
	json_t *fig = goal_walk(total, dot + 1);
	if (fig == NULL) {
		fig = goal_walk(
		        goal_row(json_object_get(reply, "rows"), params),
		        dot + 1);
	}
	if (fig == NULL || !(json_is_number(fig) || json_is_null(fig))) {
		json_decref(reply);
		return (reporting_fail(err, 400, "bad_goal",
		                       "metric: \"%.64s\" is not a single "
		                       "figure of the %s report with these "
		                       "params",
		                       metric, report));
	}
	*has = json_is_number(fig);
	*value = *has ? json_number_value(fig) : 0;
	json_decref(reply);
	return (POND_OK);
}

static int
goal_time(json_t *goal, const char *name, pond_time *t, reporting_error *err)
{
	const char *s = json_string_value(json_object_get(goal, name));

	if (s == NULL || reporting_parse_time(s, t) != 0) {
		return (reporting_fail(err, 400, "bad_goal",
		                       "%s: RFC 3339 or YYYY-MM-DD required",
		                       name));
	}
	return (POND_OK);
}

/* goal_view is the stored goal with its measurements added. */
static int
goal_view(PGconn *conn, reporting *rp, const char *id, json_t *goal,
          json_t **out, reporting_error *err)
{
	pond_time bf, bt, from, deadline, now = pond_now();
	double base, cur, target;
	bool has_base, has_cur = false;
	int rv;

	if ((rv = goal_time(goal, "baseline_from", &bf, err)) != 0 ||
	    (rv = goal_time(goal, "baseline_to", &bt, err)) != 0 ||
	    (rv = goal_time(goal, "from", &from, err)) != 0 ||
	    (rv = goal_time(goal, "deadline", &deadline, err)) != 0) {
		return (rv);
	}
	if (bf >= bt || from >= deadline) {
		return (reporting_fail(
		        err, 400, "bad_goal",
		        "baseline_from < baseline_to and from < "
		        "deadline are required"));
	}
	pond_time end = now < deadline ? now : deadline;
	if ((rv = goal_measure(conn, rp, goal, bf, bt, &base, &has_base,
	                       err)) != 0 ||
	    (end > from && (rv = goal_measure(conn, rp, goal, from, end, &cur,
	                                      &has_cur, err)) != 0)) {
		return (rv);
	}
	json_t *tv = json_object_get(goal, "target");
	json_t *tc = json_object_get(goal, "target_change");
	bool has_target =
	        json_is_number(tv) || (json_is_number(tc) && has_base);
	target = json_is_number(tv)
	                 ? json_number_value(tv)
	                 : base * (1 + (json_is_number(tc)
	                                        ? json_number_value(tc)
	                                        : 0));
	double share =
	        end <= from ? 0
	                    : (double)(end - from) / (double)(deadline - from);
	json_t *progress = json_null();
	bool on_track = false;
	if (has_cur && has_base && has_target && target != base) {
		double p = (cur - base) / (target - base);
		p = p < 0 ? 0 : p > 1 ? 1 : p;
		progress = json_real(p);
		on_track = p >= share;
	}
	*out = json_deep_copy(goal);
	json_object_set_new(*out, "id", json_string(id));
	json_object_set_new(*out, "target_value",
	                    has_target ? json_real(target) : json_null());
	json_object_set_new(*out, "baseline",
	                    has_base ? json_real(base) : json_null());
	json_object_set_new(*out, "current",
	                    has_cur ? json_real(cur) : json_null());
	json_object_set_new(*out, "progress", progress);
	json_object_set_new(*out, "time_elapsed", json_real(share));
	json_object_set_new(*out, "on_track", json_boolean(on_track));
	return (POND_OK);
}

int
reporting_goals_list(PGconn *conn, reporting *rp, json_t **out,
                     reporting_error *err)
{
	PGresult *res;
	json_t *goals = json_array();
	int rv;

	if ((rv = pond_pq_query(conn, &res,
	                        "SELECT id, goal::text FROM rpt_goals ORDER "
	                        "BY id",
	                        0, NULL)) != 0) {
		json_decref(goals);
		return (rv);
	}
	for (int r = 0; r < PQntuples(res); r++) {
		json_t *goal = json_loads(PQgetvalue(res, r, 1), 0, NULL);
		json_t *view = NULL;
		rv = goal != NULL ? goal_view(conn, rp, PQgetvalue(res, r, 0),
		                              goal, &view, err)
		                  : POND_EINVAL;
		json_decref(goal);
		if (rv != 0) {
			PQclear(res);
			json_decref(goals);
			return (rv);
		}
		json_array_append_new(goals, view);
	}
	PQclear(res);
	*out = json_pack("{s:o}", "goals", goals);
	return (POND_OK);
}

int
reporting_goal_put(PGconn *conn, reporting *rp, const char *id,
                   const char *body, json_t **out, reporting_error *err)
{
	json_error_t jerr;
	json_t *goal = json_loads(body, 0, &jerr), *view = NULL;
	char now[40], *text = NULL;
	PGresult *res = NULL;
	int rv;

	if (strlen(id) > 64) {
		rv = reporting_fail(err, 400, "bad_goal",
		                    "a goal id is at most 64 bytes");
		goto out;
	}
	if (!json_is_object(goal)) {
		rv = reporting_fail(err, 400, "bad_goal",
		                    "the body is not a JSON object (line %d: "
		                    "%s)",
		                    jerr.line, jerr.text);
		goto out;
	}
	if (json_object_get(goal, "params") == NULL) {
		json_object_set_new(goal, "params", json_object());
	}
	if (!json_is_object(json_object_get(goal, "params")) ||
	    (json_object_get(goal, "target") == NULL) ==
	            (json_object_get(goal, "target_change") == NULL)) {
		rv = reporting_fail(
		        err, 400, "bad_goal",
		        "params must be an object, and exactly one "
		        "of target and target_change given");
		goto out;
	}
	if (json_object_get(goal, "from") == NULL) {
		reporting_sql_time(pond_now(), now, sizeof(now));
		json_object_set_new(goal, "from", json_string(now));
	}
	/* Measuring once checks the metric, params and times. */
	if ((rv = goal_view(conn, rp, id, goal, &view, err)) != 0 ||
	    (text = json_dumps(goal, JSON_COMPACT)) == NULL) {
		rv = rv != 0 ? rv : POND_ENOMEM;
		goto out;
	}
	const char *params[] = {id, text};
	/* The count and the insert in one statement, under a lock, so two
	 * PUTs cannot both become the fourth goal. */
	if ((rv = pond_pq_exec(conn, "BEGIN")) != 0 ||
	    (rv = pond_pq_exec(
	             conn, "LOCK TABLE rpt_goals IN EXCLUSIVE MODE")) != 0 ||
	    (rv = pond_pq_query(
	             conn, &res,
	             "INSERT INTO rpt_goals (id, goal) SELECT $1, $2::jsonb "
	             "WHERE EXISTS (SELECT 1 FROM rpt_goals WHERE id = $1) OR "
	             "(SELECT count(*) FROM rpt_goals) < 3 ON CONFLICT (id) "
	             "DO "
	             "UPDATE SET goal = EXCLUDED.goal RETURNING id",
	             2, params)) != 0 ||
	    (rv = pond_pq_exec(conn, "COMMIT")) != 0) {
		pond_pq_rollback(conn);
		goto out;
	}
	if (PQntuples(res) == 0) {
		rv = reporting_fail(err, 409, "too_many_goals",
		                    "at most %d goals; delete one first",
		                    REPORTING_MAX_GOALS);
		goto out;
	}
	*out = view;
	view = NULL;
out:
	PQclear(res);
	free(text);
	json_decref(view);
	json_decref(goal);
	return (rv);
}

int
reporting_goal_delete(PGconn *conn, reporting *rp, const char *id,
                      json_t **out, reporting_error *err)
{
	const char *params[] = {id};
	PGresult *res;
	int rv;

	(void)rp;
	if ((rv = pond_pq_query(conn, &res,
	                        "DELETE FROM rpt_goals WHERE id = $1 "
	                        "RETURNING id",
	                        1, params)) != 0) {
		return (rv);
	}
	int n = PQntuples(res);
	PQclear(res);
	if (n == 0) {
		return (reporting_fail(err, 404, "not_found",
		                       "no goal \"%.64s\"", id));
	}
	*out = json_pack("{s:s, s:b}", "id", id, "deleted", 1);
	return (POND_OK);
}
