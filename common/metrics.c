/*
 * metrics.c - the registry of counters, gauges and histograms, rendered as
 * Prometheus text (see metrics.h).
 *
 * A family is one metric name with its help and type; its series are the
 * registered values (each with a fixed label text) and the collectors that
 * emit series at render time. Families render in registration order and the
 * series of one family together, so HELP and TYPE are printed once. The
 * values themselves are atomics owned by the registering code; the registry
 * holds pointers to them and reads them only while rendering.
 */
#include "metrics.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

const double pond_latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                      0.025,  0.05,  0.1,    0.25,  0.5,
                                      1,      2.5,   5,      10};
const size_t pond_latency_nbounds =
        sizeof(pond_latency_bounds) / sizeof(pond_latency_bounds[0]);

typedef enum metrics_kind {
	METRICS_COUNTER,
	METRICS_GAUGE,
	METRICS_HISTOGRAM,
} metrics_kind;

static const char *const metrics_kind_names[] = {"counter", "gauge",
                                                 "histogram"};

/* metrics_series is one registered value, or one collector when collect is
 * set (a collector may emit any number of series). */
typedef struct metrics_series {
	char *labels; /* without braces; "" when there are none */
	void *value;  /* pond_counter, pond_gauge or pond_histogram */
	pond_metrics_collect_fn collect;
	void *arg;
} metrics_series;

typedef struct metrics_family {
	char *name;
	char *help;
	metrics_kind kind;
	metrics_series *series;
	size_t nseries;
	size_t cap;
} metrics_family;

/* The mutex guards the family table against a render on another thread
 * racing a registration; the values themselves are atomics and need it
 * not. Collectors run with it held, so they must not register. */
struct pond_metrics {
	pthread_mutex_t mu;
	metrics_family *families;
	size_t nfamilies;
	size_t cap;
};

/* metrics_buf is the growing render output; failed sticks after an
 * allocation failure so callers check once at the end. */
typedef struct metrics_buf {
	char *data;
	size_t len;
	size_t cap;
	bool failed;
} metrics_buf;

struct pond_metrics_writer {
	metrics_buf *buf;
	const metrics_family *family;
};

