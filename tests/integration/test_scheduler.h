/*
 * test_scheduler.h - what the scheduler tests share (sw_, "scheduler
 * world"): a pond-ingest with its store and clock, one or two
 * pond-scheduler replicas and a pond-gateway-sim, all on loopback ports,
 * and helpers to define campaigns, send events and wait for the store to
 * show an expected figure.
 *
 * The clock file starts at POND_TEST_CLOCK_START (Monday 2026-01-05 00:00Z,
 * 08:00 in Asia/Shanghai, the business time zone of every test).
 */
#ifndef POND_TEST_SCHEDULER_H
#define POND_TEST_SCHEDULER_H

#include <limits.h>

#include "harness.h"
#include "ingest_client.h"

#define SW_ADMIN_TOKEN "api_sched_admin"
#define SW_READ_TOKEN  "api_sched_read"

typedef struct sw_world {
	char name[48];
	ic_service ingest;
	char gw_url[64];
	char gw_ledger[PATH_MAX];
	char gw_control[PATH_MAX];
	uint16_t gw_port;
	pond_test_proc *gw;
	pond_test_proc *sched[2];
	uint16_t sched_port[2];
	int nsched_spawned;
	const char *const *sched_env; /* extra env of every replica */
} sw_world;

/* sw_start starts ingest (with an admin and a read API token) and one
 * scheduler replica whose gateway is w->gw_url (not started: see
 * sw_gateway_start). sched_env (may be NULL) is added to the scheduler's
 * environment and kept for later replicas. */
void sw_start(sw_world *w, const char *name, const char *const *sched_env);

/* sw_scheduler_start starts replica i (0 or 1). */
void sw_scheduler_start(sw_world *w, int i);

/* sw_gateway_start starts pond-gateway-sim on w->gw_url; extra (may be
 * NULL) is added to its environment. */
void sw_gateway_start(sw_world *w, const char *const *extra);

/* sw_gateway_control writes mode ("stall", "ack_twice", "normal") into the
 * gateway's control file. */
void sw_gateway_control(sw_world *w, const char *mode);

/* sw_stop stops whatever runs, asserting clean exits. */
void sw_stop(sw_world *w);

/* sw_campaign posts a campaign (JSON text) with the admin token, asserts
 * 201 and returns its id (the caller frees). */
char *sw_campaign(sw_world *w, const char *json);

/* sw_send posts events (the elements of a JSON array) through ingest and
 * asserts every one was accepted. */
void sw_send(sw_world *w, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* sw_interaction sends one interaction of key at time at (RFC 3339); its
 * event_id is "key@at". */
void sw_interaction(sw_world *w, const char *key, const char *at);

/* sw_kill_scheduler SIGKILLs replica i and reaps it. */
void sw_kill_scheduler(sw_world *w, int i);

/* sw_sql_int runs a printf-formatted query returning one integer. */
long long sw_sql_int(sw_world *w, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* sw_wait_int waits up to timeout_ms for the query to return want and
 * fails the test with the last value when it does not. */
void sw_wait_int(sw_world *w, long long want, int timeout_ms, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));

/* sw_settle waits until the scheduler has applied every event. */
void sw_settle(sw_world *w);

/* sw_clock sets the test clock. */
void sw_clock(sw_world *w, const char *rfc3339);

/* sw_metric reads a series from replica i's /metrics (-1: absent). */
double sw_metric(sw_world *w, int i, const char *series);

/* sw_http sends a request with token (NULL: none) to replica 0 and
 * returns the status; *out (may be NULL) gets the parsed body. */
int sw_http(sw_world *w, const char *method, const char *path,
            const char *token, const char *body, json_t **out);

#endif
