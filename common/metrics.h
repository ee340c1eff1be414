/*
 * metrics.h - counters in plain structs, rendered as Prometheus text.
 *
 * A service keeps its counters as pond_counter fields of its own structs and
 * registers each once with a family name, help text and a fixed label set.
 * Values that are read rather than counted (queue depths, stream lag per
 * partition) come from collector callbacks run at render time. Counters and
 * histograms are atomics: safe to bump from any thread.
 */
#ifndef POND_METRICS_H
#define POND_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct pond_counter {
	_Atomic uint64_t value;
} pond_counter;

typedef struct pond_gauge {
	_Atomic int64_t value;
} pond_gauge;

#define POND_HISTOGRAM_MAX_BUCKETS 16

/* pond_histogram has fixed upper bounds (seconds) and cumulative render. */
typedef struct pond_histogram {
	const double *bounds; /* ascending, nbounds of them; +Inf implied */
	size_t nbounds;
	_Atomic uint64_t buckets[POND_HISTOGRAM_MAX_BUCKETS + 1];
	_Atomic uint64_t count;
	_Atomic uint64_t sum_ns; /* sum of observations in nanoseconds */
} pond_histogram;

/* pond_latency_bounds are the default bounds for request latencies. */
extern const double pond_latency_bounds[];
extern const size_t pond_latency_nbounds;

typedef struct pond_metrics pond_metrics;
typedef struct pond_metrics_writer pond_metrics_writer;

/* pond_metrics_collect_fn emits series with pond_metrics_emit at render. */
typedef void (*pond_metrics_collect_fn)(pond_metrics_writer *w, void *arg);

/* pond_metrics_create makes an empty registry. */
int pond_metrics_create(pond_metrics **mp) POND_MUSTCHECK;

/* pond_metrics_destroy frees the registry (not the registered values). */
void pond_metrics_destroy(pond_metrics *m);

/* pond_counter_add adds n; pond_counter_inc adds 1. */
static inline void
pond_counter_add(pond_counter *c, uint64_t n)
{
	atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}
static inline void
pond_counter_inc(pond_counter *c)
{
	pond_counter_add(c, 1);
}

/* pond_gauge_set stores v. */
static inline void
pond_gauge_set(pond_gauge *g, int64_t v)
{
	atomic_store_explicit(&g->value, v, memory_order_relaxed);
}

/* pond_histogram_init sets the bounds (at most POND_HISTOGRAM_MAX_BUCKETS). */
void pond_histogram_init(pond_histogram *h, const double *bounds, size_t n);

/* pond_histogram_observe records one observation of seconds. */
void pond_histogram_observe(pond_histogram *h, double seconds);

/* pond_metrics_counter registers c as one series of family name; labels is
 * the label text without braces (`status="accepted"`) or NULL. Series of one
 * family share name, help and type; register them with the same help (the
 * first one is kept). POND_EINVAL for a name or label text Prometheus would
 * reject or a family of another type, POND_EEXIST for a series already
 * there. Counter names should end in _total (promtool insists). */
int pond_metrics_counter(pond_metrics *m, const char *name, const char *help,
                         const char *labels, pond_counter *c) POND_MUSTCHECK;

/* pond_metrics_gauge registers g like pond_metrics_counter. */
int pond_metrics_gauge(pond_metrics *m, const char *name, const char *help,
                       const char *labels, pond_gauge *g) POND_MUSTCHECK;

/* pond_metrics_histogram registers h like pond_metrics_counter. */
int pond_metrics_histogram(pond_metrics *m, const char *name, const char *help,
                           const char *labels,
                           pond_histogram *h) POND_MUSTCHECK;

/* pond_metrics_collector registers fn to emit the series of family name
 * (type "gauge" or "counter") at each render. fn runs with the registry
 * locked, so it must not register anything. */
int pond_metrics_collector(pond_metrics *m, const char *name, const char *help,
                           const char *type, pond_metrics_collect_fn fn,
                           void *arg) POND_MUSTCHECK;

/* pond_metrics_emit writes one series from a collector; a series whose
 * label text is malformed is dropped (and logged), not rendered. */
void pond_metrics_emit(pond_metrics_writer *w, const char *labels,
                       double value);

/* pond_metrics_render returns the Prometheus text exposition (format
 * 0.0.4) of every family in registration order, or NULL out of memory; the
 * caller frees it. */
char *pond_metrics_render(pond_metrics *m, size_t *len);

#endif
