/*
 * demo.h - what the files of `pond demo` share (private to cli/demo*.c):
 * the simulated brand's events (demo_gen.c) and the setup of tag rules and
 * campaigns over the services' HTTP APIs (demo_setup.c).
 */
#ifndef POND_CLI_DEMO_H
#define POND_CLI_DEMO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"

/* demo_opts is the size and place of the simulation. */
typedef struct demo_opts {
	uint64_t seed;
	int customers;
	pond_time start;  /* first day, midnight in Asia/Shanghai */
	pond_time end;    /* the end of the last day */
	pond_time cutoff; /* no event at or after it: min(end, now) */
} demo_opts;

/* demo_event is one generated event and its time (for sorting). */
typedef struct demo_event {
	pond_time at;
	json_t *json; /* the event in its proto3 JSON form; owned */
} demo_event;

/* demo_generate makes the events of opts, sorted by time then event_id,
 * into a new array *out of *nout events that the caller frees with
 * demo_events_free. The brand is simulated over the whole window whatever
 * the cutoff, and the events at or after the cutoff are left out, so an
 * event id always has the same content. Returns 0 or POND_ENOMEM. */
int demo_generate(const demo_opts *opts, demo_event **out, size_t *nout);

/* demo_events_free frees n events and the array. */
void demo_events_free(demo_event *events, size_t n);

/* demo_day_start returns the midnight (Asia/Shanghai) that starts t's
 * day. */
pond_time demo_day_start(pond_time t);

/* demo_setup_rules puts the demo's tag rules on the tagging service at
 * base_url ("http://127.0.0.1:8401") with an admin token; returns how many
 * failed (each with a message on stderr), or -1 when the service did not
 * answer at all. */
int demo_setup_rules(const char *base_url, const char *token);

/* demo_setup_campaigns creates the demo's campaigns on the scheduler at
 * base_url that it does not have yet (by name), with an admin token;
 * festival_at is when the one-shot festival offer goes out. Returns how
 * many failed, or -1 when the scheduler did not answer at all. */
int demo_setup_campaigns(const char *base_url, const char *token,
                         pond_time festival_at);

/* demo_setup_goals sets the demo's three SMART goals on reporting
 * (base_url), their baseline the first 30 days of [start, end); returns
 * -1 when reporting does not answer, else how many it refused. */
int demo_setup_goals(const char *base_url, const char *token, pond_time start,
                     pond_time end);

#endif
