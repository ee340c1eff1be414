/*
 * clock.c - the one clock (see clock.h).
 */
#include "clock.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Atomic pond_time clock_frozen = -1;
static const char *_Atomic clock_file = NULL;

static pond_time
clock_read_file(const char *path)
{
	char buf[64];
	FILE *f;
	size_t n;
	pond_time t;

	if ((f = fopen(path, "r")) == NULL) {
		return (-1);
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n > 0 && isspace((unsigned char)buf[n - 1])) {
		buf[--n] = '\0';
	}
	if (n > 0 && strspn(buf, "0123456789") == n) {
		return (strtoll(buf, NULL, 10));
	}
	if (pond_time_parse_rfc3339(buf, &t) != 0) {
		return (-1);
	}
	return (t);
}

pond_time
pond_now(void)
{
	struct timespec ts;
	pond_time t = atomic_load(&clock_frozen);
	const char *path;

	if (t >= 0) {
		return (t);
	}
	/* A test clock file that cannot be read falls back to real time, so a
	 * test that forgot to write it sees an obviously wrong time. */
	if ((path = atomic_load(&clock_file)) != NULL &&
	    (t = clock_read_file(path)) >= 0) {
		return (t);
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	return (pond_time_from_parts(ts.tv_sec, (int32_t)ts.tv_nsec));
}

void
pond_clock_set(pond_time t)
{
	atomic_store(&clock_frozen, t);
}

void
pond_clock_use_file(const char *path)
{
	atomic_store(&clock_file, path);
}

bool
pond_clock_is_test(void)
{
	return (atomic_load(&clock_frozen) >= 0 ||
	        atomic_load(&clock_file) != NULL);
}

pond_time
pond_time_from_parts(int64_t seconds, int32_t nanos)
{
	return (seconds * POND_USEC_PER_SEC + nanos / 1000);
}

/* days_from_civil is Howard Hinnant's algorithm: days since 1970-01-01 of a
 * proleptic Gregorian date, without touching the process time zone. */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (era * 146097 + (int64_t)doe - 719468);
}

static int
parse_digits(const char **sp, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*sp)[i])) {
			return (POND_EINVAL);
		}
		v = v * 10 + ((*sp)[i] - '0');
	}
	*sp += n;
	*out = v;
	return (POND_OK);
}

int
pond_time_parse_rfc3339(const char *s, pond_time *t)
{
	int y, mo, d, h, mi, sec, oh = 0, om = 0;
	int64_t frac = 0;
	int sign = 0;
	static const int mdays[] = {31, 29, 31, 30, 31, 30,
	                            31, 31, 30, 31, 30, 31};

	if (parse_digits(&s, 4, &y) || *s++ != '-' ||
	    parse_digits(&s, 2, &mo) || *s++ != '-' ||
	    parse_digits(&s, 2, &d) || (*s != 'T' && *s != 't' && *s != ' ')) {
		return (POND_EINVAL);
	}
	s++;
	if (parse_digits(&s, 2, &h) || *s++ != ':' ||
	    parse_digits(&s, 2, &mi) || *s++ != ':' ||
	    parse_digits(&s, 2, &sec)) {
		return (POND_EINVAL);
	}
	if (*s == '.') {
		int64_t scale = 100000;
		s++;
		if (!isdigit((unsigned char)*s)) {
			return (POND_EINVAL);
		}
		while (isdigit((unsigned char)*s)) {
			frac += (*s - '0') * scale;
			scale /= 10;
			s++;
		}
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s++ == '+' ? 1 : -1;
		if (parse_digits(&s, 2, &oh) || *s++ != ':' ||
		    parse_digits(&s, 2, &om) || oh > 23 || om > 59) {
			return (POND_EINVAL);
		}
	} else {
		return (POND_EINVAL);
	}
	if (*s != '\0' || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    h > 23 || mi > 59 || sec > 60) {
		return (POND_EINVAL);
	}
	if (mo == 2 && d == 29 &&
	    !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) {
		return (POND_EINVAL);
	}
	int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
	               h * 3600 + mi * 60 + (sec == 60 ? 59 : sec);
	secs -= sign * (oh * 3600 + om * 60);
	*t = secs * POND_USEC_PER_SEC + frac;
	return (POND_OK);
}

char *
pond_time_format_rfc3339(pond_time t, char *buf, size_t len)
{
	int64_t secs = t / POND_USEC_PER_SEC;
	int64_t usec = t % POND_USEC_PER_SEC;
	struct tm tm;
	time_t tt;

	if (usec < 0) {
		usec += POND_USEC_PER_SEC;
		secs--;
	}
	tt = (time_t)secs;
	gmtime_r(&tt, &tm);
	if (usec == 0) {
		snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02dZ",
		         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		         tm.tm_hour, tm.tm_min, tm.tm_sec);
	} else {
		snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ",
		         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		         tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)usec);
	}
	return (buf);
}
