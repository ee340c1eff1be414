/*
 * scheduler.c - the scheduler service: start, stop, metrics, and the
 * announcement of committed touch changes on the touches PUB.
 *
 * Stop order: the consumers finish (or roll back) their transactions, the
 * tick stops, gateway calls in flight are cancelled (their touches stay
 * leased and go again after POND_TOUCH_RESEND_S, from whichever replica
 * runs then), the store jobs drain, then the service ends.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consumer.h"
#include "log.h"
#include "scheduler.h"
#include "service.h"
#include "stream.h"

void
scheduler_announce(scheduler *s, const scheduler_change *v, size_t n)
{
	scheduler_counters *c = &s->counters;

	for (size_t i = 0; i < n; i++) {
		if (s->pub != NULL) {
			(void)pond_stream_announce(s->pub, POND_STREAM_TOUCHES,
			                           v[i].partition, v[i].seq,
			                           v[i].payload, v[i].len);
		}
#define X(st)                                                                 \
	if (strcmp(v[i].state, #st) == 0) {                                   \
		pond_counter_inc(&c->state_##st);                             \
	}
		SCHEDULER_STATES
#undef X
#define X(r)                                                                  \
	if (v[i].reason != NULL && strcmp(v[i].state, "suppressed") == 0 &&   \
	    strcmp(v[i].reason, #r) == 0) {                                   \
		pond_counter_inc(&c->reason_##r);                             \
	}
		SCHEDULER_REASONS
#undef X
	}
}

const char *
scheduler_static_name(const char *name)
{
	static const char *const names[] = {
#define X(s) #s,
	        SCHEDULER_STATES SCHEDULER_REASONS
#undef X
	};

	for (size_t i = 0; name != NULL && i < sizeof(names) / sizeof(*names);
	     i++) {
		if (strcmp(names[i], name) == 0) {
			return (names[i]);
		}
	}
	return (NULL);
}

static void
due_depth_collect(pond_metrics_writer *w, void *arg)
{
	scheduler *s = arg;

	pond_metrics_emit(w, NULL,
	                  (double)atomic_load(&s->counters.due_depth.value));
}

static int
register_metrics(scheduler *s, pond_metrics *m)
{
	scheduler_counters *c = &s->counters;
	static const char *states_help =
	        "Touch state changes on the touches stream, by state.";
	static const char *reasons_help =
	        "Suppressed touches, by the rule that stopped them.";
	int rv = 0;

#define X(st)                                                                 \
	if (rv == 0) {                                                        \
		rv = pond_metrics_counter(m, "pond_scheduler_touches_total",  \
		                          states_help, "state=\"" #st "\"",   \
		                          &c->state_##st);                    \
	}
	SCHEDULER_STATES
#undef X
#define X(r)                                                                  \
	if (rv == 0) {                                                        \
		rv = pond_metrics_counter(                                    \
		        m, "pond_scheduler_suppressed_total", reasons_help,   \
		        "reason=\"" #r "\"", &c->reason_##r);                 \
	}
	SCHEDULER_REASONS
#undef X
	if (rv != 0 ||
	    (rv = pond_metrics_counter(m, "pond_scheduler_batches_sent_total",
	                               "TouchBatch requests sent to gateways.",
	                               NULL, &c->batches_sent)) != 0 ||
	    (rv = pond_metrics_counter(m, "pond_scheduler_acks_total",
	                               "Touch ids acked by gateways.", NULL,
	                               &c->acks)) != 0 ||
	    (rv = pond_metrics_counter(
	             m, "pond_scheduler_dispatch_errors_total",
	             "Dispatch store jobs that failed (retried).", NULL,
	             &c->dispatch_errors)) != 0 ||
	    (rv = pond_metrics_collector(
	             m, "pond_scheduler_due_queue_depth",
	             "Touches due now (scheduled or deferred) not yet sent.",
	             "gauge", due_depth_collect, s)) != 0) {
		return (rv);
	}
	return (POND_OK);
}

int
scheduler_start(pond_service *svc)
{
	scheduler *s = svc->ctx;
	const char *why = NULL;
	int rv;

	s->svc = svc;
	s->nparts = (uint32_t)svc->conf.partitions;
	/* Quiet hours and ledger days are business time: set TZ before any
	 * store thread works them out. */
	setenv("TZ", svc->conf.tz, 1);
	tzset();
	if (scheduler_rules_parse(s->conf.quiet_hours, s->conf.freq_cap,
	                          &s->rules, &why) != 0) {
		pond_log_error("config_invalid", "why=\"%s\"", why);
		return (POND_EINVAL);
	}
	s->rules.attribution_h = s->conf.attribution_h;
	pthread_mutex_init(&s->stage_mu, NULL);
	if ((rv = register_metrics(s, svc->metrics)) != 0 ||
	    (rv = pond_pub_listen(&s->pub, s->conf.pub_url)) != 0 ||
	    (rv = scheduler_api_routes(s)) != 0 ||
	    (rv = scheduler_dispatch_start(s)) != 0 ||
	    (rv = scheduler_consumers_start(s)) != 0) {
		return (rv);
	}
	pond_log_info("listening",
	              "touches_pub=%s events_sub=%s tag_changes_sub=%s",
	              s->conf.pub_url, s->conf.events_sub, s->conf.tags_sub);
	return (POND_OK);
}

bool
scheduler_healthy(pond_service *svc, char *why, size_t len)
{
	scheduler *s = svc->ctx;
	int64_t lag;

	if (s->events == NULL || s->tags == NULL) {
		snprintf(why, len, "the consumers are not running");
		return (false);
	}
	lag = pond_consumer_lag(s->events) + pond_consumer_lag(s->tags);
	if (lag > s->conf.max_lag) {
		snprintf(why, len,
		         "%" PRId64
		         " records behind (POND_SCHEDULER_MAX_LAG %" PRId64
		         ")",
		         lag, s->conf.max_lag);
		return (false);
	}
	return (true);
}

void
scheduler_maybe_stopped(scheduler *s)
{
	if (!s->stopping || s->consumers_running > 0 || s->jobs > 0 ||
	    s->pub == NULL) {
		return;
	}
	pond_pub_close(s->pub);
	s->pub = NULL;
	scheduler_stage_free(s);
	free(s->gateways);
	s->gateways = NULL;
	pond_service_stopped(s->svc);
}

static void
consumer_stopped(void *arg)
{
	scheduler *s = arg;

	s->consumers_running--;
	scheduler_maybe_stopped(s);
}

void
scheduler_stop(pond_service *svc)
{
	scheduler *s = svc->ctx;

	s->stopping = true;
	scheduler_dispatch_stop(s);
	if (s->events != NULL) {
		pond_consumer_stop(s->events, consumer_stopped, s);
	}
	if (s->tags != NULL) {
		pond_consumer_stop(s->tags, consumer_stopped, s);
	}
	scheduler_maybe_stopped(s);
}
