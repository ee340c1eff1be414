/*
 * params.c - report parameters (API.md sections 4 and 6), each bad one
 * answered 400 with what was wrong, and the small helpers every report
 * uses to build its reply.
 *
 * Times are RFC 3339 or YYYY-MM-DD, midnight in POND_TZ (the service sets
 * TZ at start, so mktime converts in the business time zone). Periods are
 * half-open, from < to. as_of defaults to now.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reporting.h"

const char *const reporting_param_names[] = {
        "from",
        "to",
        "as_of",
        "channel",
        "days",
        "margin",
        "weeks",
        "window_days",
        "campaign_id",
        "tag",
        "invitees_needed",
        "group_by",
        "step",
        "kind",
        "id",
        NULL,
};

int
reporting_fail(reporting_error *err, unsigned status, const char *code,
               const char *fmt, ...)
{
	va_list ap;

	err->status = status;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return (POND_EINVAL);
}

const char *
reporting_kv_get(const reporting_kv *kv, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(kv[i].key, key) == 0) {
			return (kv[i].value);
		}
	}
	return (NULL);
}

int
reporting_parse_time(const char *s, pond_time *t)
{
	int y, m, d;
	char tail;

	if (strlen(s) == 10 &&
	    sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) == 3 &&
	    isdigit((unsigned char)s[0]) && s[4] == '-' && s[7] == '-') {
		struct tm tm = {.tm_year = y - 1900,
		                .tm_mon = m - 1,
		                .tm_mday = d,
		                .tm_isdst = -1};
		time_t secs;
		if (y < 1970 || m < 1 || m > 12 || d < 1 || d > 31 ||
		    (secs = mktime(&tm)) == (time_t)-1 || tm.tm_mday != d ||
		    tm.tm_mon != m - 1) {
			return (POND_EINVAL);
		}
		*t = (pond_time)secs * POND_USEC_PER_SEC;
		return (POND_OK);
	}
	return (pond_time_parse_rfc3339(s, t));
}

int
reporting_parse_decimal(const char *s, reporting_decimal *d)
{
	int64_t num = 0;
	int scale = 0, digits = 0;
	bool point = false;

	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '.' && !point) {
			point = true;
			continue;
		}
		if (!isdigit((unsigned char)*p) || digits >= 15) {
			return (POND_EINVAL);
		}
		num = num * 10 + (*p - '0');
		digits++;
		scale += point ? 1 : 0;
	}
	if (digits == 0) {
		return (POND_EINVAL);
	}
	d->num = num;
	d->scale = scale;
	return (POND_OK);
}

/* parse_int parses a whole number in [min, max]. */
static int
parse_int(const char *s, long min, long max, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
		return (POND_EINVAL);
	}
	*out = (int)v;
	return (POND_OK);
}

