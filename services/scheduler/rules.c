/*
 * rules.c - the parts of the touch rules that are pure functions: quiet
 * hours, the frequency cap's config, and the hold-out draw.
 *
 * Business time is POND_TZ, set as the process's TZ at start, so
 * localtime_r and mktime give local days and minutes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scheduler.h"

static bool
parse_hhmm(const char *s, int *min)
{
	int h, m, n = 0;

	if (sscanf(s, "%2d:%2d%n", &h, &m, &n) != 2 || n != 5 || h < 0 ||
	    h > 24 || m < 0 || m > 59 || h * 60 + m > 24 * 60) {
		return (false);
	}
	*min = h * 60 + m;
	return (true);
}

static int
parse_cap(const char *cap, scheduler_rules *r, const char **why)
{
	char buf[128], *save = NULL;

	r->cap_day = -1;
	r->cap_week = -1;
	if (strlen(cap) >= sizeof(buf)) {
		*why = "POND_FREQ_CAP is too long";
		return (POND_EINVAL);
	}
	strcpy(buf, cap);
	for (char *tok = strtok_r(buf, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		char unit[8];
		long long n;
		int used = 0;
		if (sscanf(tok, "%lld/%7[a-z]%n", &n, unit, &used) != 2 ||
		    tok[used] != '\0' || n < 0) {
			*why = "POND_FREQ_CAP: expected N/day,N/week";
			return (POND_EINVAL);
		}
		if (strcmp(unit, "day") == 0) {
			r->cap_day = n;
		} else if (strcmp(unit, "week") == 0) {
			r->cap_week = n;
		} else {
			*why = "POND_FREQ_CAP: the units are day and week";
			return (POND_EINVAL);
		}
	}
	return (POND_OK);
}

int
scheduler_rules_parse(const char *quiet, const char *cap, scheduler_rules *r,
                      const char **why)
{
	r->quiet_from_min = -1;
	r->quiet_to_min = -1;
	if (quiet != NULL && *quiet != '\0') {
		if (strlen(quiet) != 11 || quiet[5] != '-' ||
		    !parse_hhmm(quiet, &r->quiet_from_min) ||
		    !parse_hhmm(quiet + 6, &r->quiet_to_min)) {
			*why = "POND_QUIET_HOURS: expected HH:MM-HH:MM";
			return (POND_EINVAL);
		}
		if (r->quiet_from_min == r->quiet_to_min) {
			r->quiet_from_min = r->quiet_to_min = -1;
		}
	}
	return (parse_cap(cap, r, why));
}

pond_time
scheduler_quiet_end(const scheduler_rules *r, pond_time t)
{
	time_t secs = (time_t)(t / POND_USEC_PER_SEC);
	struct tm tm;
	int min;
	bool quiet;

	if (r->quiet_from_min < 0) {
		return (t);
	}
	localtime_r(&secs, &tm);
	min = tm.tm_hour * 60 + tm.tm_min;
	if (r->quiet_from_min < r->quiet_to_min) {
		quiet = min >= r->quiet_from_min && min < r->quiet_to_min;
	} else {
		quiet = min >= r->quiet_from_min || min < r->quiet_to_min;
	}
	if (!quiet) {
		return (t);
	}
	/* The window ends at quiet_to on this local day, or on the next one
	 * when we are in its evening part. mktime normalises the day. */
	if (r->quiet_from_min > r->quiet_to_min && min >= r->quiet_from_min) {
		tm.tm_mday++;
	}
	tm.tm_hour = r->quiet_to_min / 60;
	tm.tm_min = r->quiet_to_min % 60;
	tm.tm_sec = 0;
	tm.tm_isdst = -1;
	return ((pond_time)mktime(&tm) * POND_USEC_PER_SEC);
}

bool
scheduler_holdout(const char *campaign_id, const char *customer_key,
                  int64_t pct)
{
	uint64_t h = UINT64_C(14695981039346656037);
	const char *parts[] = {campaign_id, "/", customer_key};

	if (pct <= 0) {
		return (false);
	}
	for (size_t i = 0; i < 3; i++) {
		for (const unsigned char *p = (const unsigned char *)parts[i];
		     *p != '\0'; p++) {
			h ^= *p;
			h *= UINT64_C(1099511628211);
		}
	}
	return ((int64_t)(h % 10000) < pct * 100);
}