static void
metrics_buf_put(metrics_buf *b, const char *s, size_t n)
{
	if (b->failed) {
		return;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap == 0 ? 4096 : b->cap;
		while (b->len + n + 1 > cap) {
			cap *= 2;
		}
		char *data = realloc(b->data, cap);
		if (data == NULL) {
			b->failed = true;
			return;
		}
		b->data = data;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
metrics_buf_puts(metrics_buf *b, const char *s)
{
	metrics_buf_put(b, s, strlen(s));
}

static void metrics_buf_printf(metrics_buf *b, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void
metrics_buf_printf(metrics_buf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		metrics_buf_put(b, small, (size_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1);
	if (big == NULL) {
		b->failed = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	metrics_buf_put(b, big, (size_t)n);
	free(big);
}

/* metrics_fmt_double writes v in the shortest form that reads back as the
 * same double, so bounds print as "0.005" rather than "0.0050000000000000001"
 * and values as Prometheus' parser expects ("+Inf", "NaN"). Whole numbers
 * print without exponent: le="10", never le="1e+01", since dashboards
 * match the le label as text. */
static const char *
metrics_fmt_double(double v, char *buf, size_t len)
{
	if (isnan(v)) {
		snprintf(buf, len, "NaN");
	} else if (isinf(v)) {
		snprintf(buf, len, "%s", v > 0 ? "+Inf" : "-Inf");
	} else if (v == floor(v) && fabs(v) < 1e15) {
		snprintf(buf, len, "%.0f", v);
	} else {
		for (int prec = 1; prec <= 17; prec++) {
			snprintf(buf, len, "%.*g", prec, v);
			if (strtod(buf, NULL) == v) {
				break;
			}
		}
	}
	return (buf);
}

/* metrics_fmt_ns writes a nanosecond sum as exact decimal seconds: summing
 * in integer nanoseconds and printing here avoids the binary fraction noise
 * of dividing by 1e9 in floating point. */
static const char *
metrics_fmt_ns(uint64_t ns, char *buf, size_t len)
{
	uint64_t sec = ns / 1000000000u;
	uint64_t frac = ns % 1000000000u;

	if (frac == 0) {
		snprintf(buf, len, "%" PRIu64, sec);
		return (buf);
	}
	snprintf(buf, len, "%" PRIu64 ".%09" PRIu64, sec, frac);
	size_t n = strlen(buf);
	while (buf[n - 1] == '0') {
		buf[--n] = '\0';
	}
	return (buf);
}

static bool
metrics_valid_name(const char *s, bool colon)
{
	if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9')) {
		return (false);
	}
	for (; *s != '\0'; s++) {
		char c = *s;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (c >= '0' && c <= '9') || c == '_' ||
		          (colon && c == ':');
		if (!ok) {
			return (false);
		}
	}
	return (true);
}

/* metrics_valid_labels checks `a="x",b="y"`: label names, quoted values
 * with only \\, \" and \n escapes, no raw newline. A histogram's own "le"
 * is refused when le is false. */
static bool
metrics_valid_labels(const char *s, bool le)
{
	char name[128];

	if (s == NULL || *s == '\0') {
		return (true);
	}
	for (;;) {
		size_t n = strcspn(s, "=");
		if (s[n] != '=' || n == 0 || n >= sizeof(name)) {
			return (false);
		}
		memcpy(name, s, n);
		name[n] = '\0';
		if (!metrics_valid_name(name, false) ||
		    (!le && strcmp(name, "le") == 0)) {
			return (false);
		}
		s += n + 1;
		if (*s++ != '"') {
			return (false);
		}
		while (*s != '"') {
			if (*s == '\0' || *s == '\n') {
				return (false);
			}
			if (*s == '\\') {
				s++;
				if (*s != '\\' && *s != '"' && *s != 'n') {
					return (false);
				}
			}
			s++;
		}
		s++;
		if (*s == '\0') {
			return (true);
		}
		if (*s++ != ',') {
			return (false);
		}
	}
}

static metrics_family *
metrics_find(pond_metrics *m, const char *name)
{
	for (size_t i = 0; i < m->nfamilies; i++) {
		if (strcmp(m->families[i].name, name) == 0) {
			return (&m->families[i]);
		}
	}
	return (NULL);
}

/* metrics_family_get finds family name or appends it; the caller holds
 * m->mu. */
static int
metrics_family_get(pond_metrics *m, const char *name, const char *help,
                   metrics_kind kind, metrics_family **fp)
{
	metrics_family *f = metrics_find(m, name);

	if (f != NULL) {
		if (f->kind != kind) {
			pond_log_error("metrics_type_mismatch", "name=%s",
			               name);
			return (POND_EINVAL);
		}
		*fp = f;
		return (POND_OK);
	}
	if (m->nfamilies == m->cap) {
		size_t cap = m->cap == 0 ? 16 : m->cap * 2;
		metrics_family *fams =
		        realloc(m->families, cap * sizeof(*fams));
		if (fams == NULL) {
			return (POND_ENOMEM);
		}
		m->families = fams;
		m->cap = cap;
	}
	f = &m->families[m->nfamilies];
	memset(f, 0, sizeof(*f));
	f->kind = kind;
	f->name = strdup(name);
	f->help = strdup(help != NULL ? help : "");
	if (f->name == NULL || f->help == NULL) {
		free(f->name);
		free(f->help);
		return (POND_ENOMEM);
	}
	m->nfamilies++;
	*fp = f;
	return (POND_OK);
}

static int
metrics_add_series(metrics_family *f, const metrics_series *s)
{
	if (s->collect == NULL) {
		for (size_t i = 0; i < f->nseries; i++) {
			if (f->series[i].collect == NULL &&
			    strcmp(f->series[i].labels, s->labels) == 0) {
				char q[256];
				pond_log_error("metrics_duplicate",
				               "name=%s labels=%s", f->name,
				               pond_log_quote(s->labels, q,
				                              sizeof(q)));
				return (POND_EEXIST);
			}
		}
	}
	if (f->nseries == f->cap) {
		size_t cap = f->cap == 0 ? 4 : f->cap * 2;
		metrics_series *ss = realloc(f->series, cap * sizeof(*ss));
		if (ss == NULL) {
			return (POND_ENOMEM);
		}
		f->series = ss;
		f->cap = cap;
	}
	f->series[f->nseries] = *s;
	f->series[f->nseries].labels = strdup(s->labels);
	if (f->series[f->nseries].labels == NULL) {
		return (POND_ENOMEM);
	}
	f->nseries++;
	return (POND_OK);
}

/* metrics_register is the one path of every pond_metrics_* registration. */
static int
metrics_register(pond_metrics *m, const char *name, const char *help,
                 metrics_kind kind, const metrics_series *s)
{
	metrics_family *f;
	int rv;

	if (!metrics_valid_name(name, true) ||
	    !metrics_valid_labels(s->labels, kind != METRICS_HISTOGRAM)) {
		char qn[128], ql[256];
		pond_log_error("metrics_invalid", "name=%s labels=%s",
		               pond_log_quote(name, qn, sizeof(qn)),
		               pond_log_quote(s->labels, ql, sizeof(ql)));
		return (POND_EINVAL);
	}
	pthread_mutex_lock(&m->mu);
	if ((rv = metrics_family_get(m, name, help, kind, &f)) == 0) {
		rv = metrics_add_series(f, s);
	}
	pthread_mutex_unlock(&m->mu);
	return (rv);
}

int
pond_metrics_create(pond_metrics **mp)
{
	pond_metrics *m = calloc(1, sizeof(*m));

	if (m == NULL) {
		return (POND_ENOMEM);
	}
	if (pthread_mutex_init(&m->mu, NULL) != 0) {
		free(m);
		return (POND_ENOMEM);
	}
	*mp = m;
	return (POND_OK);
}

void
pond_metrics_destroy(pond_metrics *m)
{
	if (m == NULL) {
		return;
	}
	for (size_t i = 0; i < m->nfamilies; i++) {
		metrics_family *f = &m->families[i];
		for (size_t j = 0; j < f->nseries; j++) {
			free(f->series[j].labels);
		}
		free(f->series);
		free(f->name);
		free(f->help);
	}
	free(m->families);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

void
pond_histogram_init(pond_histogram *h, const double *bounds, size_t n)
{
	assert(n <= POND_HISTOGRAM_MAX_BUCKETS);
	for (size_t i = 1; i < n; i++) {
		assert(bounds[i - 1] < bounds[i]);
	}
	h->bounds = bounds;
	h->nbounds = n;
	for (size_t i = 0; i <= POND_HISTOGRAM_MAX_BUCKETS; i++) {
		atomic_init(&h->buckets[i], 0);
	}
	atomic_init(&h->count, 0);
	atomic_init(&h->sum_ns, 0);
}

void
pond_histogram_observe(pond_histogram *h, double seconds)
{
	size_t i;

	if (isnan(seconds)) {
		return;
	}
	if (seconds < 0) {
		seconds = 0;
	}
	/* Buckets are stored per interval (le is inclusive) and summed at
	 * render, so one observation is one atomic add, not up to 17. */
	for (i = 0; i < h->nbounds && seconds > h->bounds[i]; i++) {
	}
	double ns = seconds * 1e9;
	uint64_t add = ns >= 1e18 ? UINT64_C(1000000000000000000)
	                          : (uint64_t)(ns + 0.5);
	atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_ns, add, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

int
pond_metrics_counter(pond_metrics *m, const char *name, const char *help,
                     const char *labels, pond_counter *c)
{
	metrics_series s = {.labels = (char *)(labels ? labels : ""),
	                    .value = c};
	return (metrics_register(m, name, help, METRICS_COUNTER, &s));
}

int
pond_metrics_gauge(pond_metrics *m, const char *name, const char *help,
                   const char *labels, pond_gauge *g)
{
	metrics_series s = {.labels = (char *)(labels ? labels : ""),
	                    .value = g};
	return (metrics_register(m, name, help, METRICS_GAUGE, &s));
}

int
pond_metrics_histogram(pond_metrics *m, const char *name, const char *help,
                       const char *labels, pond_histogram *h)
{
	metrics_series s = {.labels = (char *)(labels ? labels : ""),
	                    .value = h};
	return (metrics_register(m, name, help, METRICS_HISTOGRAM, &s));
}

int
pond_metrics_collector(pond_metrics *m, const char *name, const char *help,
                       const char *type, pond_metrics_collect_fn fn, void *arg)
{
	metrics_series s = {.labels = "", .collect = fn, .arg = arg};
	metrics_kind kind;

	if (type != NULL && strcmp(type, "gauge") == 0) {
		kind = METRICS_GAUGE;
	} else if (type != NULL && strcmp(type, "counter") == 0) {
		kind = METRICS_COUNTER;
	} else {
		return (POND_EINVAL);
	}
	if (fn == NULL) {
		return (POND_EINVAL);
	}
	return (metrics_register(m, name, help, kind, &s));
}

/* metrics_put_series writes `name{labels} ` up to the value. */
static void
metrics_put_series(metrics_buf *b, const char *name, const char *suffix,
                   const char *labels)
{
	metrics_buf_puts(b, name);
	metrics_buf_puts(b, suffix);
	if (labels != NULL && *labels != '\0') {
		metrics_buf_printf(b, "{%s}", labels);
	}
	metrics_buf_put(b, " ", 1);
}

void
pond_metrics_emit(pond_metrics_writer *w, const char *labels, double value)
{
	char num[40];

	/* Bad label text from a collector would make the whole exposition
	 * unparsable, so that one series is dropped instead. */
	if (!metrics_valid_labels(labels, true)) {
		pond_log_warn("metrics_bad_labels", "name=%s",
		              w->family->name);
		return;
	}
	metrics_put_series(w->buf, w->family->name, "", labels);
	metrics_buf_puts(w->buf, metrics_fmt_double(value, num, sizeof(num)));
	metrics_buf_put(w->buf, "\n", 1);
}

static void
metrics_render_histogram(metrics_buf *b, const char *name, const char *labels,
                         pond_histogram *h)
{
	const char *sep = *labels != '\0' ? "," : "";
	uint64_t cum = 0;
	char num[40];

	/* _count is the sum of the buckets read here rather than h->count:
	 * an observe racing the render then cannot make the +Inf bucket and
	 * the count disagree, which Prometheus would reject. */
	for (size_t i = 0; i <= h->nbounds; i++) {
		cum += atomic_load_explicit(&h->buckets[i],
		                            memory_order_relaxed);
		if (i < h->nbounds) {
			metrics_fmt_double(h->bounds[i], num, sizeof(num));
		} else {
			snprintf(num, sizeof(num), "+Inf");
		}
		metrics_buf_printf(b, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n",
		                   name, labels, sep, num, cum);
	}
	uint64_t ns = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
	metrics_put_series(b, name, "_sum", labels);
	metrics_buf_printf(b, "%s\n", metrics_fmt_ns(ns, num, sizeof(num)));
	metrics_put_series(b, name, "_count", labels);
	metrics_buf_printf(b, "%" PRIu64 "\n", cum);
}

/* metrics_put_help writes the HELP text escaped as the format asks:
 * backslash and newline only. */
static void
metrics_put_help(metrics_buf *b, const metrics_family *f)
{
	metrics_buf_printf(b, "# HELP %s ", f->name);
	for (const char *p = f->help; *p != '\0'; p++) {
		if (*p == '\\') {
			metrics_buf_puts(b, "\\\\");
		} else if (*p == '\n') {
			metrics_buf_puts(b, "\\n");
		} else {
			metrics_buf_put(b, p, 1);
		}
	}
	metrics_buf_printf(b, "\n# TYPE %s %s\n", f->name,
	                   metrics_kind_names[f->kind]);
}

static void
metrics_render_family(metrics_buf *b, const metrics_family *f)
{
	pond_metrics_writer w = {.buf = b, .family = f};

	metrics_put_help(b, f);
	for (size_t i = 0; i < f->nseries; i++) {
		const metrics_series *s = &f->series[i];
		if (s->collect != NULL) {
			s->collect(&w, s->arg);
			continue;
		}
		switch (f->kind) {
		case METRICS_COUNTER:
			metrics_put_series(b, f->name, "", s->labels);
			metrics_buf_printf(
			        b, "%" PRIu64 "\n",
			        atomic_load_explicit(
			                &((pond_counter *)s->value)->value,
			                memory_order_relaxed));
			break;
		case METRICS_GAUGE:
			metrics_put_series(b, f->name, "", s->labels);
			metrics_buf_printf(
			        b, "%" PRId64 "\n",
			        atomic_load_explicit(
			                &((pond_gauge *)s->value)->value,
			                memory_order_relaxed));
			break;
		case METRICS_HISTOGRAM:
			metrics_render_histogram(b, f->name, s->labels,
			                         s->value);
			break;
		}
	}
}

char *
pond_metrics_render(pond_metrics *m, size_t *len)
{
	metrics_buf b = {0};

	metrics_buf_put(&b, "", 0); /* an empty registry renders "" */
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nfamilies; i++) {
		metrics_render_family(&b, &m->families[i]);
	}
	pthread_mutex_unlock(&m->mu);
	if (b.failed) {
		free(b.data);
		return (NULL);
	}
	if (len != NULL) {
		*len = b.len;
	}
	return (b.data);
}