static int
parse_days(const char *s, reporting_args *a, reporting_error *err)
{
	char buf[256], *save = NULL;

	if (strlen(s) >= sizeof(buf)) {
		return (reporting_fail(err, 400, "bad_parameter",
		                       "days: too long"));
	}
	strcpy(buf, s);
	a->ndays = 0;
	for (char *tok = strtok_r(buf, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		if (a->ndays == REPORTING_MAX_DAYS) {
			return (reporting_fail(err, 400, "bad_parameter",
			                       "days: at most %d values",
			                       REPORTING_MAX_DAYS));
		}
		if (parse_int(tok, 1, 3650, &a->days[a->ndays]) != 0) {
			return (reporting_fail(
			        err, 400, "bad_parameter",
			        "days: \"%s\" is not a whole number of days "
			        "from 1 to 3650",
			        tok));
		}
		a->ndays++;
	}
	if (a->ndays == 0) {
		return (reporting_fail(err, 400, "bad_parameter",
		                       "days: empty list"));
	}
	return (POND_OK);
}

static int
arg_time(const reporting_kv *kv, size_t n, const char *name, pond_time *t,
         bool *has, reporting_error *err)
{
	const char *v = reporting_kv_get(kv, n, name);

	*has = false;
	if (v == NULL) {
		return (POND_OK);
	}
	if (reporting_parse_time(v, t) != 0) {
		return (reporting_fail(err, 400, "bad_parameter",
		                       "%s: \"%.64s\" is not RFC 3339 or "
		                       "YYYY-MM-DD",
		                       name, v));
	}
	*has = true;
	return (POND_OK);
}

static int
arg_int(const reporting_kv *kv, size_t n, const char *name, long min, long max,
        int *out, reporting_error *err)
{
	const char *v = reporting_kv_get(kv, n, name);

	if (v != NULL && parse_int(v, min, max, out) != 0) {
		return (reporting_fail(err, 400, "bad_parameter",
		                       "%s: \"%.64s\" is not a whole number "
		                       "from %ld to %ld",
		                       name, v, min, max));
	}
	return (POND_OK);
}

/* arg_str takes a non-empty string parameter, or leaves *out NULL. */
static int
arg_str(const reporting_kv *kv, size_t n, const char *name, const char **out,
        reporting_error *err)
{
	const char *v = reporting_kv_get(kv, n, name);

	if (v != NULL && (*v == '\0' || strlen(v) > 256)) {
		return (reporting_fail(err, 400, "bad_parameter",
		                       "%s: must be 1 to 256 bytes", name));
	}
	*out = v;
	return (POND_OK);
}

/* report_takes_period says whether report needs from and to. */
static bool
report_takes_period(const char *report)
{
	return (strcmp(report, "lifecycle") != 0 &&
	        strcmp(report, "portrait") != 0);
}

int
reporting_parse_args(const char *report, const reporting_kv *kv, size_t n,
                     pond_time now, reporting_args *a, reporting_error *err)
{
	static const char *const group_bys[] = {
	        "region", "industry", "channel", "lifecycle", "tag", NULL};
	const char *margin = reporting_kv_get(kv, n, "margin");
	const char *days = reporting_kv_get(kv, n, "days");
	bool has_as_of;
	int rv;

	*a = (reporting_args){
	        .margin = {1, 0},
	        .weeks = 8,
	        .window_days = 30,
	        .invitees_needed = 3,
	        .group_by = "region",
	        .days = {30, 60, 90},
	        .ndays = 3,
	};
	if ((rv = arg_time(kv, n, "from", &a->from, &a->has_from, err)) != 0 ||
	    (rv = arg_time(kv, n, "to", &a->to, &a->has_to, err)) != 0 ||
	    (rv = arg_time(kv, n, "as_of", &a->as_of, &has_as_of, err)) != 0 ||
	    (rv = arg_int(kv, n, "weeks", 1, 104, &a->weeks, err)) != 0 ||
	    (rv = arg_int(kv, n, "window_days", 1, 3650, &a->window_days,
	                  err)) != 0 ||
	    (rv = arg_int(kv, n, "invitees_needed", 1, 1000000,
	                  &a->invitees_needed, err)) != 0 ||
	    (rv = arg_str(kv, n, "channel", &a->channel, err)) != 0 ||
	    (rv = arg_str(kv, n, "campaign_id", &a->campaign_id, err)) != 0 ||
	    (rv = arg_str(kv, n, "tag", &a->tag, err)) != 0 ||
	    (rv = arg_str(kv, n, "step", &a->step, err)) != 0 ||
	    (rv = arg_str(kv, n, "kind", &a->kind, err)) != 0 ||
	    (rv = arg_str(kv, n, "id", &a->id, err)) != 0 ||
	    (days != NULL && (rv = parse_days(days, a, err)) != 0)) {
		return (rv);
	}
	if (!has_as_of) {
		a->as_of = now;
	}
	if (margin != NULL &&
	    (reporting_parse_decimal(margin, &a->margin) != 0 ||
	     a->margin.num == 0)) {
		return (reporting_fail(err, 400, "bad_parameter",
		                       "margin: \"%.64s\" is not a positive "
		                       "decimal like 0.4",
		                       margin));
	}
	const char *gb = reporting_kv_get(kv, n, "group_by");
	if (gb != NULL) {
		size_t i = 0;
		while (group_bys[i] != NULL && strcmp(group_bys[i], gb) != 0) {
			i++;
		}
		if (group_bys[i] == NULL) {
			return (reporting_fail(
			        err, 400, "bad_parameter",
			        "group_by: \"%.64s\" is not one of region, "
			        "industry, channel, lifecycle, tag",
			        gb));
		}
		a->group_by = group_bys[i];
	}
	if (!report_takes_period(report)) {
		return (POND_OK);
	}
	if (!a->has_from || !a->has_to) {
		return (reporting_fail(err, 400, "bad_parameter",
		                       "%s: required (RFC 3339 or YYYY-MM-DD)",
		                       a->has_from ? "to" : "from"));
	}
	if (a->from >= a->to) {
		return (reporting_fail(err, 400, "bad_parameter",
		                       "from must be before to (the period is "
		                       "from <= t < to)"));
	}
	return (POND_OK);
}

int
reporting_tiers_parse(const char *s, reporting_tier *tiers, size_t *n,
                      const char **why)
{
	char buf[512], *save = NULL;

	*n = 0;
	if (strlen(s) >= sizeof(buf)) {
		*why = "too long";
		return (POND_EINVAL);
	}
	strcpy(buf, s);
	for (char *tok = strtok_r(buf, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':'), *end;
		reporting_tier *t = &tiers[*n];
		if (*n == REPORTING_MAX_TIERS || colon == NULL) {
			*why = *n == REPORTING_MAX_TIERS
			               ? "too many tiers"
			               : "a tier is THRESHOLD_FEN:RATE";
			return (POND_EINVAL);
		}
		*colon = '\0';
		errno = 0;
		t->threshold_fen = strtoll(tok, &end, 10);
		if (*tok == '\0' || *end != '\0' || errno != 0 ||
		    t->threshold_fen < 0 ||
		    (*n > 0 &&
		     t->threshold_fen <= tiers[*n - 1].threshold_fen)) {
			*why = "thresholds are whole fen, ascending";
			return (POND_EINVAL);
		}
		if (reporting_parse_decimal(colon + 1, &t->rate) != 0 ||
		    strlen(colon + 1) >= sizeof(t->rate_text)) {
			*why = "a rate is a decimal like 0.05";
			return (POND_EINVAL);
		}
		strcpy(t->rate_text, colon + 1);
		(*n)++;
	}
	if (*n == 0 || tiers[0].threshold_fen != 0) {
		*why = "the first tier starts at 0";
		return (POND_EINVAL);
	}
	return (POND_OK);
}

/* --- replies
 * ------------------------------------------------------------------- */

json_t *
reporting_ratio(int64_t num, int64_t den)
{
	return (den == 0 ? json_null() : json_real((double)num / (double)den));
}

json_t *
reporting_time_json(pond_time t)
{
	char buf[40];

	return (json_string(pond_time_format_rfc3339(t, buf, sizeof(buf))));
}

void
reporting_sql_time(pond_time t, char *buf, size_t len)
{
	(void)pond_time_format_rfc3339(t, buf, len);
}

void
reporting_period_init(reporting_period *p, const reporting_args *a)
{
	reporting_sql_time(a->from, p->from, sizeof(p->from));
	reporting_sql_time(a->to, p->to, sizeof(p->to));
	reporting_sql_time(a->as_of, p->as_of, sizeof(p->as_of));
	p->v[0] = p->from;
	p->v[1] = p->to;
	p->v[2] = p->as_of;
	p->v[3] = a->channel;
}

int64_t
reporting_int(const PGresult *res, int r, int c)
{
	return (PQgetisnull(res, r, c)
	                ? 0
	                : strtoll(PQgetvalue(res, r, c), NULL, 10));
}

json_t *
reporting_envelope(const char *report, const reporting_args *a, bool period,
                   json_t *rows, json_t *total)
{
	return (json_pack(
	        "{s:s, s:o, s:o, s:o, s:o, s:o}", "report", report, "from",
	        period ? reporting_time_json(a->from) : json_null(), "to",
	        period ? reporting_time_json(a->to) : json_null(), "as_of",
	        reporting_time_json(a->as_of), "rows", rows, "total",
	        total != NULL ? total : json_null()));
}
