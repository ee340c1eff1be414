/*
 * clock.h - the one clock, and time formats.
 *
 * Every service reads "now" through pond_now(). Tests drive it without
 * sleeping: in-process with pond_clock_set(), and across processes with
 * POND_TEST_CLOCK=FILE, a file holding the current time (RFC 3339 or
 * microseconds since the epoch) that the test rewrites to move time.
 *
 * Times are pond_time: microseconds since 1970-01-01T00:00:00Z.
 */
#ifndef POND_CLOCK_H
#define POND_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef int64_t pond_time;

#define POND_USEC_PER_SEC  INT64_C(1000000)
#define POND_USEC_PER_HOUR (INT64_C(3600) * POND_USEC_PER_SEC)
#define POND_USEC_PER_DAY  (INT64_C(24) * POND_USEC_PER_HOUR)

/* pond_now returns the current time from the one clock. */
pond_time pond_now(void);

/* pond_clock_set freezes the in-process clock at t (tests). */
void pond_clock_set(pond_time t);

/* pond_clock_use_file makes pond_now() read the time from path on every
 * call (NULL goes back to the system clock). */
void pond_clock_use_file(const char *path);

/* pond_clock_is_test reports whether a test clock is in force. */
bool pond_clock_is_test(void);

/* pond_time_parse_rfc3339 parses "2026-11-23T08:00:00Z",
 * "2026-11-23T08:00:00.123+08:00" and the like. */
int pond_time_parse_rfc3339(const char *s, pond_time *t) POND_MUSTCHECK;

/* pond_time_format_rfc3339 writes t as UTC RFC 3339 with microseconds when
 * non-zero; buf needs 32 bytes. Returns buf. */
char *pond_time_format_rfc3339(pond_time t, char *buf, size_t len);

/* pond_time_from_timespec converts seconds and nanoseconds. */
pond_time pond_time_from_parts(int64_t seconds, int32_t nanos);

#endif
