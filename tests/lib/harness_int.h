/*
 * harness_int.h - what the harness's files share. Tests include harness.h.
 *
 * harness.c holds the environment, databases, ports, JSON and clock helpers
 * and the exit handler; harness_proc.c the child processes; harness_http.c
 * the HTTP client.
 */
#ifndef POND_TEST_HARNESS_INT_H
#define POND_TEST_HARNESS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "harness.h"

/* harness__register installs the exit handler that undoes what the test
 * created; every helper that creates something calls it first. */
void harness__register(void);

/* harness__procs_kill kills and reaps every process the test spawned and
 * did not stop (called by the exit handler). */
void harness__procs_kill(void);

/* harness__now_ms returns a monotonic time in milliseconds. */
int64_t harness__now_ms(void);

/* harness__sleep_ms sleeps for ms milliseconds. */
void harness__sleep_ms(int ms);

/* harness__buf_append appends n bytes to the malloc'd buffer *buf of
 * length *len and capacity *cap, keeping it NUL-terminated. */
void harness__buf_append(char **buf, size_t *len, size_t *cap,
                         const void *data, size_t n);

#endif
