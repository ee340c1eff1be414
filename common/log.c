/*
 * log.c - structured logging (see log.h).
 *
 * Each record is formatted into one buffer and written with one write(2), so
 * records from several threads never interleave mid-line.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"

int pond_log_threshold = POND_LOG_INFO;
static const char *log_service = "pond";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int
pond_log_init(const char *service, const char *level)
{
	log_service = service;
	if (level == NULL || *level == '\0') {
		return (POND_OK);
	}
	for (int i = 0; i < 4; i++) {
		if (strcmp(level, level_names[i]) == 0) {
			pond_log_threshold = i;
			return (POND_OK);
		}
	}
	return (POND_EINVAL);
}

void
pond__log(int level, const char *event, const char *fmt, ...)
{
	char line[4096];
	char ts[40];
	va_list ap;
	int n;

	/* Log lines carry the wall-clock time, not the test clock: they are
	 * for people reading what happened when. */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	pond_time_format_rfc3339(
	        pond_time_from_parts(now.tv_sec, (int32_t)now.tv_nsec), ts,
	        sizeof(ts));
	n = snprintf(line, sizeof(line), "ts=%s level=%s svc=%s event=%s", ts,
	             level_names[level < 0   ? 0
	                         : level > 3 ? 3
	                                     : level],
	             log_service, event);
	if (n < 0) {
		return;
	}
	if (fmt != NULL && *fmt != '\0' && (size_t)n < sizeof(line) - 2) {
		line[n++] = ' ';
		va_start(ap, fmt);
		int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
		va_end(ap);
		if (m > 0) {
			n += m;
		}
	}
	if ((size_t)n >= sizeof(line) - 1) {
		n = (int)sizeof(line) - 2;
	}
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

const char *
pond_log_quote(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	if (len < 3) {
		if (len > 0) {
			buf[0] = '\0';
		}
		return (buf);
	}
	buf[o++] = '"';
	for (; s != NULL && *s != '\0' && o + 3 < len; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < 0x20) {
			buf[o++] = ' ';
		} else {
			buf[o++] = (char)c;
		}
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return (buf);
}
